# SPDX-License-Identifier: GPL-2.0
# Shared helpers for rgmem's scripts: locations, staged output, cache keys.
# Sourced, never run.

RGMEM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Per-clone scratch space: module builds, selftest binaries, VM results.
RGMEM_WORK=${RGMEM_WORK:-$RGMEM_TOP/work}
# Kernel trees and builds are shared by every clone on the machine.
RGMEM_CACHE=${RGMEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rgmem}
RGMEM_KVER=6.12
RGMEM_TARBALL=${RGMEM_TARBALL:-/usr/src/linux-source-$RGMEM_KVER.tar.xz}

export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"

_stage_name=""
_stage_t0=0

die() {
	printf 'rgmem: error: %s\n' "$*" >&2
	exit 1
}

note() {
	printf '       %s\n' "$*"
}

# stage NAME: announce a stage; its time is printed when the next one
# starts or when the script ends.
stage() {
	stage_end
	_stage_name=$1
	_stage_t0=$(date +%s)
	printf '==> %s\n' "$_stage_name"
}

stage_end() {
	[ -n "$_stage_name" ] || return 0
	printf '<== %s (%ss)\n' "$_stage_name" $(($(date +%s) - _stage_t0))
	_stage_name=""
}
trap stage_end EXIT

# run_logged LOG CMD...: run CMD with its output in LOG; on failure show
# the tail of LOG and fail.
run_logged() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "'$*' failed; full log: $log"
	fi
}

# hash_paths PATH...: one hash of the names and contents of the files below
# the given paths, relative to the checkout, so that every clone of the same
# commit gets the same key. Missing paths hash as empty.
hash_paths() {
	(
		cd "$RGMEM_TOP" || exit 1
		for p in "$@"; do
			[ -e "$p" ] || continue
			find "$p" -type f -print0 | LC_ALL=C sort -z |
				xargs -0 -r sha256sum
		done
	) | sha256sum | cut -c1-16
}

# The kernel flavours: release (make run, make bench) and debug (make check).
flavour_fragments() {
	case $1 in
	release) echo "$RGMEM_TOP/configs/rgmem.config" ;;
	debug) echo "$RGMEM_TOP/configs/rgmem.config $RGMEM_TOP/configs/debug.config" ;;
	*) die "unknown kernel flavour '$1' (release or debug)" ;;
	esac
}

# The kernel build directory (O=) of a flavour. KBUILD= names a user's
# own, already built tree instead.
kbuild_dir() {
	if [ -n "${KBUILD:-}" ]; then
		echo "$KBUILD"
	else
		echo "$RGMEM_CACHE/build-$1"
	fi
}

kernel_image() {
	echo "$(kbuild_dir "$1")/arch/x86/boot/bzImage"
}

# How the VMs run: KVM only when the host can run our guest's own KVM
# guests (/dev/kvm usable, VMX or SVM visible), else TCG with -cpu max,
# which gives the guest SVM with nested paging. RGMEM_ACCEL overrides.
vm_accel() {
	local accel=${RGMEM_ACCEL:-auto}
	if [ "$accel" = auto ]; then
		accel=tcg
		if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
			grep -qwE 'vmx|svm' /proc/cpuinfo; then
			accel=kvm
		fi
	fi
	case $accel in
	kvm | tcg) echo "$accel" ;;
	*) die "RGMEM_ACCEL must be auto, kvm or tcg" ;;
	esac
}
