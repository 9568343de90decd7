#!/usr/bin/env python3
"""check_layers.py - checks the layer rule of src/ (src/README.md) on the #include lines and on the
cross-file calls and data references.

    posenc, io  >  train  >  table  >  kernels  >  common

A file may include a header of, and call a function (or use data) defined in, its own folder or a lower
layer; nothing runs back up or sideways (posenc and io are peers: neither uses the other), and no two files
reach each other (no circle, within a folder either), for includes and for calls alike.

Calls come from the symbol tables of the compiled sources (`nm`: which non-static symbol each object defines,
which it needs): the objects of a CMake build (--objects BUILD_DIR, e.g. build/CMakeFiles/tokemb.dir), or,
without it, every src/*/*.c compiled here at -O0 into a temporary folder.

Usage: scripts/check_layers.py [--repo ROOT] [--objects DIR] [--cc CC] [-v]
Exit status 0 when the rule holds, 1 with one line per violation otherwise, 2 on a usage/tool error."""

import argparse
import concurrent.futures
import os
import re
import shlex
import subprocess
import sys
import tempfile

LAYERS = {"common": 0, "kernels": 1, "table": 2, "train": 3, "posenc": 4, "io": 4}
ORDER = "posenc, io > train > table > kernels > common"
PUBLIC = {"tokemb.h"}  # the public header, include/: every layer may include it
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def folder_of(rel):
    """'src/table/table.c' -> 'table'."""
    parts = rel.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "src" else None


def allowed(src_folder, dst_folder):
    return src_folder == dst_folder or LAYERS[dst_folder] < LAYERS[src_folder]


def rule_text(folder):
    below = sorted((f for f in LAYERS if LAYERS[f] < LAYERS[folder]), key=lambda f: -LAYERS[f])
    return "%s may use only itself%s" % (folder, ", " + ", ".join(below) if below else "")


def sources(repo):
    out = []
    src = os.path.join(repo, "src")
    for folder in sorted(os.listdir(src)):
        d = os.path.join(src, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                out.append("src/%s/%s" % (folder, name))
    return out


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def check_includes(repo, problems, verbose):
    graph = {}
    for rel in sources(repo):
        text = open(os.path.join(repo, rel), encoding="utf-8").read()
        src_folder = folder_of(rel)
        if src_folder not in LAYERS:
            problems.append("%s: folder '%s' is not a layer (%s)" % (rel, src_folder, ORDER))
            continue
        for inc in INCLUDE_RE.findall(text):
            if inc in PUBLIC:
                continue
            if "/" in inc:
                target = "src/" + inc  # root-relative to src/
            else:
                target = "src/%s/%s" % (src_folder, inc)  # a sibling
            dst_folder = folder_of(target)
            if dst_folder not in LAYERS or not os.path.exists(os.path.join(repo, target)):
                problems.append('%s: #include "%s" is not a file of a layer folder (write it root-relative to src/)'
                                % (rel, inc))
                continue
            graph.setdefault(rel, set()).add(target)
            if not allowed(src_folder, dst_folder):
                problems.append('%s: #include "%s" runs up or sideways (%s; %s)' % (rel, inc, rule_text(src_folder),
                                                                                   ORDER))
            elif verbose:
                print("include %s -> %s" % (rel, target))
    for comp in cycles(graph):
        problems.append("include circle: " + " <-> ".join(comp))


def object_files(repo, objects, cc):
    """{ 'src/folder/name.c': path of its object }"""
    found = {}
    if objects:
        for dirpath, _, files in os.walk(objects):
            for f in files:
                m = re.match(r"(.+\.c)\.o$|(.+)\.o$", f)
                if not m:
                    continue
                folder = os.path.basename(dirpath)
                name = m.group(1) or (m.group(2) + ".c")
                rel = "src/%s/%s" % (folder, name)
                if folder in LAYERS and os.path.exists(os.path.join(repo, rel)):
                    found[rel] = os.path.join(dirpath, f)
        missing = [s for s in sources(repo) if s.endswith(".c") and s not in found]
        if missing:
            sys.exit("check_layers: no object for %s under %s (build first, or omit --objects)" %
                     (", ".join(missing), objects))
        return found, None
    tmp = tempfile.TemporaryDirectory(prefix="check_layers.")
    blas = subprocess.run(["pkg-config", "--cflags", "openblas"], capture_output=True, text=True).stdout.split()
    flags = ["-std=c11", "-O0", "-D_GNU_SOURCE", "-DTOKEMB_BUILDING_LIBRARY", "-I" + os.path.join(repo, "include"),
             "-I" + os.path.join(repo, "src")] + blas

    def compile_one(rel):
        obj = os.path.join(tmp.name, rel.replace("/", "_") + ".o")
        r = subprocess.run([*shlex.split(cc), *flags, "-c", os.path.join(repo, rel), "-o", obj],
                           capture_output=True, text=True)
        if r.returncode:
            sys.exit("check_layers: cannot compile %s:\n%s" % (rel, r.stderr))
        return rel, obj

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for rel, obj in pool.map(compile_one, [s for s in sources(repo) if s.endswith(".c")]):
            found[rel] = obj
    return found, tmp


def nm(obj):
    r = subprocess.run(["nm", "-P", obj], capture_output=True, text=True)
    if r.returncode:
        sys.exit("check_layers: nm %s failed: %s" % (obj, r.stderr))
    defined, needed = set(), set()
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        name, kind = f[0], f[1]
        if kind == "U":
            needed.add(name)
        elif kind in "TDBRCVWG":  # global (upper case) definitions: functions, data, read-only data, common
            defined.add(name)
    return defined, needed


def check_calls(repo, objects, cc, problems, verbose):
    objs, tmp = object_files(repo, objects, cc)
    owner, needs = {}, {}
    for rel, obj in sorted(objs.items()):
        defined, needed = nm(obj)
        needs[rel] = needed
        for sym in defined:
            if sym in owner and owner[sym] != rel:
                problems.append("symbol %s is defined in both %s and %s" % (sym, owner[sym], rel))
            owner[sym] = rel
    graph = {}
    for rel in sorted(needs):
        src_folder = folder_of(rel)
        for sym in sorted(needs[rel]):
            dst = owner.get(sym)
            if dst is None or dst == rel:
                continue  # libc, libm, OpenBLAS, pthreads
            graph.setdefault(rel, set()).add(dst)
            if not allowed(src_folder, folder_of(dst)):
                problems.append("%s: uses %s of %s, up or sideways (%s; %s)" % (rel, sym, dst, rule_text(src_folder),
                                                                               ORDER))
            elif verbose:
                print("call %s -> %s (%s)" % (rel, dst, sym))
    for comp in cycles(graph):
        problems.append("call circle: " + " <-> ".join(comp))
    if tmp:
        tmp.cleanup()
    return len(objs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--objects", help="folder holding the objects of src/*/*.c (e.g. build/CMakeFiles/tokemb.dir)")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every allowed edge too")
    args = ap.parse_args()
    problems = []
    check_includes(args.repo, problems, args.verbose)
    n = check_calls(args.repo, args.objects, args.cc, problems, args.verbose)
    if problems:
        for p in problems:
            print("check_layers: " + p)
        print("check_layers: %d violation(s) of the layer rule (src/README.md)" % len(problems))
        return 1
    print("check_layers: %d sources, %d objects: includes and calls follow %s, no circles"
          % (len(sources(args.repo)), n, ORDER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
