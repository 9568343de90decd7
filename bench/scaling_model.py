#!/usr/bin/env python3
"""scaling_model.py - an alpha-beta model of libtokemb_mpi's sharded lookup at 8-1024 ranks (docs/scaling.md).

Fed with the local costs measured by `tokemb-bench --suite mpi` at np = 1 (its CSV: the lookup row of the
given dim; per distinct id: plan + local gather, per id: output), and the message structure of
tokemb_mpi_lookup (tokemb_mpi_table_stat counts it: 4 error agreements, one MPI_Alltoall of the counts, one
MPI_Alltoallv of the ids, one of the rows).

  time(P) = n * (c_plan + c_out) + n * u * c_local                      local work (measured)
          + 4 * ceil(log2 P) * alpha                                    agreements (MPI_Allreduce of one int)
          + 3 * (P - 1) * alpha + 4 * P * beta                          counts, ids and rows: P - 1 messages each
          + n * u * (8 + 4 D) * (P - 1) / P * beta                      payload leaving the rank (full duplex)

alpha = seconds per message, beta = seconds per byte of one rank's network link. Throughput = P * n / time.
"bare" is the benchmark's peer (the same local work, only the ids' and the rows' MPI_Alltoallv, counts known):
bare/sharded is the model's prediction of the bench's ratio on a real network.

  /usr/bin/python3 bench/scaling_model.py tokemb-bench-mpi.csv --dim 128 --tokens 212992 --uniq 0.5
"""
import argparse
import csv
import math
import sys


def local_costs(path, dim, ids, best):
    """ns per id (plan + output) and per distinct id (local gather) from the np = 1 lookup row: its median
    time (or its fastest round with best) split by the measured phase fractions."""
    rows = [r for r in csv.DictReader(open(path)) if r["op"] == "lookup" and r["np"] == "1" and int(r["dim"]) == dim]
    rows = [r for r in rows if r["ids"] == ids] or rows
    if not rows:
        sys.exit(f"scaling_model: no np=1 lookup row of dim {dim} in {path}")
    per_id, per_uniq = [], []
    for r in rows:
        t = float(r["min_ns" if best else "ns_per_call"])
        n, u = float(r["tokens_per_rank"]), float(r["unique_frac"])
        per_id.append(t * (float(r["frac_plan"]) + float(r["frac_output"])) / n)
        per_uniq.append(t * float(r["frac_local"]) / (n * u))
    per_id.sort()
    per_uniq.sort()
    return per_id[len(per_id) // 2], per_uniq[len(per_uniq) // 2], len(rows)


def model(P, n, u, D, c_id, c_uniq, alpha, beta):
    local = n * c_id + n * u * c_uniq
    lat = 4 * math.ceil(math.log2(P)) * alpha + 3 * (P - 1) * alpha
    bw = 4 * P * beta + n * u * (8 + 4 * D) * (P - 1) / P * beta
    return local, lat, bw


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="?", help="CSV of tokemb-bench --suite mpi at np = 1")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--ids", default="uniform", help="id stream whose np = 1 row gives the local costs")
    ap.add_argument("--best", action="store_true", help="local costs from the fastest round, not the median")
    ap.add_argument("--c-id-ns", type=float, help="instead of the CSV: ns per id (plan + output)")
    ap.add_argument("--c-uniq-ns", type=float, help="instead of the CSV: ns per distinct id (gather at the owner)")
    ap.add_argument("--tokens", type=int, default=212992, help="ids per rank per step")
    ap.add_argument("--uniq", type=float, default=0.5, help="distinct fraction of a rank's ids")
    ap.add_argument("--alpha-us", type=float, default=2.0, help="seconds per message, in us")
    ap.add_argument("--gbps", default="100,200,400", help="link rates in Gb/s")
    ap.add_argument("--ranks", default="8,16,32,64,128,256,512,1024")
    a = ap.parse_args()
    if a.c_id_ns is not None and a.c_uniq_ns is not None:
        c_id, c_uniq, src = a.c_id_ns, a.c_uniq_ns, "given on the command line"
    else:
        c_id, c_uniq, k = local_costs(a.csv, a.dim, a.ids, a.best)
        src = "%s, %s np=1 lookup of dim %d (%s, %d rows)" % (a.csv, a.ids, a.dim, "fastest round" if a.best else "median", k)
    print(f"# local costs: {c_id:.1f} ns per id (plan + output), {c_uniq:.1f} ns per distinct id (gather); {src}")
    print(f"# workload: {a.tokens} ids per rank per step, {a.uniq:.2f} distinct, dim {a.dim}; alpha = {a.alpha_us} us")
    print(f"{'ranks':>6} {'Gb/s':>5} {'local_ms':>9} {'latency_ms':>10} {'bytes_ms':>9} {'step_ms':>8} "
          f"{'Mids/s/rank':>11} {'Gids/s_total':>12} {'net_share':>9} {'bare/sharded':>12}")
    alpha = a.alpha_us * 1e-6
    for g in [float(x) for x in a.gbps.split(",")]:
        beta = 8.0 / (g * 1e9)
        for P in [int(x) for x in a.ranks.split(",")]:
            local, lat, bw = model(P, a.tokens, a.uniq, a.dim, c_id * 1e-9, c_uniq * 1e-9, alpha, beta)
            t = local + lat + bw
            bare = local + 2 * (P - 1) * alpha + bw - 4 * P * beta
            print(f"{P:>6} {g:>5.0f} {local * 1e3:>9.2f} {lat * 1e3:>10.2f} {bw * 1e3:>9.2f} {t * 1e3:>8.2f} "
                  f"{a.tokens / t * 1e-6:>11.1f} {P * a.tokens / t * 1e-9:>12.2f} {(lat + bw) / t:>9.2f} {bare / t:>12.2f}")


if __name__ == "__main__":
    main()
