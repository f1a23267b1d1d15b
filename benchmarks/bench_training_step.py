"""Timing simulation of a ResNet-50 training step on vcu1525: wall time and peak memory.

Run: ``.venv/bin/python benchmarks/bench_training_step.py`` (target: <= 10 s).
"""

import resource
import time
import tracemalloc

from dataflow import CompileOptions, compile, default_skip, extract, simulate_program
from dataflow.zoo import get_model
from hwsim.config import preset


def main() -> None:
    config = preset("vcu1525")
    model, x = get_model("resnet50", device="meta")
    for method, pattern in (("dense", None), ("bdwp", "2:8")):
        wl = extract(model, x, method=method, pattern=pattern, skip=default_skip(model))
        prog = compile(wl, config, CompileOptions())
        simulate_program(prog)  # warm the Numba cache
        tracemalloc.start()
        t = time.perf_counter()
        st = simulate_program(prog)
        wall = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"resnet50 {method} {pattern or ''}: {len(prog):,} commands, {st.cycles:,} cycles;"
              f" simulate {wall:.2f} s, peak traced {peak / 2**20:.0f} MiB, max RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
