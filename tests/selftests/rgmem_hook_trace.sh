#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rgmem_hook_trace OUT -- COMMAND...
# rgmem_hook_trace --compare A B
#
# Records, with kprobes, every call of the architecture's guest_memfd hooks
# while COMMAND runs, into OUT:
#   prep GFN ORDER PFN   kvm_arch_gmem_prepare()
#   inval START END      kvm_arch_gmem_invalidate(), a pfn range
# The second is probed in SVM's sev_gmem_invalidate(), which it tail-calls
# through a static call: kprobes refuse a static call site.
# and checks the contract of Documentation/rgmem.rst: every page prepared
# for the guest is invalidated before it is freed (no prepared page is left
# when COMMAND is done).  Needs CONFIG_KVM_AMD_SEV (the hooks exist) and
# CONFIG_KPROBE_EVENTS.
#
# --compare checks that two recordings (rgmem's and C's) prepared the same
# (gfn, order) pairs, as often, and invalidated as many ranges of each size.

fail() {
	echo "rgmem_hook_trace: $*" >&2
	exit 1
}

if [ "$1" = --compare ]; then
	[ -f "$2" ] && [ -f "$3" ] || fail "--compare: missing $2 or $3"
	rc=0
	diff <(awk '$1 == "prep" { print $2, $3 }' "$2" | sort) \
		<(awk '$1 == "prep" { print $2, $3 }' "$3" | sort) >/dev/null ||
		{ echo "prepare calls differ (gfn order): $2 vs $3"; rc=1; }
	diff <(awk '$1 == "inval" { print $3 - $2 }' "$2" | sort -n) \
		<(awk '$1 == "inval" { print $3 - $2 }' "$3" | sort -n) >/dev/null ||
		{ echo "invalidate calls differ (range sizes): $2 vs $3"; rc=1; }
	echo "$2: $(grep -c '^prep' "$2") prepares, $(grep -c '^inval' "$2") invalidates"
	echo "$3: $(grep -c '^prep' "$3") prepares, $(grep -c '^inval' "$3") invalidates"
	[ $rc = 0 ] && echo "same hook calls"
	exit $rc
fi

out=$1
shift
[ "$1" = -- ] || fail "usage: $0 OUT -- COMMAND..."
shift

T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs none $T || fail "no tracefs"
[ -w $T/kprobe_events ] || fail "no kprobe events (CONFIG_KPROBE_EVENTS)"
grep -qw sev_gmem_invalidate /proc/kallsyms ||
	fail "no sev_gmem_invalidate (CONFIG_KVM_AMD_SEV)"

unprobe() {
	echo 0 >$T/tracing_on
	{
		echo 0 >$T/events/rgmem_hooks/enable
		echo '-:rgmem_hooks/prep' >>$T/kprobe_events
		echo '-:rgmem_hooks/inval' >>$T/kprobe_events
	} 2>/dev/null
	echo >$T/trace
	echo 1 >$T/tracing_on
}
unprobe
trap unprobe EXIT
echo 0 >$T/tracing_on
echo 8192 >$T/buffer_size_kb
echo >$T/trace
echo 'p:rgmem_hooks/prep kvm_arch_gmem_prepare gfn=%si:u64 pfn=%dx:u64 order=%cx:s32' \
	>>$T/kprobe_events || fail "cannot probe kvm_arch_gmem_prepare"
echo 'p:rgmem_hooks/inval sev_gmem_invalidate start=%di:u64 end=%si:u64' \
	>>$T/kprobe_events || fail "cannot probe sev_gmem_invalidate"
echo 1 >$T/events/rgmem_hooks/enable
echo 1 >$T/tracing_on

"$@"
rc=$?

echo 0 >$T/tracing_on
echo 0 >$T/events/rgmem_hooks/enable
# "... prep: (kvm_arch_gmem_prepare+0x0/0x..) gfn=N pfn=N order=N"
awk '
function val(name,   i) {
	for (i = 1; i <= NF; i++)
		if (index($i, name "=") == 1)
			return substr($i, length(name) + 2)
	return ""
}
$0 ~ / prep: / { printf "prep %d %d %d\n", val("gfn"), val("order"), val("pfn") }
$0 ~ / inval: / { printf "inval %d %d\n", val("start"), val("end") }
' $T/trace >"$out"
# "# entries-in-buffer/entries-written: 46/46": nothing was overwritten.
grep -q "entries-in-buffer/entries-written: \([0-9]*\)/\1 " $T/trace ||
	fail "the trace lost events: $(grep entries-in-buffer $T/trace)"

[ $rc = 0 ] || fail "$* failed ($rc)"
np=$(grep -c '^prep' "$out")
ni=$(grep -c '^inval' "$out")
echo "$np prepares, $ni invalidates"
[ "$np" -gt 0 ] && [ "$ni" -gt 0 ] || fail "the hooks were not called"

# Every prepared page is taken back, by a later invalidate, before the end.
left=$(awk '
$1 == "prep" { for (p = $4; p < $4 + 2 ^ $3; p++) held[p]++ }
$1 == "inval" { for (p = $2; p < $3; p++) delete held[p] }
END { n = 0; for (p in held) n++; print n }
' "$out")
[ "$left" = 0 ] || fail "$left prepared pages were never invalidated"
echo "every prepared page was invalidated"
