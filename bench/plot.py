#!/usr/bin/env python3
"""Turn one or more gpumem-bench CSV files into a PNG comparison.

    python3 bench/plot.py results.csv [torch.csv ...] -o comparison.png

One panel per workload; within a panel one group of bars per parameter set
(size, thread count, trace), one bar per allocator, showing the median time
per operation with the min..max range as an error bar, on a log scale. Rows
from different files are merged, so gpumem-bench's CSV and the PyTorch peer's
CSV (bench/peers/torch_caching.py) land in one picture. Failed rows are
skipped and listed.
"""
import argparse
import csv
import sys


def load(paths):
    rows, failed = [], []
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("status", "ok") != "ok":
                    failed.append(f"{path}: {row['allocator']} {row['workload']} {row['params']}: {row['status']}")
                    continue
                row["median_ns"] = float(row["median_ns"])
                row["min_ns"] = float(row["min_ns"])
                row["max_ns"] = float(row["max_ns"])
                rows.append(row)
    return rows, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", help="gpumem-bench --csv files (and peer CSVs)")
    ap.add_argument("-o", "--output", default="gpumem-bench.png", help="PNG to write")
    ap.add_argument("--title", default=None, help="figure title (default: device and date)")
    args = ap.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 2
    rows, failed = load(args.csv)
    for line in failed:
        print(f"plot.py: skipped failed row: {line}", file=sys.stderr)
    if not rows:
        print("plot.py: no successful rows to plot", file=sys.stderr)
        return 1
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    allocators = list(dict.fromkeys(r["allocator"] for r in rows))
    fig, axes = plt.subplots(len(workloads), 1, figsize=(11, 3.2 * len(workloads)), squeeze=False)
    width = 0.8 / max(1, len(allocators))
    # One colour per allocator in every panel (a panel's own colour cycle
    # would shift when an allocator has no rows there), and a legend in each
    # panel naming the allocators it shows.
    palette = plt.get_cmap("tab20" if len(allocators) > 10 else "tab10")
    colour = {a: palette(k % palette.N) for k, a in enumerate(allocators)}
    for ax, workload in zip(axes[:, 0], workloads):
        params = list(dict.fromkeys(r["params"] for r in rows if r["workload"] == workload))
        for k, alloc in enumerate(allocators):
            xs, ys, lo, hi = [], [], [], []
            for i, p in enumerate(params):
                match = [r for r in rows if r["workload"] == workload and r["allocator"] == alloc and r["params"] == p]
                if not match:
                    continue
                r = match[0]
                xs.append(i + (k - (len(allocators) - 1) / 2) * width)
                ys.append(r["median_ns"])
                lo.append(max(0.0, r["median_ns"] - r["min_ns"]))
                hi.append(max(0.0, r["max_ns"] - r["median_ns"]))
            if xs:
                ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=alloc, color=colour[alloc])
        ax.set_xticks(range(len(params)))
        ax.set_xticklabels(params, rotation=15, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ns per op (median)")
        ax.set_title(workload, loc="left", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=4)
    first = rows[0]
    fig.suptitle(args.title or f"gpumem-bench: {first.get('device', '?')} ({first.get('backend', '?')}), {first.get('date', '')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"plot.py: wrote {args.output} ({len(rows)} rows, {len(allocators)} allocators)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
