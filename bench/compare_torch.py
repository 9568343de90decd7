#!/usr/bin/python3
"""compare_torch.py - tokemb against torch 1.13 in one process, on the same numpy buffers.

Peers: index_select(out=) and F.embedding (lookup), F.embedding_bag sum L=20 (bags),
quantized.embedding_bag_byte_rowwise_offsets sum L=20 over the table packed by
quantized.embedding_bag_byte_prepack, wrapped by tokemb as Q8_ROW (bags-q8: same bytes, outputs must be
bit-equal), tokemb_grad_coalesce (N = 2048) vs aten.embedding_sparse_backward + .coalesce() (torch's
sparse=True backward) and vs aten.embedding_dense_backward (a zero-filled V x D gradient, 2.1 GB at D=4096),
the HF rotate_half formula with precomputed cos/sin vs tokemb_rope_apply (rope; [tokens, 32 heads, 128]).
'bound' rows (not in the default --ops) time a contiguous torch copy_ of the lookup's output bytes against
tokemb's lookup and against index_select: ratio = t_copy / t_lookup, the lookup's rate as a fraction of a
plain copy of the same bytes with the same threads, the ceiling neither library can pass by much (a
gather reads rows at random places; the copy streams them). The 'tokemb ns/tok' column holds the lookup
(tokemb's or index_select's, as the peer column says), 'torch ns/tok' the copy.

Lookup and grad run in two regimes (--regimes): warm = the same ids on every call (the rows stay in
cache between calls), cold = new ids on every call (a cycle of id sets whose rows together exceed the
last-level cache by 2x, up to 64 sets, so each call reads rows no recent call touched). At D=1024 they
differ by about 2x; the regime is a column of the output and the CSV.

The table is one numpy float32 array, wrapped by tokemb (tokemb_table_wrap, no copy) and viewed by torch
(torch.from_numpy, no copy); ids and the preallocated outputs are shared the same way. Each repetition
times tokemb and torch back to back (order alternating, each batch after one untimed warm call); the
reported ratio is the median over
repetitions of t_torch / t_tokemb (> 1: tokemb is faster), with its range (min-max over repetitions) in
the CSV. Both libraries get the same thread count (torch.set_num_threads and tokemb_set_num_threads).
Outputs are checked for equality once per case. bench/report.py turns the CSVs of one or more runs into
the tables of docs/performance.md and the README.

    /usr/bin/python3 bench/compare_torch.py [--lib build/libtokemb.so] [--threads 1,2] [--quick]
        [--dims 4,16,64,256,1024,4096] [--vocab 128256] [--ops lookup,bags,bags-q8,grad,rope,call,backend,bound]
        [--regimes warm,cold] [--backend openmp|pool] [--csv out.csv]

Each row also prints the range [min-max] of the paired ratios. 'call' rows: ns per CALL of tiny lookups
(N = 1, 16, 64, 1024 tokens, D = 768) against torch and against tokemb's own single-thread call (the plain
loop). Lookups, bags, ... run on torch's OpenMP workers (tokemb_use_host_openmp, what `import tokemb`
does after `import torch`) unless --backend pool. 'backend' rows: the built-in pool against 1 thread
and against torch's OpenMP workers (tokemb_use_host_openmp), ratio = t_other / t_pool. The closing summary gives tokemb at the last thread count against the first, same process.
Run it as users run torch: one process, default settings, no environment variables.
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

P = ctypes.c_void_p


def load_lib(path):
    lib = ctypes.CDLL(path)
    sigs = {
        "tokemb_last_error": (ctypes.c_char_p, []),
        "tokemb_set_num_threads": (ctypes.c_int32, [ctypes.c_int32]),
        "tokemb_table_wrap": (ctypes.c_int32, [P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32,
                                               ctypes.c_uint32, ctypes.POINTER(P)]),
        "tokemb_table_free": (None, [P]),
        "tokemb_lookup": (ctypes.c_int32, [P, P, ctypes.c_size_t, P]),
        "tokemb_lookup_i32": (ctypes.c_int32, [P, P, ctypes.c_size_t, P]),
    }
    optional = {
        "tokemb_lookup_bags": (ctypes.c_int32, [P, P, ctypes.c_size_t, P, ctypes.c_size_t, ctypes.c_int32, P, P]),
        "tokemb_grad_coalesce": (ctypes.c_int32, [P, P, ctypes.c_size_t, P, P, P, ctypes.POINTER(ctypes.c_size_t)]),
        "tokemb_grad_accumulate": (ctypes.c_int32, [P, P, ctypes.c_size_t, P, P]),
        "tokemb_posenc_create_rope": (ctypes.c_int32, [ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_int32,
                                                       ctypes.POINTER(P)]),
        "tokemb_posenc_free": (None, [P]),
        "tokemb_rope_apply": (ctypes.c_int32, [P, P, ctypes.c_size_t, ctypes.c_size_t, P]),
        "tokemb_use_host_openmp": (ctypes.c_int32, []),
        "tokemb_set_parallel_for": (None, [P, P]),
    }
    for name, (res, args) in list(sigs.items()) + list(optional.items()):
        if not hasattr(lib, name):
            if name in sigs:
                raise SystemExit("compare_torch: %s lacks %s" % (path, name))
            continue
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    return lib


def ptr(a):
    return a.ctypes.data_as(P)


def ok(lib, st, what):
    if st != 0:
        raise SystemExit("compare_torch: %s failed (%d): %s" % (what, st, lib.tokemb_last_error().decode()))


def zipf_ids(rng, v, n, s):
    ranks = np.arange(1, v + 1, dtype=np.float64)
    p = ranks ** -s
    p /= p.sum()
    perm = rng.permutation(v)
    return perm[rng.choice(v, size=n, p=p)].astype(np.int64)


def timed(fn, k):
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k


def pair(f_tk, f_torch, reps, min_sample):
    f_tk()
    f_torch()
    t1 = max(timed(f_tk, 1), timed(f_torch, 1), 1e-7)
    k = max(1, min(10000, int(min_sample / t1)))
    tk, th, ratio = [], [], []
    for r in range(reps):
        # one untimed call before each timed batch: each side is measured with its own working set warm
        # (otherwise the first call of a short batch pays for the other library's cache footprint)
        if r % 2:
            f_torch()
            b = timed(f_torch, k)
            f_tk()
            a = timed(f_tk, k)
        else:
            f_tk()
            a = timed(f_tk, k)
            f_torch()
            b = timed(f_torch, k)
        tk.append(a)
        th.append(b)
        ratio.append(b / a)
    return statistics.median(tk), statistics.median(th), statistics.median(ratio), min(ratio), max(ratio)


def llc_bytes():
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            v = f.read().strip()
        return int(v[:-1]) * {"K": 1 << 10, "M": 1 << 20}[v[-1]] if v[-1] in "KM" else int(v)
    except (OSError, ValueError, KeyError):
        return 32 << 20


def cycler(k):
    """Index of the next of k id sets on every call (cold regime)."""
    c = [0]

    def nxt():
        c[0] = (c[0] + 1) % k
        return c[0]
    return nxt



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--lib", default=os.environ.get("TOKEMB_LIBRARY", os.path.join(here, "..", "build", "libtokemb.so")))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--dims", default=None)
    ap.add_argument("--ids", default="uniform,zipf1.1")
    ap.add_argument("--ops", default="lookup,bags,bags-q8,grad,rope,call,backend")
    ap.add_argument("--regimes", default="warm,cold", help="lookup/grad: warm (same ids), cold (new ids each call)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv", default=None)
    ap.add_argument("--backend", default="openmp", choices=("openmp", "pool"),
                    help="tokemb's parallel loops: on torch's OpenMP workers (what the tokemb package does "
                         "when torch is imported; the default) or on tokemb's own pool")
    a = ap.parse_args()
    lib = load_lib(a.lib)
    if a.backend == "openmp" and hasattr(lib, "tokemb_use_host_openmp"):
        ok(lib, lib.tokemb_use_host_openmp(), "tokemb_use_host_openmp")
    dims = [int(x) for x in (a.dims or ("4,16,64,256,1024" if a.quick else "3,4,8,16,32,64,128,256,1024,4096")).split(",")]
    threads = [int(x) for x in a.threads.split(",")]
    reps = a.reps or (7 if a.quick else 15)
    min_sample = 2e-3 if a.quick else 1e-2
    ops = a.ops.split(",")
    regimes = a.regimes.split(",")
    llc = llc_bytes()
    rng = np.random.default_rng(1234)
    V = a.vocab
    rows = []
    print("# torch %s, tokemb %s, vocab %d, reps %d; ratio = t_torch / t_tokemb (median of alternating pairs)"
          % (torch.__version__, os.path.basename(a.lib), V, reps))
    hdr = "%-8s %-28s %5s %6s %-8s %-5s %2s %12s %12s %8s %13s" % ("op", "torch peer", "dim", "tokens", "ids", "regime",
                                                                   "th", "tokemb ns/tok", "torch ns/tok", "ratio", "range")
    print(hdr)
    for D in dims:
        W = (rng.standard_normal((V, D), dtype=np.float32))
        h = P()
        ok(lib, lib.tokemb_table_wrap(ptr(W), V, D, D, 0, 0, ctypes.byref(h)), "tokemb_table_wrap")
        Wt = torch.from_numpy(W)
        qh, Qt, Q = None, None, None
        n = int(min(65536, max(256, (16 << 20) // (4 * D))))
        for dist in a.ids.split(","):
            def new_ids(m, dist=dist):
                return rng.integers(0, V, m, dtype=np.int64) if dist == "uniform" else zipf_ids(rng, V, m, float(dist[4:]))
            ids = new_ids(n)
            cold_ids = None
            ids_t = torch.from_numpy(ids)
            out_tk = np.zeros((n, D), np.float32)
            out_th = np.zeros((n, D), np.float32)
            out_th_t = torch.from_numpy(out_th)
            for th in threads:
                torch.set_num_threads(th)
                ok(lib, lib.tokemb_set_num_threads(th), "set_num_threads")
                if "lookup" in ops and "warm" in regimes:
                    f_tk = lambda: lib.tokemb_lookup(h, ptr(ids), n, ptr(out_tk))
                    f_th = lambda: torch.index_select(Wt, 0, ids_t, out=out_th_t)
                    r = pair(f_tk, f_th, reps, min_sample)
                    assert np.array_equal(out_tk, out_th), "lookup output differs from torch"
                    rows.append(("lookup", "index_select(out=)", D, n, dist, "warm", th) + r)
                    f_th2 = lambda: F.embedding(ids_t, Wt)
                    rows.append(("lookup", "F.embedding (allocating)", D, n, dist, "warm", th) +
                                pair(f_tk, f_th2, reps, min_sample))
                if "bound" in ops and "warm" in regimes:  # the same bytes as one contiguous copy: the ceiling
                    src_c, dst_c = torch.from_numpy(np.ascontiguousarray(W[np.arange(n) % V])), torch.empty(n, D)
                    f_cp = lambda: dst_c.copy_(src_c)
                    f_tk = lambda: lib.tokemb_lookup(h, ptr(ids), n, ptr(out_tk))
                    f_th = lambda: torch.index_select(Wt, 0, ids_t, out=out_th_t)
                    rows.append(("bound", "copy_ / tokemb lookup", D, n, dist, "warm", th) +
                                pair(f_tk, f_cp, reps, min_sample))
                    rows.append(("bound", "copy_ / index_select", D, n, dist, "warm", th) +
                                pair(f_th, f_cp, reps, min_sample))
                if "lookup" in ops and "cold" in regimes:
                    if cold_ids is None:
                        ncold = int(max(2, min(64, -(-2 * llc // (n * D * 4)))))
                        cold_ids = [ids] + [new_ids(n) for _ in range(ncold - 1)]
                        cold_t = [torch.from_numpy(x) for x in cold_ids]
                    ck, ct = cycler(len(cold_ids)), cycler(len(cold_ids))
                    f_tk = lambda: lib.tokemb_lookup(h, ptr(cold_ids[ck()]), n, ptr(out_tk))
                    f_th = lambda: torch.index_select(Wt, 0, cold_t[ct()], out=out_th_t)
                    r = pair(f_tk, f_th, reps, min_sample)
                    lib.tokemb_lookup(h, ptr(cold_ids[1]), n, ptr(out_tk))
                    torch.index_select(Wt, 0, cold_t[1], out=out_th_t)
                    assert np.array_equal(out_tk, out_th), "lookup output differs from torch"
                    rows.append(("lookup", "index_select(out=)", D, n, dist, "cold", th) + r)
                if ("bags" in ops or "bags-q8" in ops) and dist == "uniform":  # bags of L = 20 over the same ids
                    L = 20
                    nb = max(1, n // L)
                    offs = np.arange(0, nb * L + 1, L, dtype=np.int64)
                    bids = ids[: nb * L]
                    bids_t = torch.from_numpy(bids)
                if "bags" in ops and hasattr(lib, "tokemb_lookup_bags") and dist == "uniform":
                    offs_t = torch.from_numpy(offs[:-1].copy())
                    bout = np.zeros((nb, D), np.float32)
                    f_tk = lambda: lib.tokemb_lookup_bags(h, ptr(bids), nb * L, ptr(offs), nb, 0, None, ptr(bout))
                    f_th = lambda: F.embedding_bag(bids_t, Wt, offs_t, mode="sum")
                    r = pair(f_tk, f_th, reps, min_sample)
                    ref = F.embedding_bag(bids_t, Wt, offs_t, mode="sum").numpy()
                    assert np.allclose(bout, ref, rtol=1e-5, atol=1e-5), "bag output differs from torch"
                    rows.append(("bags", "embedding_bag sum L=20", D, nb * L, dist, "warm", th) + r)
                if "bags-q8" in ops and hasattr(lib, "tokemb_lookup_bags") and dist == "uniform":
                    if qh is None:  # torch's row-wise 8-bit layout: D codes, then float scale and bias
                        Qt = torch.ops.quantized.embedding_bag_byte_prepack(Wt)
                        Q = Qt.numpy()
                        qh = P()
                        ok(lib, lib.tokemb_table_wrap(ptr(Q), V, D, D + 8, 3, 0, ctypes.byref(qh)), "tokemb_table_wrap q8")
                    qoffs_t = torch.from_numpy(offs)  # with the last offset (include_last_offset=True)
                    qout = np.zeros((nb, D), np.float32)
                    f_tk = lambda: lib.tokemb_lookup_bags(qh, ptr(bids), nb * L, ptr(offs), nb, 0, None, ptr(qout))
                    f_th = lambda: torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
                        Qt, bids_t, qoffs_t, False, 0, False, None, None, True)
                    r = pair(f_tk, f_th, reps, min_sample)
                    assert np.array_equal(qout, f_th().numpy()), "Q8_ROW bag output differs from torch's"
                    rows.append(("bags-q8", "embedding_bag_byte sum L=20", D, nb * L, dist, "warm", th) + r)
                if "grad" in ops and hasattr(lib, "tokemb_grad_coalesce"):
                    grad_rows(lib, rows, h, V, D, n, ids, new_ids, dist, th, regimes, llc, rng, reps, min_sample)
                flush_rows(rows)
        lib.tokemb_table_free(h)
        if qh is not None:
            lib.tokemb_table_free(qh)
        del Wt, W, Qt, Q
    if "rope" in ops and hasattr(lib, "tokemb_rope_apply"):
        rope_rows(lib, rows, threads, reps, min_sample, a.quick)
        flush_rows(rows)
    if "call" in ops:
        small_rows(lib, rows, threads, reps)
    if "backend" in ops and len(threads) > 1:
        backend_rows(lib, a.backend, rows, threads, reps)
    summary(rows, threads)
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("op,torch_peer,dim,tokens,ids,regime,threads,tokemb_s,torch_s,ratio,ratio_min,ratio_max\n")
            for r in rows:
                f.write("%s,%s,%d,%d,%s,%s,%d,%.6g,%.6g,%.4f,%.4f,%.4f\n" % r)


printed = [0]


def flush_rows(rows):
    while printed[0] < len(rows):
        op, peer, d, nn, di, reg, t_, a_tk, a_th, rat, lo, hi = rows[printed[0]]
        print("%-8s %-28s %5d %6d %-8s %-5s %2d %12.2f %12.2f %8.2f %6.2f-%-6.2f" % (
            op, peer, d, nn, di, reg, t_, a_tk / nn * 1e9, a_th / nn * 1e9, rat, lo, hi))
        sys.stdout.flush()
        printed[0] += 1


def small_rows(lib, rows, threads, reps):
    """Per-call cost of tiny lookups (the decode step: N = 1..64 tokens per call) against torch's
    index_select(out=) and against a plain loop (the same call pinned to 1 thread: tokemb's own
    single-thread cost, so 'ratio' in the plain rows is t_1thread / t_Nthreads, > 0.83 meets the 1.2x goal).
    ns/tok columns hold ns per CALL here."""
    V, D = 128256, 768
    rng = np.random.default_rng(11)
    W = rng.standard_normal((V, D), dtype=np.float32)
    h = P()
    ok(lib, lib.tokemb_table_wrap(ptr(W), V, D, D, 0, 0, ctypes.byref(h)), "tokemb_table_wrap")
    Wt = torch.from_numpy(W)
    for n in (1, 16, 64, 1024):
        ids = rng.integers(0, V, n, dtype=np.int64)
        ids_t = torch.from_numpy(ids)
        out_tk = np.zeros((n, D), np.float32)
        out_th_t = torch.zeros((n, D))
        pi, po = ptr(ids), ptr(out_tk)  # converted once: the calls below time the library, not numpy
        for th in threads:
            torch.set_num_threads(th)
            ok(lib, lib.tokemb_set_num_threads(th), "set_num_threads")
            f_tk = lambda: lib.tokemb_lookup(h, pi, n, po)
            f_th = lambda: torch.index_select(Wt, 0, ids_t, out=out_th_t)
            r = pair(f_tk, f_th, reps, 2e-3)
            rows.append(("call", "index_select(out=) D=768", D, n, "per-call", "warm", th, r[0] * n, r[1] * n, r[2], r[3], r[4]))

            def f_one():  # the plain loop: the same call on one thread
                lib.tokemb_set_num_threads(1)
                lib.tokemb_lookup(h, pi, n, po)
                lib.tokemb_set_num_threads(th)

            def f_cur():  # same two setter calls, so the pair differs only in the thread count
                lib.tokemb_set_num_threads(th)
                lib.tokemb_lookup(h, pi, n, po)
                lib.tokemb_set_num_threads(th)
            r = pair(f_cur, f_one, reps, 2e-3)
            rows.append(("call", "tokemb 1 thread", D, n, "per-call", "warm", th, r[0] * n, r[1] * n, r[2], r[3], r[4]))
        flush_rows(rows)
    lib.tokemb_table_free(h)


def backend_rows(lib, backend, rows, threads, reps):
    """The parallel-for backends at the largest thread count, paired in this process: tokemb's built-in
    pool against torch's own OpenMP workers (tokemb_use_host_openmp) and against 1 thread. op 'backend':
    tokemb_s = pool, torch_s = the other, ratio = t_other / t_pool (> 1: the pool is faster)."""
    th = threads[-1]
    has_omp = hasattr(lib, "tokemb_use_host_openmp") and hasattr(lib, "tokemb_set_parallel_for")
    rng = np.random.default_rng(21)
    V = 128256
    for D in (64, 768):
        n = int(min(65536, (16 << 20) // (4 * D)))
        W = rng.standard_normal((V, D), dtype=np.float32)
        h = P()
        ok(lib, lib.tokemb_table_wrap(ptr(W), V, D, D, 0, 0, ctypes.byref(h)), "tokemb_table_wrap")
        ids = rng.integers(0, V, n, dtype=np.int64)
        out = np.zeros((n, D), np.float32)
        pi, po = ptr(ids), ptr(out)
        torch.set_num_threads(th)

        def with_(nt, omp):
            def f():
                lib.tokemb_set_num_threads(nt)
                if has_omp:
                    if omp:
                        lib.tokemb_use_host_openmp()
                    else:
                        lib.tokemb_set_parallel_for(None, None)
                lib.tokemb_lookup(h, pi, n, po)
            return f
        f_pool = with_(th, False)
        others = [("1 thread", with_(1, False))]
        if has_omp:
            others.append(("torch's OpenMP", with_(th, True)))
        for name, f in others:
            r = pair(f_pool, f, reps, 1e-2)
            rows.append(("backend", name + " vs pool", D, n, "uniform", "warm", th) + r)
        lib.tokemb_table_free(h)
        flush_rows(rows)
    if has_omp:  # back to the run's backend
        if backend == "openmp":
            lib.tokemb_use_host_openmp()
        else:
            lib.tokemb_set_parallel_for(None, None)


def summary(rows, threads):
    """2 threads against 1 in this process, per case: t_tokemb(1 thread) / t_tokemb(n threads)."""
    if len(threads) < 2:
        return
    t1 = {r[:6]: r[7] for r in rows if r[6] == threads[0]}
    print("# tokemb at %d threads vs %d thread(s), same process (> 1: faster with more threads)" % (threads[-1], threads[0]))
    seen = set()
    for r in rows:
        if r[6] != threads[-1] or r[:6] not in t1 or r[0] in ("call", "backend", "bound") or (r[0], r[2], r[3], r[4], r[5]) in seen:
            continue
        seen.add((r[0], r[2], r[3], r[4], r[5]))
        print("%-8s %5d %6d %-8s %-5s %8.2f" % (r[0], r[2], r[3], r[4], r[5], t1[r[:6]] / r[7]))


def grad_rows(lib, rows, h, V, D, n, ids, new_ids, dist, th, regimes, llc, rng, reps, min_sample):
    """tokemb_grad_coalesce (N = 2048) against torch's sparse backward + coalesce() and against the dense
    backward (which allocates and zero-fills V x D floats: 2.1 GB at D = 4096). Warm: the same ids each call;
    cold: a cycle of id sets (each with its own gradient rows) larger than 2x the last-level cache."""
    ng = 2048
    ids = ids[:ng] if len(ids) >= ng else new_ids(ng)
    nsets = 1
    if "cold" in regimes:
        nsets = int(max(2, min(64, -(-2 * llc // (2 * ng * D * 4)))))
    gsets = [rng.standard_normal((ng, D), dtype=np.float32) for _ in range(nsets)]
    isets = [ids[:ng].copy()] + [new_ids(ng) for _ in range(nsets - 1)]
    gsets_t = [torch.from_numpy(g) for g in gsets]
    isets_t = [torch.from_numpy(i) for i in isets]
    uid = np.zeros(ng, np.int64)
    urows = np.zeros((ng, D), np.float32)
    nu = ctypes.c_size_t(0)
    peers = [("embedding_sparse_backward+coalesce",
              lambda k: torch.ops.aten.embedding_sparse_backward(gsets_t[k], isets_t[k], V, -1, False).coalesce()),
             ("embedding_dense_backward",
              lambda k: torch.ops.aten.embedding_dense_backward(gsets_t[k], isets_t[k], V, -1, False))]
    for regime in regimes:
        cyc = 1 if regime == "warm" else nsets
        for name, peer in peers:
            ck, ct = cycler(cyc), cycler(cyc)

            def f_tk():
                k = ck()
                lib.tokemb_grad_coalesce(h, ptr(isets[k]), ng, ptr(gsets[k]), ptr(uid), ptr(urows), ctypes.byref(nu))

            def f_th():
                return peer(ct())
            r = pair(f_tk, f_th, max(3, reps // 3), min_sample)
            lib.tokemb_grad_coalesce(h, ptr(isets[0]), ng, ptr(gsets[0]), ptr(uid), ptr(urows), ctypes.byref(nu))
            ref = peer(0)
            m = nu.value
            if ref.is_sparse:
                # the same ids; the values equal torch's dense backward bit for bit (the dense peer's row
                # asserts it), while coalesce() may sum a row's contributions in another order
                assert np.array_equal(ref.indices()[0].numpy(), uid[:m]), "coalesced ids differ from torch"
                assert np.allclose(ref.values().numpy(), urows[:m], rtol=1e-5, atol=1e-5), "coalesced grad differs"
            else:
                assert np.array_equal(ref.numpy()[uid[:m]], urows[:m]), "coalesced grad differs from torch"
            rows.append(("grad", name, D, ng, dist, regime, th) + r)


def rope_rows(lib, rows, threads, reps, min_sample, quick):
    """RoPE on q[tokens][32 heads][128] against the HF Llama formula q*cos + rotate_half(q)*sin with cos/sin
    precomputed outside the timed region (tokemb computes its cos/sin in double inside every call).
    ns/token is per token (all 32 heads)."""
    heads, hd = 32, 128
    for n in ([2048] if quick else [256, 2048]):
        for layout, name in ((0, "neox"),):
            pe = P()
            ok(lib, lib.tokemb_posenc_create_rope(hd, hd, 10000.0, layout, ctypes.byref(pe)), "create_rope")
            x = np.random.default_rng(5).standard_normal((n, heads, hd), dtype=np.float32)
            pos = np.arange(n, dtype=np.int64)
            inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            freqs = torch.outer(torch.arange(n, dtype=torch.float32), inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]  # [1, n, 1, hd]
            q = torch.from_numpy(x.copy())[None]  # [1, n, heads, hd]

            def rotate_half(t):
                t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
                return torch.cat((-t2, t1), dim=-1)

            for th in threads:
                torch.set_num_threads(th)
                ok(lib, lib.tokemb_set_num_threads(th), "set_num_threads")
                f_tk = lambda: lib.tokemb_rope_apply(pe, ptr(x), n, heads, ptr(pos))
                f_th = lambda: (q * cos) + (rotate_half(q) * sin)
                r = pair(f_tk, f_th, reps, min_sample)
                rows.append(("rope", "HF q*cos+rotate_half(q)*sin", hd, n, name, "warm", th) + r)
            lib.tokemb_posenc_free(pe)

if __name__ == "__main__":
    main()
