"""Mapping search + compile of a ResNet-50 BDWP 2:8 training step on vcu1525, cold and cached.

Run: ``.venv/bin/python benchmarks/bench_compile.py`` (targets: <= 30 s cold, <= 2 s cached).
"""

import tempfile
import time

from dataflow import CompileOptions, MappingCache, compile, default_skip, extract
from dataflow.zoo import get_model
from hwsim.config import preset


def main() -> None:
    config = preset("vcu1525")
    model, x = get_model("resnet50", device="meta")
    wl = extract(model, x, method="bdwp", pattern="2:8", skip=default_skip(model))
    with tempfile.TemporaryDirectory() as d:
        opts = CompileOptions(cache_dir=d)
        MappingCache.clear_memory()
        t = time.perf_counter()
        prog = compile(wl, config, opts)
        cold = time.perf_counter() - t
        MappingCache.clear_memory()  # cached on disk only
        t = time.perf_counter()
        compile(wl, config, opts)
        disk = time.perf_counter() - t
        t = time.perf_counter()
        compile(wl, config, opts)
        warm = time.perf_counter() - t
    print(f"resnet50 bdwp 2:8 vcu1525: {len(prog):,} commands; compile cold {cold:.2f} s, "
          f"disk-cached {disk:.2f} s, memory-cached {warm:.2f} s")


if __name__ == "__main__":
    main()
