"""Speed of the bit-exact fp16 x fp16 -> fp32 matmul against numpy's float32 matmul.

``hwsim.numerics.fp16_matmul`` runs the PE's exact fp16 product and an fp32
round-to-nearest-even addition (``hwsim.numerics.fp16_mac``, bit-identical to the bit-level
datapath) on one thread; numpy runs BLAS sgemm on the same values widened to float32, by
default also on one thread (``--blas-threads``; on a loaded 2-core machine multithreaded
OpenBLAS mostly measures its own spin-waiting). Both are timed after a warm-up call (JIT
compile or cache load), best of ``--repeat``.

Run::

    .venv/bin/python benchmarks/bench_numerics.py [--sizes 64 128 256 512] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time


def best_time(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args(argv)
    # BLAS reads its thread count when numpy is first imported
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.blas_threads)
    import numpy as np

    from hwsim.numerics import fp16_matmul, int8_matmul

    rng = np.random.default_rng(0)
    print(
        f"{'M=N=K':>6} {'fp16_matmul':>13} {'MAC/s':>9} {'numpy f32':>11} {'MAC/s':>9} "
        f"{'ratio':>7} {'int8_matmul':>12}"
    )
    for n in args.sizes:
        a = rng.standard_normal((n, n)).astype(np.float16)
        b = rng.standard_normal((n, n)).astype(np.float16)
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        a8 = rng.integers(-128, 128, (n, n), dtype=np.int8)
        b8 = rng.integers(-128, 128, (n, n), dtype=np.int8)
        t_ours = best_time(lambda a=a, b=b: fp16_matmul(a, b), args.repeat)
        t_np = best_time(lambda a=a32, b=b32: a @ b, args.repeat)
        t_i8 = best_time(lambda a=a8, b=b8: int8_matmul(a, b), args.repeat)
        macs = n**3
        print(
            f"{n:>6} {t_ours * 1e3:>10.1f} ms {macs / t_ours:>9.2e} {t_np * 1e3:>8.2f} ms "
            f"{macs / t_np:>9.2e} {t_np / t_ours:>7.4f} {t_i8 * 1e3:>9.1f} ms"
        )
    print("ratio = numpy time / fp16_matmul time (1.0 would be BLAS speed)")


if __name__ == "__main__":
    main()
