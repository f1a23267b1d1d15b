"""Gather bandwidth of each memory-tier preset against row size and requests outstanding.

Random rows of 256 B to 4 KiB from a table far larger than the row buffers go through the tier
timing model (:class:`hwsim.tiers.TierModel`) at 1 to 256 requests outstanding per channel; the
achieved GB/s is printed next to the closed form (:func:`hwsim.tiers.gather_time`) and plotted
with each tier's peak. The check: rows of 1 KiB or more reach at least 90% of the tier's peak
with enough requests outstanding, and few requests outstanding are latency-bound.

Run: ``.venv/bin/python benchmarks/bench_gather.py [--out runs/bench_gather] [--rows 65536]``.
Writes ``bench_gather.csv`` and ``bench_gather.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from hwsim.tiers import TIER_PRESETS, TierModel, gather_time, tier_preset

ROW_BYTES = (256, 512, 1024, 2048, 4096)
OUTSTANDING = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TABLE_BYTES = 1 << 36
"""Rows are drawn from a 64 GiB table (or the tier's capacity, if smaller): far larger than the
row buffers, so every row opens a DRAM row."""


def measure(name: str, row: int, q: int, rows: int, clock_mhz: float, seed: int) -> dict:
    """One point: simulated and closed-form GB/s of ``rows`` random rows of ``row`` bytes."""
    tier = tier_preset(name, outstanding=q)
    rng = np.random.default_rng(seed)
    table = min(tier.capacity_bytes, TABLE_BYTES)
    addrs = rng.integers(0, table // row, rows, dtype=np.int64) * row
    r = TierModel(tier, clock_mhz).access(addrs, row)
    est = gather_time(tier, rows, row, clock_mhz=clock_mhz)
    return {"tier": name, "row_bytes": row, "outstanding": q, "gbps": r.bandwidth_gbps,
            "peak_gbps": tier.peak_gbps, "closed_gbps": est.gbps, "bound": est.bound,
            "row_hit_pct": 100.0 * r.row_hits / max(1, r.row_hits + r.row_misses)}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["tier"] for r in results))
    cols = 3
    fig, axes = plt.subplots(-(-len(names) // cols), cols, figsize=(5 * cols, 3.8 * 2),
                             squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        pts = [r for r in results if r["tier"] == name]
        for row in sorted({r["row_bytes"] for r in pts}):
            line = [r for r in pts if r["row_bytes"] == row]
            q = [r["outstanding"] for r in line]
            (h,) = ax.plot(q, [r["gbps"] for r in line], marker="o", ms=3,
                           label=f"{row} B rows")
            ax.plot(q, [r["closed_gbps"] for r in line], ls=":", color=h.get_color(), lw=1)
        peak = pts[0]["peak_gbps"]
        ax.axhline(peak, color="k", ls="--", lw=1, label=f"peak {peak:.1f} GB/s")
        ax.axhline(0.9 * peak, color="grey", ls=":", lw=1, label="90% of peak")
        ax.set(xscale="log", title=name, xlabel="requests outstanding per channel",
               ylabel="achieved GB/s", ylim=(0, 1.05 * peak))
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Random row gathers per memory tier (dotted: closed form)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_gather"),
                    help="directory for the CSV and the PNG (default runs/bench_gather)")
    ap.add_argument("--rows", type=int, default=65536, help="rows gathered per point")
    ap.add_argument("--clock-mhz", type=float, default=1000.0,
                    help="requester clock (default 1 GHz: cycles are nanoseconds)")
    ap.add_argument("--tiers", nargs="+", default=list(TIER_PRESETS), choices=TIER_PRESETS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    results = []
    for name in args.tiers:
        tier = tier_preset(name)
        print(f"\n{name}: {tier.kind}, {tier.channels} channels x {tier.bandwidth_gbps:.2f} GB/s "
              f"= {tier.peak_gbps:.1f} GB/s peak, {tier.banks} banks of {tier.row_bytes} B rows, "
              f"{tier.access_bytes} B accesses, miss {tier.row_miss_ns:.1f} ns, read latency "
              f"{tier.read_latency_ns:.1f} ns")
        print("simulated GB/s (closed form in brackets) by requests outstanding per channel")
        print(f"{'row B':>6} " + " ".join(f"{q:>14}" for q in OUTSTANDING))
        for row in ROW_BYTES:
            line = [measure(name, row, q, args.rows, args.clock_mhz, args.seed)
                    for q in OUTSTANDING]
            results += line
            print(f"{row:>6} " + " ".join(f"{r['gbps']:6.1f} [{r['closed_gbps']:5.1f}]"
                                          for r in line))

    print("\nbest % of peak over the outstanding sweep, and the fewest outstanding reaching 90%")
    print(f"{'tier':<7}" + "".join(f"{row:>14}" for row in ROW_BYTES))
    failures = []
    for name in args.tiers:
        cells = []
        for row in ROW_BYTES:
            pts = [r for r in results if r["tier"] == name and r["row_bytes"] == row]
            best = max(r["gbps"] / r["peak_gbps"] for r in pts)
            enough = [r["outstanding"] for r in pts if r["gbps"] >= 0.9 * r["peak_gbps"]]
            cells.append(f"{100 * best:5.1f}% @Q{enough[0] if enough else '-':<4}")
            if row >= 1024 and best < 0.9:
                failures.append(f"{name} {row} B rows: best {100 * best:.1f}% of peak")
        print(f"{name:<7}" + "".join(f"{c:>14}" for c in cells))
    print("\nlatency-bound at one request outstanding per channel (simulated / closed form):")
    for name in args.tiers:
        pts = [r for r in results if r["tier"] == name and r["outstanding"] == 1]
        print(f"  {name:<7}" + "  ".join(
            f"{r['row_bytes']} B {r['gbps'] / r['closed_gbps']:.2f} ({r['bound']})" for r in pts))

    with open(args.out / "bench_gather.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    plot(results, args.out / "bench_gather.png")
    print(f"\nwrote {args.out / 'bench_gather.csv'} and {args.out / 'bench_gather.png'} "
          f"({time.perf_counter() - t0:.1f} s)")
    if failures:
        print("FAIL: rows of 1 KiB or more below 90% of peak: " + "; ".join(failures))
        return 1
    print("PASS: rows of 1 KiB or more reach 90% of every tier's peak with enough requests "
          "outstanding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
