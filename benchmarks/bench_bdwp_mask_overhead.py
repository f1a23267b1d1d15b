"""Cost of BDWP's extra backward mask per training step, against a dense step.

For each layer shape and method this times one training step (forward, backward,
SGD update) of a single ``SparseLinear``/``SparseConv2d`` and, separately, the mask
computation alone (``masks_for``: one mask for SR-STE, two for BDWP, one transposable
mask). Median of ``--repeats`` runs after warm-up, on the CPU.

Run: ``.venv/bin/python benchmarks/bench_bdwp_mask_overhead.py [--repeats 20] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from algorithms.bdwp import SparseConv2d, SparseLinear, masks_for

METHODS = ("dense", "srste", "bdwp", "transposable")


def _median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bench(name, make_layer, x, pattern, repeats):
    rows = []
    base = None
    for method in METHODS:
        torch.manual_seed(0)
        layer = make_layer(method)
        opt = torch.optim.SGD(layer.parameters(), lr=1e-3, momentum=0.9)

        def step(layer=layer, opt=opt):
            opt.zero_grad()
            layer(x).square().mean().backward()
            opt.step()

        step_ms = _median_ms(step, repeats)
        mask_ms = 0.0
        if method != "dense":
            mask_ms = _median_ms(
                lambda layer=layer, meth=method: masks_for(layer.weight, *_nm(pattern), meth),
                repeats,
            )
        base = step_ms if method == "dense" else base
        rows.append((name, method, step_ms, mask_ms, step_ms / base))
    return rows


def _nm(pattern):
    n, m = pattern.split(":")
    return int(n), int(m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--pattern", default="2:8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    p = args.pattern
    cases = [
        (
            "linear 512x512, 256 rows",
            lambda meth: SparseLinear(512, 512, pattern=p, method=meth),
            torch.randn(256, 512),
        ),
        (
            "linear 1024x1024, 128 rows",
            lambda meth: SparseLinear(1024, 1024, pattern=p, method=meth),
            torch.randn(128, 1024),
        ),
        (
            "conv 64->64 3x3, 8x64x16x16",
            lambda meth: SparseConv2d(64, 64, 3, padding=1, pattern=p, method=meth),
            torch.randn(8, 64, 16, 16),
        ),
    ]
    print(
        f"pattern {p}, {args.threads} thread(s), median of {args.repeats}, torch "
        f"{torch.__version__}"
    )
    header = f"{'layer':<30} {'method':<13} {'step ms':>9} {'mask ms':>9} {'step / dense':>13}"
    print(header)
    print("-" * len(header))
    for name, make, x in cases:
        for row in bench(name, make, x, p, args.repeats):
            print(f"{row[0]:<30} {row[1]:<13} {row[2]:>9.3f} {row[3]:>9.3f} {row[4]:>13.2f}")


if __name__ == "__main__":
    main()
