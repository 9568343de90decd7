#!/usr/bin/python3
"""report.py - the performance figures of README.md and docs/performance.md, from one script run.

    /usr/bin/python3 bench/report.py --run 3 [--build build] [--out DIR] [--write]
    /usr/bin/python3 bench/report.py --tb run1/tb.csv run2/tb.csv --ct run1/ct.csv run2/ct.csv [--write]

--run N runs tokemb-bench (suites lookup, bags, grad, rope) and bench/compare_torch.py (lookup, bags, grad,
rope) N times, one after the other, into DIR (default build/report-<date>), then builds the tables from
those CSVs. Without --run it builds them from the given CSVs (the same runs: one tokemb-bench CSV and one
compare_torch CSV per run). Every figure is the median over runs of that run's median paired ratio,
followed by the min-max of the per-run medians (with one run: the min-max over that run's pairs, where
the CSV has it). The header names the date, the machine (lscpu model, vCPUs, caches, THP mode), the
compiler and torch, and how many runs.

Without --write the markdown goes to stdout. With --write it replaces the text between
<!-- report:begin --> and <!-- report:end --> in README.md (the short table) and in
docs/performance.md (the full tables), so every figure there is what this run measured.
"""
import argparse
import csv
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    lscpu = sh("lscpu")

    def field(name):
        m = re.search(r"^%s:\s*(.+)$" % re.escape(name), lscpu, re.M)
        return m.group(1).strip() if m else "?"
    thp = sh("cat /sys/kernel/mm/transparent_hugepage/enabled")
    thp = re.search(r"\[(\w+)\]", thp).group(1) if "[" in thp else "?"
    flags = field("Flags")
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "baseline x86-64"
    cc = sh("cc --version").splitlines()
    torch_v = sh("/usr/bin/python3 -c 'import torch; print(torch.__version__)'")
    return ("%s, %s vCPUs, L2 %s, L3 %s, %s, THP %s; %s, torch %s, %s" %
            (field("Model name"), field("CPU(s)"), field("L2 cache"), field("L3 cache"), isa, thp,
             cc[0] if cc else "cc ?", torch_v or "?", platform.platform()))


def run(n, build, out):
    os.makedirs(out, exist_ok=True)
    bench = os.path.join(build, "bench", "tokemb-bench")
    # the library of the header's major version (a build directory may still hold an older major's file)
    with open(os.path.join(ROOT, "include", "tokemb.h")) as f:
        major = re.search(r"^#define TOKEMB_VERSION_MAJOR (\d+)$", f.read(), re.M).group(1)
    lib = os.path.join(build, "libtokemb.so." + major)
    tb, ct = [], []
    for i in range(n):
        t, c = os.path.join(out, "tb%d.csv" % i), os.path.join(out, "ct%d.csv" % i)
        subprocess.run([bench, "--suite", "lookup,bags,grad,rope", "--dim", "64,256,512,1024,4096",
                        "--threads", "1,2", "--ids", "uniform", "--csv", t], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, os.path.join(HERE, "compare_torch.py"), "--lib", lib, "--threads", "1",
                        "--ids", "uniform", "--dims", "4,16,64,256,1024,4096", "--ops", "lookup,bags,grad,rope",
                        "--csv", c], check=True, stdout=subprocess.DEVNULL)
        tb.append(t)
        ct.append(c)
        print("report: run %d of %d done" % (i + 1, n), file=sys.stderr)
    return tb, ct


def load(paths):
    runs = []
    for p in paths:
        with open(p, newline="") as f:
            runs.append(list(csv.DictReader(f)))
    return runs


def fnum(x):
    try:
        v = float(x)
        return v if v == v else None
    except (TypeError, ValueError):
        return None


def figure(runs, col, lo_col=None, hi_col=None, **match):
    """Median over runs of the matching row's `col`, and the range (per-run medians, or one run's pairs)."""
    vals, los, his = [], [], []
    for rows in runs:
        for r in rows:
            if all(str(r.get(k)) == str(v) for k, v in match.items()):
                v = fnum(r.get(col))
                if v is not None:
                    vals.append(v)
                    los.append(fnum(r.get(lo_col)) if lo_col else None)
                    his.append(fnum(r.get(hi_col)) if hi_col else None)
                break
    if not vals:
        return None
    med = statistics.median(vals)
    if len(vals) > 1:
        return med, min(vals), max(vals), len(vals)
    return med, los[0], his[0], 1


def fmt(fig, unit=""):
    if fig is None:
        return "-"
    med, lo, hi, _ = fig
    if lo is None or hi is None:
        return "%.2f%s" % (med, unit)
    return "%.2f%s (%.2f-%.2f)" % (med, unit, lo, hi)


def series(runs, dims, col, key="dim", lo=None, hi=None, unit="", **match):
    parts = []
    for d in dims:
        f = figure(runs, col, lo, hi, **dict(match, **{key: d}))
        if f is not None:
            parts.append("%s=%s: %s" % ("D" if key == "dim" else key, d, fmt(f, unit)))
    return ", ".join(parts) if parts else "-"


def build_tables(tb, ct, n_runs, when, mach):
    dims = [4, 16, 64, 256, 512, 1024, 4096]
    def tbs(col, unit="", **m):  # a tokemb-bench figure per dim (1 thread, uniform ids)
        return series(tb, dims, col, unit=unit, **dict(dict(ids="uniform", threads=1), **m))

    def cts(**m):  # a compare_torch ratio per dim (1 thread), with the pairs' range
        return series(ct, dims, "ratio", lo="ratio_min", hi="ratio_max", unit="x", threads=1, **m)

    def lk(th, d):
        return fmt(figure(tb, "ns_per_token", suite="lookup", op="lookup", variant="i64", ids="uniform",
                          threads=th, dim=d))
    short = [
        ("lookup, fraction of memcpy (1 thread)", tbs("frac_of_memcpy", suite="lookup", op="lookup", variant="i64")),
        ("lookup, 2 threads vs 1, ns/token",
         ", ".join("D=%d: %s vs %s" % (d, lk(2, d), lk(1, d)) for d in (256, 1024, 4096))),
        ("lookup vs torch `index_select(out=)`, warm (same ids every call)",
         cts(op="lookup", torch_peer="index_select(out=)", regime="warm")),
        ("lookup vs torch `index_select(out=)`, cold (new ids every call)",
         cts(op="lookup", torch_peer="index_select(out=)", regime="cold")),
        ("bags SUM, L=20, fraction of memcpy", tbs("frac_of_memcpy", suite="bags", op="lookup_bags", variant="sum")),
        ("bags SUM, L=20 vs torch `embedding_bag`", cts(op="bags")),
        ("pooled bags, F32 time / Q8_ROW time (paired)",
         tbs("ratio", unit="x", suite="bags", op="lookup_bags", variant="sum-q8row")),
        ("pooled bags, F32 time / F16 time (paired)", tbs("ratio", unit="x", suite="bags", op="lookup_bags",
                                                          variant="sum-f16")),
        ("coalesced gradient (N=2048) vs torch sparse backward + `.coalesce()`, warm",
         cts(op="grad", torch_peer="embedding_sparse_backward+coalesce", regime="warm")),
        ("same, cold (new ids and gradient every call)",
         cts(op="grad", torch_peer="embedding_sparse_backward+coalesce", regime="cold")),
        ("coalesced gradient (N=2048) vs torch dense backward (zero-fills V x D), warm",
         cts(op="grad", torch_peer="embedding_dense_backward", regime="warm")),
        ("RoPE [2048 tokens, 32 heads, 128], fraction of memcpy (NEOX / GPTJ)",
         "%s / %s" % (fmt(figure(tb, "frac_of_memcpy", suite="rope", op="rope_apply", variant="neox", tokens=2048,
                                 threads=1)),
                      fmt(figure(tb, "frac_of_memcpy", suite="rope", op="rope_apply", variant="gptj", tokens=2048,
                                 threads=1)))),
        ("RoPE NEOX, 32 heads x 128, ns/token at 1 / 16 / 2048 tokens per call (decode vs prefill)",
         " / ".join(fmt(figure(tb, "ns_per_token", suite="rope", op="rope_apply", variant="neox", tokens=t, threads=1))
                    for t in (1, 16, 2048))),
        ("RoPE [2048, 32, 128] vs the HF `rotate_half` formula with precomputed cos/sin",
         fmt(figure(ct, "ratio", "ratio_min", "ratio_max", op="rope", tokens=2048, threads=1), "x")),
    ]
    head = ("Generated by `bench/report.py` on %s from %d run(s) of `tokemb-bench` and `bench/compare_torch.py`, "
            "V = 128,256, uniform ids, 1 thread unless noted. Machine: %s. Each figure: median over runs of the "
            "run's median paired ratio (tokemb-bench: kernel rate / rate of an in-process memcpy of the same bytes "
            "on huge-page buffers; compare_torch: t_torch / t_tokemb, > 1 = tokemb faster), then the min-max of "
            "the run medians (one run: of that run's pairs)." % (when, n_runs, mach))
    md = [head, "", "| operation | measured |", "|---|---|"]
    md += ["| %s | %s |" % (k, v) for k, v in short]
    return "\n".join(md) + "\n"


def replace_block(path, text):
    with open(path) as f:
        s = f.read()
    if BEGIN not in s or END not in s:
        raise SystemExit("report: %s lacks the %s ... %s markers" % (path, BEGIN, END))
    a, b = s.index(BEGIN) + len(BEGIN), s.index(END)
    with open(path, "w") as f:
        f.write(s[:a] + "\n" + text + s[b:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=int, default=0, help="run the benchmarks N times first")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--tb", nargs="*", default=[], help="tokemb-bench CSVs, one per run")
    ap.add_argument("--ct", nargs="*", default=[], help="compare_torch CSVs, one per run")
    ap.add_argument("--write", action="store_true", help="update README.md and docs/performance.md")
    a = ap.parse_args()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if a.run:
        out = a.out or os.path.join(a.build, "report-" + when[:10])
        a.tb, a.ct = run(a.run, a.build, out)
    if not a.tb and not a.ct:
        raise SystemExit("report: give --run N or the CSVs (--tb, --ct)")
    text = build_tables(load(a.tb), load(a.ct), max(len(a.tb), len(a.ct)), when, machine())
    if a.write:
        for p in (os.path.join(ROOT, "README.md"), os.path.join(ROOT, "docs", "performance.md")):
            replace_block(p, text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
