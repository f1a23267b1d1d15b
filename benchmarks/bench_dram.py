"""DRAM model: achieved bandwidth per access pattern and per DMA command, and the model's speed.

Run: ``.venv/bin/python benchmarks/bench_dram.py [--preset vcu1525] [--mib 16]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hwsim import isa
from hwsim.config import preset
from hwsim.dram import DramModel, dma_cycles
from hwsim.units.dma import load_beats


def patterns(nbytes: int, row_bytes: int, seed: int = 0) -> dict[str, tuple[np.ndarray, int]]:
    """Name -> (addresses, request size) of each access pattern, ``nbytes`` in total."""
    rng = np.random.default_rng(seed)
    span = 1 << 32
    out = {}
    for size in (4096, 256, 64):
        out[f"sequential {size} B"] = (np.arange(nbytes // size, dtype=np.int64) * size, size)
    out[f"strided 256 B every {row_bytes} B"] = (
        np.arange(nbytes // 256, dtype=np.int64) * row_bytes,
        256,
    )
    out["strided 256 B every 4352 B"] = (np.arange(nbytes // 256, dtype=np.int64) * 4352, 256)
    for size in (4096, 256, 64):
        n = nbytes // size
        out[f"random {size} B"] = (rng.integers(0, span // size, n, dtype=np.int64) * size, size)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="vcu1525")
    ap.add_argument("--mib", type=int, default=16, help="bytes moved per pattern, MiB")
    ap.add_argument(
        "--requests",
        type=int,
        default=4_000_000,
        help="random 64-byte requests timed for the model's speed",
    )
    args = ap.parse_args(argv)

    cfg = preset(args.preset)
    model = DramModel(cfg)
    model.access(np.arange(64) * 64, 64)  # JIT warm-up (or cache load)
    print(
        f"preset {cfg.name}: dram model {cfg.dram.model}, {cfg.dram.channels} channels x "
        f"{cfg.dram.bandwidth_gbps} GB/s = {model.peak_gbps:.1f} GB/s peak, "
        f"{cfg.dram.banks} banks, {cfg.dram.row_bytes} B rows, clock {cfg.clock_mhz} MHz"
    )
    print(f"{'pattern':<32} {'GB/s':>8} {'% peak':>7} {'row hit %':>9} {'cycles':>10}")
    for name, (addrs, size) in patterns(args.mib << 20, cfg.dram.row_bytes).items():
        r = model.access(addrs, size)
        accesses = r.row_hits + r.row_misses
        hit = 100.0 * r.row_hits / accesses if accesses else float("nan")
        print(
            f"{name:<32} {r.bandwidth_gbps:8.2f} {100 * r.bandwidth_gbps / model.peak_gbps:6.1f}%"
            f" {hit:8.1f}% {r.cycles:10d}"
        )

    # DMA commands as hwsim.run times them: rows of 64 bytes (a 32-wide fp16 buffer entry)
    lat = cfg.dram_latency_cycles
    rows = (args.mib << 20) // 64
    print(f"{'DMA LOAD of 64 B rows (dma_cycles)':<32} {'GB/s':>8} {'% peak':>7} {'row hit %':>9}"
          f" {'cycles':>10}")
    # dram.dma "entry": the RTL's DMA, an entry a request; "wide" (vcu1525's): a bus word of
    # contiguous whole entries a request (ACT/WGT/IDX LOADs, hwsim.units.dma.load_beats);
    # "burst": a DMA that is not built
    for (name, stride), dma in ((s, d) for d in ("entry", "wide", "burst") for s in (
            ("contiguous", 64), ("stride 512 B", 512), ("stride 4 KiB", 4096))):
        name = f"{name}, {dma}"
        c = cfg.replace(dram__dma=dma)
        beat = load_beats(True, isa.Buffer.ACT, 0, c.array.rows, stride, c) \
            if c.array.rows * c.array.elem_bytes == 64 else 1
        t = dma_cycles(False, 0, rows, 64, stride, c, beat=beat)
        gbps = rows * 64 * cfg.clock_mhz / 1000 / (t.cycles[0] - 1 - lat)
        acc = int(t.row_hits[0] + t.row_misses[0])
        hit = 100.0 * int(t.row_hits[0]) / acc if acc else float("nan")
        print(f"{name:<32} {gbps:8.2f} {100 * gbps / model.peak_gbps:6.1f}% {hit:8.1f}%"
              f" {int(t.cycles[0]):10d}")
    rng = np.random.default_rng(2)
    n = 20_000
    cmd_rows = rng.integers(1, 800, n)
    fields = (rng.random(n) < 0.3, rng.integers(0, 1 << 30, n) // 64 * 64, cmd_rows, 64,
              rng.choice([64, 512, 4096], n))
    dma_cycles(*fields, cfg)
    t0 = time.perf_counter()
    dma_cycles(*fields, cfg)
    dt = time.perf_counter() - t0
    print(f"dma_cycles speed: {n} commands ({int(cmd_rows.sum())} rows) in {dt * 1e3:.0f} ms, "
          f"{cmd_rows.sum() / dt / 1e6:.1f} M rows/s")

    rng = np.random.default_rng(1)
    addrs = rng.integers(0, 1 << 32, args.requests, dtype=np.int64)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        model.access(addrs, 64)
        best = min(best, time.perf_counter() - t0)
    print(
        f"model speed: {args.requests / best / 1e6:.1f} M requests/s "
        f"({args.requests} random 64 B requests in {best * 1e3:.0f} ms, best of 3)"
    )


if __name__ == "__main__":
    main()
