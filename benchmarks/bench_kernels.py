"""Per-cycle kernel speed: PE-cycles per second of the register-level array models.

Run: .venv/bin/python benchmarks/bench_kernels.py
A PE-cycle is one PE stepped for one clock. The issue's target is >= 50 million per second.
"""

from __future__ import annotations

import time

import numpy as np

from hwsim.systolic_array import os_tile_per_cycle, ws_tile_per_cycle


def measure(fn, args, pe_cycles, repeat=5):
    fn(*args)  # JIT warm-up (cached after the first run)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return pe_cycles / best, best


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'kernel':<14}{'array':>8}{'steps':>8}{'seconds':>10}{'M PE-cycles/s':>16}")
    for rows, cols, k in [(4, 4, 4096), (16, 16, 2048), (32, 32, 1024)]:
        a = rng.integers(-128, 128, (k, rows)).astype(np.int8)
        b = rng.integers(-128, 128, (k, cols)).astype(np.int8)
        cycles = k + rows + cols - 1
        rate, sec = measure(os_tile_per_cycle, (a, b, rows, cols), cycles * rows * cols)
        print(f"{'os int8':<14}{f'{rows}x{cols}':>8}{k:>8}{sec:>10.4f}{rate / 1e6:>16.1f}")
        w = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
        rate, sec = measure(ws_tile_per_cycle, (a, w, rows, cols), cycles * rows * cols)
        print(f"{'ws int8':<14}{f'{rows}x{cols}':>8}{k:>8}{sec:>10.4f}{rate / 1e6:>16.1f}")


if __name__ == "__main__":
    main()
