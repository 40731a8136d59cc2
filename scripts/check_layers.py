#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Fails if a module of src/ imports, directly or not, a module that imports it.

Imports point one way: entry points (file, kvm, inode, module) -> operations
-> state -> kernel-free math. A module's imports are the first path segments
of its `use crate::...` items and of `crate::name::` paths in its code.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def imports(text, modules):
    found = set()
    for m in re.finditer(r"\buse crate::(\{.*?\};|[^;]*;)", text, re.S):
        body = m.group(1)
        if body.startswith("{"):
            # Top-level items of the brace list only.
            depth, item, items = 0, "", []
            for c in body[1:]:
                if c == "{":
                    depth += 1
                elif c == "}":
                    if depth == 0:
                        break
                    depth -= 1
                elif c == "," and depth == 0:
                    items.append(item)
                    item = ""
                    continue
                item += c
            items.append(item)
            found |= {i.strip().split("::")[0] for i in items if i.strip()}
        else:
            found.add(body.split("::")[0].strip(" ;"))
    found |= set(re.findall(r"\bcrate::(\w+)::", text))
    return {f for f in found if f in modules}


def main():
    files = {p.stem: p.read_text() for p in SRC.glob("*.rs")}
    modules = set(files) - {"rgmem"}
    graph = {m: imports(files[m], modules) - {m} for m in modules}
    bad = []
    for a in sorted(graph):
        # Everything a reaches.
        seen, todo = set(), list(graph[a])
        while todo:
            b = todo.pop()
            if b not in seen:
                seen.add(b)
                todo.extend(graph[b])
        if a in seen:
            back = sorted(b for b in graph[a] if a in reach(graph, b))
            bad.append(f"{a} -> {', '.join(back)} -> ... -> {a}")
    for line in bad:
        print(f"layers: import cycle: {line}")
    return 1 if bad else 0


def reach(graph, start):
    seen, todo = set(), [start]
    while todo:
        b = todo.pop()
        if b not in seen:
            seen.add(b)
            todo.extend(graph[b])
    return seen


if __name__ == "__main__":
    sys.exit(main())
