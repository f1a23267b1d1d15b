"""Timing simulation of a MemoryFormer-tiny training step (sequence 2048) on vcu1525.

Extraction, compilation and the warm timing simulation (``hwsim.run`` on the command table, the
lookup engine over the config's memory tiers) are timed separately; the simulation runs once to
warm the Numba cache and the lookup unit's per-shape timing, then is timed. Also prints the
cycles of one decoded token after a KV cache of 2048.

Run: ``.venv/bin/python benchmarks/bench_memoryformer.py [--seq-len 2048] [--config vcu1525]``
(target: the warm simulation of the training step in 10 s or less).
"""

from __future__ import annotations

import argparse
import sys
import time

from dataflow import compile, extract, simulate_program
from dataflow.zoo import get_model
from hwsim.config import load_config

TARGET_S = 10.0


def _timed(config, name: str, training: bool, **kw) -> tuple[int, dict]:
    t0 = time.perf_counter()
    model, x = get_model("memoryformer_tiny", device="meta", **kw)
    wl = extract(model, x, training=training, name="memoryformer_tiny")
    t1 = time.perf_counter()
    prog = compile(wl, config)
    t2 = time.perf_counter()
    simulate_program(prog)  # warm: Numba cache, per-shape lookup timing
    t3 = time.perf_counter()
    st = simulate_program(prog)
    t4 = time.perf_counter()
    times = {"extract": t1 - t0, "compile": t2 - t1, "first": t3 - t2, "simulate": t4 - t3}
    print(f"{name}: {len(prog):,} commands, {st.cycles:,} cycles "
          f"({st.cycles / (config.clock_mhz * 1e3):,.3f} ms); extract {times['extract']:.2f} s, "
          f"compile {times['compile']:.2f} s, simulate first {times['first']:.2f} s, "
          f"warm {times['simulate']:.2f} s", flush=True)
    return st.cycles, times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--config", default="vcu1525")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    s = args.seq_len
    step, times = _timed(config, f"memoryformer_tiny training step, sequence {s}", True,
                         seq_len=s)
    token, _ = _timed(config, f"memoryformer_tiny decode, one token after {s} cached", False,
                      seq_len=1, context=s, max_seq_len=max(2048, s + 1))
    print(f"cycles per training step {step:,}; per decoded token {token:,}")
    ok = times["simulate"] <= TARGET_S
    print(f"{'PASS' if ok else 'MISS'}: warm simulation of the training step "
          f"{times['simulate']:.2f} s (target {TARGET_S:g} s); compile {times['compile']:.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
