#!/usr/bin/python3
"""make_figures.py - the figures of docs/positional.md, computed by the tokemb Python package.

    TOKEMB_LIBRARY=build PYTHONPATH=python /usr/bin/python3 docs/figures/make_figures.py [--out docs/figures]

Writes sinusoidal.png, rope.png, alibi.png and t5.png (Debian python3-matplotlib, Agg backend). Every
value plotted comes from the library (encode, apply, attn_bias, buckets); only the plotting is here.
"""
import argparse
import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import tokemb  # noqa: E402


def sinusoidal(out):
    dim, n = 128, 256
    pe = tokemb.Sinusoidal(dim, layout="concat").encode(np.arange(n))  # sin half, then cos half
    fig, ax = plt.subplots(figsize=(8, 4.2))
    im = ax.imshow(pe.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, origin="lower", interpolation="nearest")
    ax.set_xlabel("position")
    ax.set_ylabel("channel (concat layout: 0-63 sin, 64-127 cos)")
    ax.set_title("Sinusoidal encoding, dim %d, base 10000 (tokemb.Sinusoidal(%d, layout='concat').encode(range(%d)))"
                 % (dim, dim, n),
                 fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def rope(out):
    hd, n = 128, 512
    r = tokemb.Rope(hd)  # neox layout: pair i = channels (i, i + 64), angle = pos * base^(-2i/128)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    # left: the rotation of a unit vector in a few channel pairs as the position grows
    m = np.arange(96)
    e = np.zeros((m.size, 1, hd), np.float32)
    pairs = [0, 8, 24, 48]
    for i in pairs:
        e[:, 0, i] = 1.0
    rot = r.apply(e, m)
    for i in pairs:
        a1.plot(m, rot[:, 0, i], label="pair %d: θ = %.3g rad/position" % (i, 10000.0 ** (-2 * i / hd)))
    a1.set_xlabel("position m")
    a1.set_ylabel("cos(m·θ): first coordinate of the rotated pair")
    a1.set_title("RoPE rotates channel pair i by the angle m·θᵢ", fontsize=10)
    a1.legend(fontsize=8, loc="lower left")
    a1.grid(alpha=0.3)
    # right: <R_m q, R_n k> against the distance m - n for q = k = ones (RoFormer's long-term decay)
    dist = np.arange(n)
    ones = np.ones((1, 1, hd), np.float32)
    q0 = r.apply(ones, [0])[0, 0]
    kd = r.apply(np.repeat(ones, n, axis=0), dist)[:, 0, :]
    a2.plot(dist, kd @ q0 / hd, label="q = k = ones")
    a2.axhline(0, color="grey", lw=0.8)
    a2.set_xlabel("relative distance m - n")
    a2.set_ylabel("<R_m q, R_n k> / dim")
    a2.set_title("Attention score decays with distance (head_dim %d)" % hd, fontsize=10)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def alibi(out):
    heads, n = 8, 24
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    causal = tokemb.Alibi(heads).attn_bias(n, n)
    sym = tokemb.Alibi(heads, causal=False).attn_bias(n, n)
    slopes = tokemb.Alibi(heads).slopes()
    panels = [(causal[0], "causal, head 0 (slope %.3g)" % slopes[0]),
              (causal[heads - 1], "causal, head %d (slope %.3g)" % (heads - 1, slopes[heads - 1])),
              (sym[0], "symmetric, head 0")]
    for ax, (b, title) in zip(axes, panels):
        finite = np.where(np.isinf(b), np.nan, b)  # -inf (masked) drawn blank
        im = ax.imshow(finite, cmap="viridis", vmin=np.nanmin(finite), vmax=0, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
    fig.suptitle("ALiBi attention bias -slope·|i - j|, %d heads (tokemb.Alibi(%d).attn_bias(%d, %d)); blank = masked (-inf)"
                 % (heads, heads, n, n), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def t5(out):
    n = 64
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    bi = tokemb.T5(4, 32, 128, bidirectional=True)
    uni = tokemb.T5(4, 32, 128, bidirectional=False)
    im0 = axes[0].imshow(bi.buckets(n, n), cmap="viridis", interpolation="nearest")
    axes[0].set_title("bidirectional buckets (32, max_distance 128)", fontsize=9)
    fig.colorbar(im0, ax=axes[0], fraction=0.046)
    im1 = axes[1].imshow(uni.buckets(n, n), cmap="viridis", interpolation="nearest")
    axes[1].set_title("causal (unidirectional) buckets", fontsize=9)
    fig.colorbar(im1, ax=axes[1], fraction=0.046)
    # the bias of one head with a learned table set to a smooth profile: bias = table[bucket, head]
    tab = bi.table
    rng = np.random.default_rng(1)
    w = np.cumsum(rng.standard_normal((32, 4)) * 0.3, axis=0).astype(np.float32)
    tab.write_rows(0, w)
    im2 = axes[2].imshow(bi.attn_bias(n, n)[0], cmap="RdBu_r", interpolation="nearest")
    axes[2].set_title("bias of head 0 = table[bucket, 0] (random-walk table)", fontsize=9)
    fig.colorbar(im2, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, f in (("sinusoidal", sinusoidal), ("rope", rope), ("alibi", alibi), ("t5", t5)):
        p = os.path.join(a.out, name + ".png")
        f(p)
        print(p)


if __name__ == "__main__":
    main()
