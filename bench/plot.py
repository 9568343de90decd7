#!/usr/bin/python3
"""plot.py - turns tokemb-bench CSV into PNG charts (Debian python3-matplotlib, Agg backend).

    /usr/bin/python3 bench/plot.py tokemb-bench.csv [--out docs] [--prefix bench]

Writes, for the suites present in the CSV:
  <prefix>-gather-vs-matmul.png  one-hot sgemm time / gather time against vocabulary size, one line per
                                 (dim, tokens), with the V/20 cost model; skipped sgemm cases are hollow
  <prefix>-lookup.png            lookup rate as a fraction of in-process memcpy, and ns/token, against dim
  <prefix>-<suite>.png           fraction of memcpy per case for bags / grad / optim / rope / sinusoidal
"""
import argparse
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def num(x):
    try:
        return float(x)
    except ValueError:
        return float("nan")


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("vocab", "dim", "tokens", "threads"):
            r[k] = int(float(r[k]))
        for k in ("ns_per_call", "ns_per_token", "frac_of_memcpy", "gb_s", "memcpy_gb_s", "ratio", "gflop_s"):
            r[k] = num(r[k])
    return rows


def plot_gvm(rows, out):
    g = [r for r in rows if r["suite"] == "gather-vs-matmul" and r["threads"] == 1]
    gather = {(r["vocab"], r["dim"], r["tokens"]): r for r in g if r["op"] == "gather"}
    oh = [r for r in g if r["op"] == "onehot-sgemm"]
    if not oh:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5))
    series = defaultdict(list)
    for r in oh:
        series[(r["dim"], r["tokens"])].append(r)
    vs = sorted({r["vocab"] for r in oh})
    # many series: colour = dim (a sequential colour map), marker = tokens, and two small legends
    dims = sorted({d for d, _ in series})
    toks = sorted({n for _, n in series})
    cmap = plt.get_cmap("viridis")
    colour = {d: cmap(0.9 * i / max(len(dims) - 1, 1)) for i, d in enumerate(dims)}
    markers = "o^sDvP*Xh<>p"
    marker = {n: markers[i % len(markers)] for i, n in enumerate(toks)}
    for (d, n), rs in sorted(series.items()):
        rs.sort(key=lambda r: r["vocab"])
        xs = [r["vocab"] for r in rs]
        ys = [r["ratio"] for r in rs]
        c = colour[d]
        ax.plot(xs, ys, "-", lw=1, color=c, alpha=0.8)
        for r in rs:
            ax.plot(r["vocab"], r["ratio"], marker[n], color=c, mfc="none" if r["variant"] == "skipped" else c, ms=6)
    from matplotlib.lines import Line2D  # noqa: E402
    dim_handles = [Line2D([], [], color=colour[d], lw=2.5, label="D = %d" % d) for d in dims]
    tok_handles = [Line2D([], [], color="0.3", marker=marker[n], ls="none", ms=6, label="N = %d" % n) for n in toks]
    model = Line2D([], [], color="k", ls="--", lw=1.5, label="V/20 model")
    first = ax.legend(handles=dim_handles + [model], title="dim (colour)", fontsize=8, title_fontsize=8,
                      loc="upper left")
    ax.add_artist(first)
    ax.legend(handles=tok_handles, title="tokens (marker)", fontsize=8, title_fontsize=8, loc="lower right")
    ax.plot(vs, [v / 20 for v in vs], "k--", lw=1.5)
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vocabulary size V")
    ax.set_ylabel("one-hot sgemm time / gather time")
    ax.set_title("Gather vs one-hot matmul, 1 thread (hollow: sgemm time predicted, not run)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_lookup(rows, out):
    lk = [r for r in rows if r["suite"] == "lookup" and r["ids"] == "uniform"]
    if not lk:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    series = defaultdict(list)
    for r in lk:
        series[(r["variant"], r["threads"], r["vocab"])].append(r)
    for (var, th, v), rs in sorted(series.items()):
        rs.sort(key=lambda r: r["dim"])
        lab = "%s, %d thr%s" % (var, th, "" if v == 128256 else ", V=%d" % v)
        a1.plot([r["dim"] for r in rs], [r["frac_of_memcpy"] for r in rs], "o-", ms=3, label=lab)
        a2.plot([r["dim"] for r in rs], [r["ns_per_token"] for r in rs], "o-", ms=3, label=lab)
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xlabel("embedding dim D")
        a.grid(True, which="both", alpha=0.3)
    a1.axhline(1.0, color="grey", lw=0.8)
    a1.axhline(0.9, color="grey", lw=0.8, ls=":")
    a1.set_ylabel("rate / in-process memcpy rate")
    a1.set_title("lookup, uniform ids: fraction of memcpy")
    a2.set_yscale("log")
    a2.set_ylabel("ns per token")
    a2.set_title("lookup, uniform ids: time per token")
    a1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_generic(rows, suite, out):
    rs = [r for r in rows if r["suite"] == suite and r["frac_of_memcpy"] == r["frac_of_memcpy"]]
    if not rs:
        return None
    labels = ["%s %s D=%d %s %dt" % (r["op"], r["variant"], r["dim"], r["ids"], r["threads"]) for r in rs]
    fig, ax = plt.subplots(figsize=(8, 0.25 * len(rs) + 1.5))
    ax.barh(range(len(rs)), [r["frac_of_memcpy"] for r in rs], color="tab:blue")
    ax.set_yticks(range(len(rs)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("rate / in-process memcpy rate of the same bytes")
    ax.set_title("%s: fraction of memcpy" % suite)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--out", default=".")
    ap.add_argument("--prefix", default="bench")
    a = ap.parse_args()
    rows = load(a.csv)
    os.makedirs(a.out, exist_ok=True)
    made = []
    p = lambda name: os.path.join(a.out, "%s-%s.png" % (a.prefix, name))
    made.append(plot_gvm(rows, p("gather-vs-matmul")))
    made.append(plot_lookup(rows, p("lookup")))
    for s in ("bags", "grad", "optim", "rope", "sinusoidal", "logits"):
        made.append(plot_generic(rows, s, p(s)))
    made = [m for m in made if m]
    if not made:
        print("plot.py: nothing to plot in %s" % a.csv, file=sys.stderr)
        return 1
    for m in made:
        print(m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
