#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tcg_flake_guard SECONDS -- COMMAND...
#
# Under QEMU TCG with nested SVM, 6.12's private_mem_conversions_test with
# several vCPUs sometimes fails in one of two ways, on KVM's C guest_memfd
# as on rgmem (both reproduced on C alone):
# - it never finishes: one vCPU loops with KVM injecting #PF into the
#   guest and emulating instructions, while no nested page fault is taken;
# - the guest triple-faults: "got exit reason: 8 (SHUTDOWN)".
# Traced, the loop's vCPU enters its guest at the RIP that follows VMRUN
# in the host kernel's own __svm_vcpu_run: QEMU has saved the outer
# guest's RIP as the nested guest's. Its page walk from there
# faults on a GPA outside every memslot, KVM emulates, cannot fetch, and
# injects #PF; the delivery faults the same way, forever.
# This guard runs COMMAND with a deadline. If it overruns and the VM's
# KVM statistics show exactly that loop (pf_guest and insn_emulation
# climbing, pf_taken still) and, where tracefs has KVM's events, a vCPU
# entering its guest again and again at one kernel-half RIP, which no
# selftest guest runs, or it fails with exactly that exit, the run is a
# known flake of the environment and COMMAND runs again, up to three
# runs in all. Any other failure or overrun fails, and so do three
# flakes in a row. SECONDS is wall-clock time, so the caller's own
# timeout must exceed three times SECONDS and the few seconds each
# overrun spends on its report.

deadline=$1
shift
[ "$1" = -- ] && shift
# Overridable so scripts/test_flake_guard.py can run it on the host.
kvm_debugfs=${TCG_GUARD_KVM_DEBUGFS:-/sys/kernel/debug/kvm}
tracefs=${TCG_GUARD_TRACEFS:-/sys/kernel/tracing}

stat_sum() {
	local pid=$1 name=$2 f sum=0
	for f in "$kvm_debugfs/$pid"-*/"$name"; do
		[ -r "$f" ] && sum=$((sum + $(cat "$f")))
	done
	echo "$sum"
}

log=$(mktemp 2>/dev/null || mktemp -p /dev/shm)
trap 'rm -f "$log"' EXIT

run_once() {
	"$@" >"$log" 2>&1 &
	local pid=$! start=$SECONDS rc
	# Wall clock, not loop turns: under TCG a turn takes well over a
	# second, and the step's own timeout, which must leave room for
	# further runs, counts wall-clock seconds. SECONDS ticks in whole
	# seconds from an arbitrary phase: -le waits the whole deadline
	# (-lt once stopped after 2.03 s of a 3 s one).
	while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - start)) -le "$deadline" ]; do
		sleep 1
	done
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"
		rc=$?
		cat "$log"
		if [ "$rc" != 0 ] &&
		   grep -q 'got exit reason: 8 (SHUTDOWN)' "$log"; then
			return 200
		fi
		return "$rc"
	fi
	local pg1 ie1 pt1 pg2 ie2 pt2 rips="" inst
	# A tracing instance of our own: the global buffer is left alone.
	inst=$tracefs/instances/tcg_flake_guard.$$
	mkdir "$inst" 2>/dev/null &&
		echo 1 >"$inst/events/kvm/kvm_entry/enable" 2>/dev/null ||
		{ rmdir "$inst" 2>/dev/null; inst=; }
	pg1=$(stat_sum "$pid" pf_guest)
	ie1=$(stat_sum "$pid" insn_emulation)
	pt1=$(stat_sum "$pid" pf_taken)
	sleep 3
	pg2=$(stat_sum "$pid" pf_guest)
	ie2=$(stat_sum "$pid" insn_emulation)
	pt2=$(stat_sum "$pid" pf_taken)
	if [ -n "$inst" ]; then
		echo 0 >"$inst/events/kvm/kvm_entry/enable"
		# "kvm_entry: vcpu N, rip R": each vCPU's repeated kernel RIPs.
		rips=$(awk '/kvm_entry:/ && $NF ~ /^0xffff/ { n[$(NF - 2) " " $NF]++ }
			END { for (k in n) if (n[k] >= 100) print "vcpu " k " x" n[k] }' \
			"$inst/trace")
		rmdir "$inst"
	fi
	# Where each thread waits, for a hang that is not the known one.
	local t
	for t in /proc/"$pid"/task/*; do
		echo "# thread $(cat "$t/comm" 2>/dev/null) $(basename "$t"):"
		sed 's/^/#   /' "$t/stack" 2>/dev/null
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	cat "$log"
	[ -n "$rips" ] && echo "$rips" | sed 's/^/# kernel-half guest RIP: /'
	[ -n "$inst" ] || echo "# no kvm_entry events in tracefs: statistics only"
	echo "# overran ${deadline}s: pf_guest +$((pg2 - pg1))," \
		"insn_emulation +$((ie2 - ie1)), pf_taken +$((pt2 - pt1)) in 3s"
	if [ $((pg2 - pg1)) -gt 1000 ] && [ $((ie2 - ie1)) -gt 1000 ] &&
	   [ "$pt2" = "$pt1" ] && { [ -z "$inst" ] || [ -n "$rips" ]; }; then
		return 200
	fi
	return 124
}

# One boot has shown a hang and then a triple fault in a row, so two
# runs are too few; three flakes in a row fail.
runs=3
n=1
while :; do
	run_once "$@"
	rc=$?
	[ "$rc" = 200 ] || break
	if [ "$n" -ge "$runs" ]; then
		echo "# the known TCG flake, $n runs in a row: failing"
		rc=1
		break
	fi
	n=$((n + 1))
	echo "# known TCG flake (see the top of tcg_flake_guard.sh); run $n of $runs"
done
exit "$rc"
