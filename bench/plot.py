#!/usr/bin/env python3
"""Turn one or more gpumem-bench CSV files into a PNG comparison.

    python3 bench/plot.py results.csv [torch.csv ...] -o out/comparison.png

Panels, top to bottom:
  - one per workload: a group of bars per parameter set (size, thread count,
    trace), a bar per allocator, the median time per operation with the
    min..max range as an error bar, on a log scale;
  - thread scaling: aggregate throughput of each thread count against one
    thread, per allocator, with the ideal line (when there are threads rows);
  - reserved/live: each allocator's peak of reserved bytes over the peak of
    live bytes, per workload and parameter set (1.0 is no overhead).

Every allocator keeps one colour in every panel, and every panel has its
legend. Rows from several files are merged, so gpumem-bench's CSV and the
PyTorch peer's (bench/peers/torch_caching.py) land in one picture. Failed
rows are skipped and listed on stderr. A run on the host backend (the CSV's
backend column says "host") is titled "host emulation": CPU timings of the
emulation, not GPU figures. The output folder is made if it is missing.

Exit status: 0 written; 1 no successful row to plot; 2 a file that cannot
be read or is not a gpumem-bench CSV (one line on stderr says which and
why), or matplotlib missing.
"""
import argparse
import csv
import os
import sys

REQUIRED = ["allocator", "workload", "params", "median_ns", "min_ns", "max_ns"]
NUMBERS = ["median_ns", "min_ns", "max_ns"]
OPTIONAL_NUMBERS = ["threads", "ops_per_s", "scaling", "peak_live_bytes", "peak_reserved_bytes"]


class BadInput(Exception):
    """A CSV that cannot be used; the message names the file."""


def number(path, lineno, row, column, optional=False):
    text = row.get(column)
    if text in (None, ""):
        if optional:
            return None
        raise BadInput(f"{path}:{lineno}: {column} is empty")
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{path}:{lineno}: {column} is not a number: '{text}'") from None


def load(paths):
    rows, failed = [], []
    for path in paths:
        try:
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
                if missing:
                    raise BadInput(f"{path}: not a gpumem-bench CSV (no column {', '.join(missing)})")
                for row in reader:
                    lineno = reader.line_num
                    if row.get("status", "ok") != "ok":
                        failed.append(f"{path}: {row['allocator']} {row['workload']} {row['params']}: {row['status']}")
                        continue
                    for c in NUMBERS:
                        row[c] = number(path, lineno, row, c)
                    for c in OPTIONAL_NUMBERS:
                        row[c] = number(path, lineno, row, c, optional=True)
                    rows.append(row)
        except OSError as e:
            raise BadInput(f"cannot read {path}: {e.strerror or e}") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise BadInput(f"{path}: not a readable CSV: {e}") from None
    return rows, failed


def colours_for(allocators):
    """One fixed colour per allocator, the same in every panel."""
    import matplotlib
    palette = matplotlib.colormaps["tab20"].colors
    # tab20 pairs a dark and a light shade: take the dark ones first, so
    # neighbouring allocators differ clearly.
    order = list(palette[0::2]) + list(palette[1::2])
    return {a: order[i % len(order)] for i, a in enumerate(allocators)}


def bars(ax, rows, groups, key, allocators, colour, value, errors=None):
    """Grouped bars: one group per entry of `groups` (matched by key(row)),
    one bar per allocator present; the legend lists those drawn."""
    present = [a for a in allocators if any(r["allocator"] == a for r in rows)]
    width = 0.8 / max(1, len(present))
    for k, alloc in enumerate(present):
        xs, ys, lo, hi = [], [], [], []
        for i, g in enumerate(groups):
            match = [r for r in rows if r["allocator"] == alloc and key(r) == g]
            if not match:
                continue
            r = match[0]
            xs.append(i + (k - (len(present) - 1) / 2) * width)
            ys.append(value(r))
            if errors:
                lo.append(max(0.0, value(r) - r["min_ns"]))
                hi.append(max(0.0, r["max_ns"] - value(r)))
        if xs:
            ax.bar(xs, ys, width, yerr=[lo, hi] if errors else None, capsize=2, label=alloc,
                   color=colour[alloc])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g if isinstance(g, str) else " ".join(g) for g in groups], rotation=15,
                       fontsize=8, ha="right")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def panel_workload(ax, rows, workload, allocators, colour):
    mine = [r for r in rows if r["workload"] == workload]
    params = list(dict.fromkeys(r["params"] for r in mine))
    bars(ax, mine, params, lambda r: r["params"], allocators, colour, lambda r: r["median_ns"], errors=True)
    ax.set_yscale("log")
    ax.set_ylabel("ns per op (median)", fontsize=8)
    ax.set_title(workload, loc="left", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def panel_scaling(ax, rows, allocators, colour):
    mine = [r for r in rows if r["workload"] == "threads" and r["threads"] and r["ops_per_s"]]
    counts = sorted({int(r["threads"]) for r in mine})
    for alloc in allocators:
        pts = sorted((int(r["threads"]), r["ops_per_s"]) for r in mine if r["allocator"] == alloc)
        base = next((v for t, v in pts if t == 1), None)
        if not pts or not base:
            continue
        ax.plot([t for t, _ in pts], [v / base for _, v in pts], marker="o", label=alloc, color=colour[alloc])
    ax.plot(counts, counts, linestyle="--", color="grey", linewidth=1, label="ideal")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts)
    ax.set_xticklabels([str(c) for c in counts], fontsize=8)
    ax.set_xlabel("threads", fontsize=8)
    ax.set_ylabel("throughput / one thread", fontsize=8)
    ax.set_title("thread scaling", loc="left", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def panel_reserved(ax, rows, allocators, colour):
    mine = [r for r in rows if r["peak_live_bytes"] and r["peak_reserved_bytes"]
            and r.get("memory", "device") != "host"]
    groups = list(dict.fromkeys((r["workload"], r["params"]) for r in mine))
    bars(ax, mine, groups, lambda r: (r["workload"], r["params"]), allocators, colour,
         lambda r: r["peak_reserved_bytes"] / r["peak_live_bytes"])
    ax.axhline(1.0, color="grey", linewidth=1, linestyle="--")
    ax.set_yscale("log")
    ax.set_ylabel("peak reserved / peak live", fontsize=8)
    ax.set_title("reserved / live (1.0: no overhead)", loc="left", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def title_of(rows, given):
    if given:
        return given
    first = rows[0]
    backends = sorted({r.get("backend") or "?" for r in rows})
    if backends == ["host"]:
        where = "host emulation: CPU timings of the emulation, not GPU figures"
    else:
        where = "backend " + ", ".join(backends)
    # Two lines: a long device name and the backend never run off the figure.
    return f"gpumem-bench: {first.get('device') or '?'}\n{where}, {first.get('date') or ''}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", help="gpumem-bench --csv files (and peer CSVs)")
    ap.add_argument("-o", "--output", default="gpumem-bench.png", help="PNG to write (its folder is made)")
    ap.add_argument("--title", default=None, help="figure title (default: device, backend and date)")
    args = ap.parse_args(argv)
    try:
        rows, failed = load(args.csv)
    except BadInput as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 2
    for line in failed:
        print(f"plot.py: skipped failed row: {line}", file=sys.stderr)
    if not rows:
        print("plot.py: no successful rows to plot", file=sys.stderr)
        return 1
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 2
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    allocators = list(dict.fromkeys(r["allocator"] for r in rows))
    colour = colours_for(allocators)
    scaling = any(r["workload"] == "threads" and r["ops_per_s"] for r in rows)
    reserved = any(r["peak_live_bytes"] and r["peak_reserved_bytes"] for r in rows)
    panels = len(workloads) + scaling + reserved
    fig, axes = plt.subplots(panels, 1, figsize=(12, 3.3 * panels), squeeze=False, layout="constrained")
    axes = list(axes[:, 0])
    for workload in workloads:
        panel_workload(axes.pop(0), rows, workload, allocators, colour)
    if scaling:
        panel_scaling(axes.pop(0), rows, allocators, colour)
    if reserved:
        panel_reserved(axes.pop(0), rows, allocators, colour)
    title = title_of(rows, args.title)
    fig.suptitle(title, fontsize=10)
    folder = os.path.dirname(args.output)
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(args.output, dpi=110)
    except OSError as e:
        print(f"plot.py: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    backends = sorted({r.get("backend") or "?" for r in rows})
    where = "host emulation" if backends == ["host"] else "backend " + ", ".join(backends)
    print(f"plot.py: wrote {args.output} ({len(rows)} rows, {len(allocators)} allocators, {where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
