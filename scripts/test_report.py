#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Self-tests of report.py: a run is judged failed whenever it should be."""
import contextlib
import io
import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import report  # noqa: E402

GOOD_DMESG = """[    1.0] KTAP version 1
[    1.1]     # rust_doctests_kernel: pass:3 fail:0 skip:0 total:3
[    1.2] ok 1 rust_doctests_kernel
[    1.3] # Totals: pass:3 fail:0 skip:0 total:3
[    5.0] rgmem: version 0.1.0 loaded
"""


def make_run(root, steps, dmesg=GOOD_DMESG, done=True, kunit=True, kmemleak="",
             boot_dmesg=None):
    """steps: list of (name, rc or None, output)."""
    run = pathlib.Path(root)
    (run / "steps").mkdir(parents=True)
    (run / "plan").write_text("".join(f"{n}\t60\ttrue\n" for n, _, _ in steps))
    for i, (name, rc, out) in enumerate(steps, 1):
        (run / "steps" / f"{i:03d}.out").write_text(out)
        if rc is not None:
            (run / "steps" / f"{i:03d}.rc").write_text(f"{rc}\n")
    (run / "dmesg").write_text(dmesg)
    if boot_dmesg is not None:
        (run / "dmesg.boot").write_text(boot_dmesg)
    if done:
        (run / "done").write_text("done\n")
    if kunit:
        (run / "expect-kunit").touch()
    if kmemleak is not None:
        (run / "expect-kmemleak").touch()
        (run / "kmemleak").write_text(kmemleak)
    return run


def judge(run):
    sys.argv = ["report.py", str(run)]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        rc = report.main()
    counts = tuple(int(x) for x in (run / "counts").read_text().split())
    return rc, counts, out.getvalue()


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = pathlib.Path(self.tmp.name) / "run"

    def tearDown(self):
        self.tmp.cleanup()

    def test_clean_run_passes(self):
        tap = "TAP version 13\nok 1 a\nok 2 b # SKIP no RGMEM_KO\n"
        rc, counts, _ = judge(make_run(self.dir, [("@load", 0, ""), ("t", 0, tap)]))
        self.assertEqual(rc, 0)
        # @load, a, kunit suite, dmesg, kmemleak pass; b skips.
        self.assertEqual(counts, (5, 0, 1))

    def test_warning_in_dmesg_fails(self):
        dmesg = GOOD_DMESG + "[ 6.0] WARNING: CPU: 0 PID: 1 at rust/helpers/rgmem_warn.c:7\n"
        rc, counts, out = judge(make_run(self.dir, [("t", 0, "")], dmesg=dmesg))
        self.assertEqual(rc, 1)
        self.assertEqual(counts[1], 1)
        self.assertIn("FAIL dmesg", out)

    def test_each_checker_report_fails(self):
        for line in ("BUG: KASAN: slab-use-after-free in foo",
                     "WARNING: possible circular locking dependency detected",
                     "Oops: general protection fault", "rust_panic: x",
                     "unreferenced object 0xffff888 (size 64):"):
            with self.subTest(line=line), tempfile.TemporaryDirectory() as d:
                run = make_run(pathlib.Path(d) / "r", [("t", 0, "")],
                               dmesg=GOOD_DMESG + line + "\n")
                self.assertEqual(judge(run)[0], 1)

    def test_failed_subtest_and_exit_code(self):
        tap = "ok 1 a\nnot ok 2 b\n"
        rc, counts, _ = judge(make_run(self.dir, [("t", 1, tap)]))
        self.assertEqual(rc, 1)
        self.assertEqual(counts[1], 1)

    def test_nonzero_exit_without_tap_fails(self):
        rc, _, _ = judge(make_run(self.dir, [("t", 134, "Assertion failed")]))
        self.assertEqual(rc, 1)

    def test_step_that_never_ran_fails(self):
        rc, _, out = judge(make_run(self.dir, [("@load", 1, ""), ("t", None, "")]))
        self.assertEqual(rc, 1)
        self.assertIn("did not finish", out)

    def test_unfinished_vm_fails(self):
        rc, _, out = judge(make_run(self.dir, [("t", 0, "")], done=False))
        self.assertEqual(rc, 1)
        self.assertIn("did not finish", out)

    def test_kunit_failure_or_absence_fails(self):
        bad = GOOD_DMESG.replace("pass:3 fail:0", "pass:2 fail:1")
        self.assertEqual(judge(make_run(self.dir, [("t", 0, "")], dmesg=bad))[0], 1)
        with tempfile.TemporaryDirectory() as d:
            run = make_run(pathlib.Path(d) / "r", [("t", 0, "")], dmesg="quiet\n")
            self.assertEqual(judge(run)[0], 1)

    def test_kunit_is_read_from_the_boot_dmesg(self):
        # A flood of reports can push KUnit's lines out of the final dmesg.
        run = make_run(self.dir, [("t", 0, "")], dmesg="[ 9.0] quiet\n",
                       boot_dmesg=GOOD_DMESG)
        rc, _, out = judge(run)
        self.assertEqual(rc, 0, out)
        self.assertIn("kunit: rust_doctests_kernel", out)
        with tempfile.TemporaryDirectory() as d:
            bad = GOOD_DMESG.replace("pass:3 fail:0", "pass:2 fail:1")
            run = make_run(pathlib.Path(d) / "r", [("t", 0, "")], boot_dmesg=bad)
            self.assertEqual(judge(run)[0], 1)

    def test_leak_fails(self):
        run = make_run(self.dir, [("t", 0, "")], kmemleak="unreferenced object 0x1\n")
        self.assertEqual(judge(run)[0], 1)


if __name__ == "__main__":
    unittest.main()
