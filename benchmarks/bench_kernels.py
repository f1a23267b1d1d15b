"""Per-cycle kernel speed: PE-cycles per second of the register-level array models.

Run: .venv/bin/python benchmarks/bench_kernels.py [--dtype int8|fp16|all] [--repeat N]
A PE-cycle is one PE stepped for one clock. The issue's target is >= 50 million per second, for
int8 (wrapping int32 MACs) and for fp16 (bit-exact fp16 x fp16 -> fp32 MACs, random normal
operands), dense (hwsim/systolic_array.py) and 2:4 sparse (hwsim/sparse_tile.py) tiles. Each
figure is the best of ``--repeat`` runs after a JIT warm-up.

Numba's on-disk cache does not notice edits to an inlined callee in another file (the fp16 MAC
lives in hwsim/numerics.py), so after such an edit set ``NUMBA_CACHE_DIR`` to an empty folder
or the kernels run stale (same bits, old speed).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hwsim.sparse_tile import os_sparse_tile_per_cycle, ws_sparse_tile_per_cycle
from hwsim.systolic_array import (
    os_feed_cycles,
    os_tile_per_cycle,
    ws_stream_cycles,
    ws_tile_per_cycle,
)

SHAPES = [(4, 4, 4096), (16, 16, 2048), (32, 32, 1024)]
N, M = 2, 4  # the sparse tiles' pattern


def measure(fn, args, pe_cycles, repeat):
    fn(*args)  # JIT warm-up (cached after the first run)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return pe_cycles / best, best


def operands(rng, dtype: str, shape):
    if dtype == "int8":
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.standard_normal(shape).astype(np.float16)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["int8", "fp16", "all"], default="all")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per kernel (best)")
    args = parser.parse_args(argv)
    dtypes = ["int8", "fp16"] if args.dtype == "all" else [args.dtype]
    rng = np.random.default_rng(0)
    print(f"{'kernel':<16}{'array':>8}{'steps':>8}{'seconds':>10}{'M PE-cycles/s':>16}")
    for dtype in dtypes:
        for rows, cols, k in SHAPES:
            a = operands(rng, dtype, (k, rows))
            b = operands(rng, dtype, (k, cols))
            w = operands(rng, dtype, (rows, cols))
            ws_cycles = ws_stream_cycles(rows, k, rows, cols)  # k activation rows, all weights
            # sparse: k compressed steps (OS), k activation rows over all compressed weight rows
            ks, kw = k, rows // N * N
            a_sp = operands(rng, dtype, (ks // N * M, rows))
            b_idx = rng.integers(0, M, (ks, cols))
            a_ws = operands(rng, dtype, (k, M // N * rows))
            w_sp = operands(rng, dtype, (kw, cols))
            w_idx = rng.integers(0, M, (kw, cols))
            runs = [
                ("os", os_tile_per_cycle, (a, b, rows, cols), os_feed_cycles(k, rows, cols)),
                ("ws", ws_tile_per_cycle, (a, w, rows, cols), ws_cycles),
                (f"os {N}:{M}", os_sparse_tile_per_cycle, (a_sp, b, b_idx, N, M, rows, cols),
                 os_feed_cycles(ks, rows, cols)),
                (f"ws {N}:{M}", ws_sparse_tile_per_cycle, (a_ws, w_sp, w_idx, N, M, rows, cols),
                 ws_stream_cycles(kw, k, rows, cols)),
            ]
            for name, fn, fn_args, cycles in runs:
                rate, sec = measure(fn, fn_args, cycles * rows * cols, args.repeat)
                label = f"{name} {dtype}"
                print(f"{label:<16}{f'{rows}x{cols}':>8}{k:>8}{sec:>10.4f}{rate / 1e6:>16.1f}")


if __name__ == "__main__":
    main()
