#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge a VM run from the files guest-run left in its results directory.

usage: report.py RESULTS_DIR

Prints a line per test, then "vm: N passed, N failed, N skipped", and
writes the three numbers to RESULTS_DIR/counts. Exits 1 on any failure.
"""
import pathlib
import re
import sys

# What in the guest's kernel log fails a run, whatever the tests said.
BAD_DMESG = re.compile(
    r"WARNING:|BUG:|kernel BUG|Oops|KASAN|UBSAN|general protection fault|"
    r"possible circular locking|possible recursive locking|"
    r"inconsistent lock state|DEBUG_LOCKS_WARN_ON|non-static key|"
    r"suspected memory leak|unreferenced object|Kernel panic|"
    r"rust_panic|panicked at|Call Trace:"
)
# The rare lines that match the above but report no problem.
BENIGN_DMESG = re.compile(r"kmemleak: Kernel memory leak detector|lockdep: fixing up")
TAP = re.compile(r"^(not ok|ok) \d+ (.*?)(?:\s+#\s*(SKIP|skip)\b.*)?$")
KUNIT_SUMMARY = re.compile(r"# (\S+): pass:(\d+) fail:(\d+) skip:(\d+) total:(\d+)")
KSFT_SKIP = 4


class Tally:
    def __init__(self):
        self.n = {"pass": 0, "fail": 0, "skip": 0}

    def add(self, verdict, name, detail=""):
        self.n[verdict] += 1
        print(f"  {verdict.upper()} {name}{'  ' + detail if detail else ''}")


def read(path, default=""):
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return default


def judge_step(t, steps, id_, name):
    out = read(steps / f"{id_}.out")
    rc_text = read(steps / f"{id_}.rc").strip()
    secs = read(steps / f"{id_}.secs").strip()
    if not rc_text:
        t.add("fail", name, "did not finish (VM ended or hung)")
        return
    rc = int(rc_text)
    detail = f"({secs}s)"
    subtests = [m for m in (TAP.match(line) for line in out.splitlines()) if m]
    if subtests:
        failed_sub = False
        for m in subtests:
            if m.group(1) == "not ok":
                failed_sub = True
                t.add("fail", f"{name}: {m.group(2)}")
            elif m.group(3):
                t.add("skip", f"{name}: {m.group(2)}")
            else:
                t.add("pass", f"{name}: {m.group(2)}")
        if rc not in (0, KSFT_SKIP) and not failed_sub:
            t.add("fail", name, f"exit {rc} after its subtests {detail}")
    elif rc == 0:
        t.add("pass", name, detail)
    elif rc == KSFT_SKIP:
        t.add("skip", name, detail)
    else:
        t.add("fail", name, f"exit {rc} {detail}")
    if rc not in (0, KSFT_SKIP):
        tail = "\n".join(out.splitlines()[-15:])
        print("    | " + tail.replace("\n", "\n    | "))


def judge_kunit(t, dmesg):
    suites = {}
    for line in dmesg.splitlines():
        m = KUNIT_SUMMARY.search(line)
        # "Totals" sums the suites: it is not one.
        if m and m.group(1) != "Totals":
            suites[m.group(1)] = tuple(int(x) for x in m.group(2, 3, 4, 5))
    if not suites:
        t.add("fail", "kunit", "the kernel ran no KUnit suite")
        return
    for suite, (p, f, s, total) in sorted(suites.items()):
        verdict = "fail" if f or p + s != total or total == 0 else "pass"
        t.add(verdict, f"kunit: {suite}", f"pass:{p} fail:{f} skip:{s} total:{total}")


def main():
    run = pathlib.Path(sys.argv[1])
    steps = run / "steps"
    t = Tally()
    plan = [line.split("\t")[0] for line in read(run / "plan").splitlines() if line.strip()]
    for i, name in enumerate(plan, 1):
        judge_step(t, steps, f"{i:03d}", name)

    if not (run / "done").exists():
        t.add("fail", "vm", "the guest did not finish: timeout or crash (see console.log)")
    dmesg = read(run / "dmesg") or read(run / "console.log")
    if (run / "expect-kunit").exists():
        # KUnit runs at boot: the final dmesg may have lost it to a flood.
        judge_kunit(t, read(run / "dmesg.boot") or dmesg)
    bad = [line for line in dmesg.splitlines()
           if BAD_DMESG.search(line) and not BENIGN_DMESG.search(line)]
    if bad:
        t.add("fail", "dmesg", f"{len(bad)} report lines, first: {bad[0].strip()}")
        for line in bad[:20]:
            print("    | " + line)
    else:
        t.add("pass", "dmesg", "no WARN/BUG/Oops/KASAN/lockdep/kmemleak report")
    if (run / "expect-kmemleak").exists():
        leaks = read(run / "kmemleak").strip()
        if leaks:
            t.add("fail", "kmemleak", "leaks reported (see kmemleak)")
            print("    | " + "\n    | ".join(leaks.splitlines()[:20]))
        elif not (run / "kmemleak").exists():
            t.add("fail", "kmemleak", "no kmemleak report was read")
        else:
            t.add("pass", "kmemleak", "nothing unreferenced")

    p, f, s = t.n["pass"], t.n["fail"], t.n["skip"]
    print(f"vm: {p} passed, {f} failed, {s} skipped")
    (run / "counts").write_text(f"{p} {f} {s}\n")
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main())
