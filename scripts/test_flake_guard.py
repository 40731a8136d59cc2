#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Self-tests of tests/selftests/tcg_flake_guard.sh, on the host.

Fake commands stand in for the selftests, and a temporary directory for
KVM's debugfs: a retry must need the known flake's evidence, and three
flakes in a row must fail.
"""
import os
import pathlib
import subprocess
import tempfile
import time
import unittest

GUARD = pathlib.Path(__file__).resolve().parent.parent / "tests/selftests/tcg_flake_guard.sh"
SHUTDOWN = 'echo "  Wanted KVM_EXIT_IO, got exit reason: 8 (SHUTDOWN)"; exit 254'
# The hang's statistics, written where the guard reads them for this pid.
HANG = ('d="$TCG_GUARD_KVM_DEBUGFS/$$-7"; mkdir -p "$d"; echo 3 >"$d/pf_taken"; '
        'i=0; while :; do i=$((i + 2000)); echo $i >"$d/pf_guest"; '
        'echo $i >"$d/insn_emulation"; sleep 0.2; done')
# Busy, but taking nested page faults: not the known loop.
FAULTING_HANG = HANG.replace('echo 3 >"$d/pf_taken"; ', "").replace(
    'echo $i >"$d/insn_emulation";', 'echo $i >"$d/insn_emulation"; echo $i >"$d/pf_taken";')
# Hangs with no sign of the known loop.
SILENT_HANG = "sleep 60"


class Guard(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = pathlib.Path(self.tmp.name)
        (self.root / "kvm").mkdir()
        (self.root / "tracing").mkdir()
        self.count = self.root / "count"

    def tearDown(self):
        self.tmp.cleanup()

    def script(self, *runs):
        """A command that behaves as runs[k] on its k-th invocation."""
        cases = "".join(f"{k}) {body} ;; " for k, body in enumerate(runs, 1))
        return (f'n=$(($(cat {self.count} 2>/dev/null || echo 0) + 1)); '
                f'echo $n >{self.count}; case $n in {cases}esac')

    def guard(self, body, deadline=2):
        env = dict(os.environ,
                   TCG_GUARD_KVM_DEBUGFS=str(self.root / "kvm"),
                   TCG_GUARD_TRACEFS=str(self.root / "tracing"))
        t0 = time.monotonic()
        p = subprocess.run(["bash", str(GUARD), str(deadline), "--", "bash", "-c", body],
                           env=env, capture_output=True, text=True, timeout=120)
        self.secs = time.monotonic() - t0
        self.runs = int(self.count.read_text()) if self.count.exists() else 0
        return p.returncode, p.stdout

    def test_pass_runs_once(self):
        rc, _ = self.guard(self.script("echo ok"))
        self.assertEqual((rc, self.runs), (0, 1))

    def test_other_failure_passes_through(self):
        rc, out = self.guard(self.script("exit 3"))
        self.assertEqual((rc, self.runs), (3, 1))
        self.assertNotIn("known TCG flake", out)

    def test_shutdown_then_pass(self):
        rc, out = self.guard(self.script(SHUTDOWN, SHUTDOWN, "echo ok"))
        self.assertEqual((rc, self.runs), (0, 3))
        self.assertIn("run 3 of 3", out)

    def test_three_shutdowns_fail(self):
        rc, out = self.guard(self.script(SHUTDOWN, SHUTDOWN, SHUTDOWN, "echo ok"))
        self.assertEqual((rc, self.runs), (1, 3))
        self.assertIn("3 runs in a row: failing", out)

    def test_hang_with_its_statistics_is_retried(self):
        rc, out = self.guard(self.script(HANG, "echo ok"))
        self.assertEqual((rc, self.runs), (0, 2))
        self.assertIn("statistics only", out)
        self.assertIn("pf_taken +0", out)

    def test_hang_without_them_fails(self):
        rc, out = self.guard(self.script(SILENT_HANG, "echo ok"))
        self.assertEqual((rc, self.runs), (124, 1))
        self.assertNotIn("known TCG flake", out)

    def test_hang_taking_nested_faults_fails(self):
        rc, out = self.guard(self.script(FAULTING_HANG, "echo ok"))
        self.assertEqual((rc, self.runs), (124, 1))
        self.assertNotIn("known TCG flake", out)

    def test_overrun_ends_after_deadline_and_sample(self):
        rc, _ = self.guard(self.script(SILENT_HANG), deadline=3)
        self.assertEqual(rc, 124)
        # 3 s of deadline, 3 s of sampling, and little else.
        self.assertLess(self.secs, 10)
        self.assertGreaterEqual(self.secs, 6)


if __name__ == "__main__":
    unittest.main()
