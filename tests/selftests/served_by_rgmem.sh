#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# served_by_rgmem [--faults] -- COMMAND...
#
# Runs COMMAND and passes only if it passes *and* rgmem's counters show
# that rgmem served it: it created guest_memfd files (and, with --faults,
# served private faults), and every file and binding is gone afterwards.
# A silent fallback to KVM's own guest_memfd therefore fails.

dir=/sys/kernel/debug/rgmem
faults=0
while [ $# -gt 0 ]; do
	case $1 in
	--faults) faults=1; shift ;;
	--) shift; break ;;
	*) break ;;
	esac
done

read_counter() { cat "$dir/$1" 2>/dev/null || echo missing; }
snapshot() {
	for c in files_created files_live bindings get_pfn folios_allocated \
		folios_freed; do
		printf '%s=%s ' "$c" "$(read_counter "$c")"
	done
}

if [ ! -d "$dir" ]; then
	echo "served_by_rgmem: $dir is missing: rgmem is not loaded" >&2
	exit 1
fi

before_created=$(read_counter files_created)
before_live=$(read_counter files_live)
before_bindings=$(read_counter bindings)
before_pfn=$(read_counter get_pfn)
echo "# rgmem before: $(snapshot)"
"$@"
rc=$?
echo "# rgmem after:  $(snapshot)"
[ "$rc" = 0 ] || exit "$rc"

fail=0
created=$(( $(read_counter files_created) - before_created ))
pfn=$(( $(read_counter get_pfn) - before_pfn ))
if [ "$created" -lt 1 ]; then
	echo "FAIL: rgmem created no guest_memfd file" >&2
	fail=1
fi
if [ "$faults" = 1 ] && [ "$pfn" -lt 1 ]; then
	echo "FAIL: rgmem served no private fault" >&2
	fail=1
fi
if [ "$(read_counter files_live)" != "$before_live" ]; then
	echo "FAIL: files_live is $(read_counter files_live), was $before_live" >&2
	fail=1
fi
if [ "$(read_counter bindings)" != "$before_bindings" ]; then
	echo "FAIL: bindings is $(read_counter bindings), was $before_bindings" >&2
	fail=1
fi
echo "# rgmem served: $created files, $pfn private faults"
exit $fail
