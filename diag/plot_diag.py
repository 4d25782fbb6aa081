#!/usr/bin/python3
"""Heatmap of ppu-diag's ICN link bandwidth: one panel a server, chips x
chips (row: sender, column: receiver), the best GB/s of each directed link;
no link is grey, a flagged link is boxed in red.

usage: plot_diag.py RESULT.json OUT.png"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        res = json.load(f)
    links = res.get("checks", {}).get("icn", {}).get("links", [])
    servers = sorted({lk["server"] for lk in links}) or [0]
    size = {}
    for lk in links:
        s = lk["server"]
        size[s] = max(size.get(s, 0), lk["src_local"] + 1, lk["dst_local"] + 1)
    ncols = min(len(servers), 4)
    nrows = math.ceil(len(servers) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows), squeeze=False)
    vmax = max([lk["best_gbps"] for lk in links] or [1])
    im = None
    for k, s in enumerate(servers):
        ax = axes[k // ncols][k % ncols]
        n = size.get(s, 1)
        m = np.full((n, n), np.nan)
        first = {}
        for lk in links:
            if lk["server"] != s:
                continue
            i, j = lk["src_local"], lk["dst_local"]
            m[i, j] = lk["best_gbps"]
            first[i] = lk["src"] - i
            if lk["flagged"]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor="red", linewidth=2.5))
        cmap = matplotlib.colormaps["viridis"].copy()
        cmap.set_bad("#dddddd")
        im = ax.imshow(m, cmap=cmap, vmin=0, vmax=vmax)
        base = min(first.values()) if first else 0
        ticks = list(range(n))
        ax.set_xticks(ticks, [str(base + t) for t in ticks])
        ax.set_yticks(ticks, [str(base + t) for t in ticks])
        ax.set_xlabel("receiver (rank)")
        ax.set_ylabel("sender (rank)")
        ax.set_title("server %d" % s)
        if n <= 16:
            for i in range(n):
                for j in range(n):
                    if not np.isnan(m[i, j]):
                        ax.text(j, i, "%.1f" % m[i, j], ha="center", va="center",
                                fontsize=7, color="white" if m[i, j] < vmax / 2 else "black")
    for k in range(len(servers), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="best GB/s, one direction")
    nflag = sum(1 for lk in links if lk["flagged"])
    fig.suptitle("ppu-diag ICN links: %d ranks, %d flagged (red)" % (res.get("ranks", 0), nflag))
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
