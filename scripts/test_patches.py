#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Self-tests of the patch preflight, `scripts/kernel check`, on the host.

The series must apply exactly to Debian's source; a copy of it shifted by
some lines, or with a context line that no longer matches, must be refused
within seconds with a message that names the version found, the tested
versions and what to do. Needs the source (make deps).
"""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time
import unittest

TOP = pathlib.Path(__file__).resolve().parent.parent
KERNEL = TOP / "scripts/kernel"
# Small and stable: the one-line export of patches/0005.
TARGET = "0005-mm-export-lru_add_drain_all.patch"
# The preflight must answer in seconds (the source is already unpacked).
LIMIT_S = 20


def tested():
    lines = (TOP / "patches/TESTED").read_text().splitlines()
    return [v for v in lines if v and not v.startswith("#")]


class Preflight(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.series = pathlib.Path(self.tmp.name) / "patches"
        shutil.copytree(TOP / "patches", self.series)
        self.target = self.series / TARGET
        self.text = self.target.read_text()

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, **env):
        e = dict(os.environ, RGMEM_PATCHES=str(self.series))
        e.pop("KDIR", None)
        e.update(env)
        t0 = time.monotonic()
        r = subprocess.run([str(KERNEL), "check"], env=e, capture_output=True,
                           text=True, timeout=120)
        self.assertLess(time.monotonic() - t0, LIMIT_S)
        return r, r.stdout + r.stderr

    def assert_refused(self, r, out, why):
        self.assertEqual(r.returncode, 1, out)
        m = re.search(r"rgmem: error: (\S+) (.*) to debian:(\S+)\.", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.group(1), TARGET)
        self.assertEqual(m.group(2), why)
        self.assertIn(" ".join(tested()), out)
        self.assertIn("KDIR=", out)
        self.assertIn('"Rebasing the seam"', out)
        # Nothing after the refused patch is tried.
        self.assertNotIn("0006-", out)

    def shifted(self, lines):
        """The target's hunks moved by @lines, as after a drift upstream."""
        def move(m):
            a, b = int(m.group(1)) + lines, int(m.group(3)) + lines
            return f"@@ -{a},{m.group(2)} +{b},{m.group(4)} @@"
        return re.sub(r"^@@ -(\d+),(\d+) \+(\d+),(\d+) @@", move, self.text,
                      flags=re.M)

    def test_series_applies_exactly(self):
        r, out = self.check()
        self.assertEqual(r.returncode, 0, out)
        for p in sorted(self.series.glob("*.patch")):
            self.assertRegex(out, rf"{re.escape(p.name)}: \d+ hunks? applied exactly")
        self.assertNotIn("offset", out)
        self.assertRegex(out, r"kernel source: debian:\S+, tested")

    def test_shifted_patch_is_refused(self):
        self.target.write_text(self.shifted(-40))
        r, out = self.check()
        self.assert_refused(r, out, "applies only at an offset")
        self.assertIn("offset 40 lines", out)

    def test_changed_context_is_refused(self):
        # What a fuzzy patch would have let through.
        ctx = " atomic_t lru_disable_count = ATOMIC_INIT(0);"
        self.assertIn(ctx, self.text)
        self.target.write_text(self.text.replace(ctx, ctx.replace("(0)", "(1)")))
        r, out = self.check()
        self.assert_refused(r, out, "does not apply")

    def test_user_tree_may_have_offsets(self):
        # A KDIR tree is the user's: an exact hunk at an offset is shown.
        ver = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "linux-source-6.12"],
            capture_output=True, text=True).stdout
        cache = os.environ.get("RGMEM_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rgmem")
        src = pathlib.Path(cache) / "src" / ver
        self.assertTrue((src / ".rgmem-unpacked").exists(), f"{src} is not unpacked")
        self.target.write_text(self.shifted(-40))
        r, out = self.check(KDIR=str(src))
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("offset 40 lines", out)
        self.assertIn("kernel source: kdir:", out)


if __name__ == "__main__":
    unittest.main()
