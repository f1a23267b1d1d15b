"""The fidelity chain, run: the same program through hwsim and the RTL, compared."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dataflow import compile_gemm, sparse_operands
from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.engine import run
from hwsim.program import Program

__all__ = ["command_end_cycles", "cosim_programs", "gemm_cosim", "gemm_program_case"]


def command_end_cycles(program: Program, retires: list[tuple[int, int]]) -> list[int]:
    """Per command, the cycle its unit reported done, from the RTL's per-unit retire pulses
    (each unit completes its commands in program order)."""
    per_unit: dict[int, list[int]] = {}
    for cycle, mask in retires:
        for u in range(8):
            if mask >> u & 1:
                per_unit.setdefault(u, []).append(cycle)
    taken: dict[int, int] = {}
    ends = []
    for cmd in program.commands:
        u = int(cmd.UNIT)
        k = taken.get(u, 0)
        cycles = per_unit.get(u, [])
        ends.append(cycles[k] if k < len(cycles) else -1)
        taken[u] = k + 1
    return ends


def gemm_program_case(config: AcceleratorConfig, m: int, n: int, k: int,
                      rng: np.random.Generator, dataflow: str = "os",
                      sparsity: tuple[int, int] | None = None
                      ) -> tuple[Program, dict[str, np.ndarray]]:
    """A GEMM program with random operands of the config's datatype (int8 or fp16).

    With ``sparsity=(N, M)`` B is pruned to N:M along K and the values are those of
    :func:`dataflow.sparse_operands` (``B`` is then the pruned dense B, the reference operand).
    """
    if config.array.dtype == "int8":
        a = rng.integers(-128, 128, (m, k), dtype=np.int64).astype(np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int64).astype(np.int8)
    else:
        a = rng.standard_normal((m, k)).astype(np.float16)
        b = rng.standard_normal((k, n)).astype(np.float16)
    if sparsity is not None:
        ws_rows = config.array.rows if dataflow == "ws" else None
        return (compile_gemm(m, n, k, config, dataflow=dataflow, sparsity=sparsity),
                sparse_operands(a, b, *sparsity, ws_rows=ws_rows))
    return compile_gemm(m, n, k, config, dataflow=dataflow), {"A": a, "B": b}


def cosim_programs(config: AcceleratorConfig, cases: list[tuple[Program, dict]], *,
                   sim: str, seed: int, build_root: str | Path, tag: str, idle: float = 0.0,
                   backpressure: float = 0.0) -> list[dict]:
    """Run programs on the RTL (one simulator launch) and return the bench's observations.

    ``idle`` and ``backpressure`` are the probabilities with which the bench withholds a
    command or memory readiness on a cycle (0: the exact-timing setting hwsim models).
    """
    from rtl.cosim import run_bench

    spec = {
        "latency": config.dram_latency_cycles,
        "bus_bytes": config.dram.bus_bytes,
        "bytes_per_cycle": config.dram_bytes_per_cycle,
        "seed": seed,
        "programs": [{"words": [f"{isa.encode(c):x}" for c in p.commands],
                      "dram": p.dram_image(v).tobytes().hex(), "idle": idle,
                      "backpressure": backpressure} for p, v in cases],
    }
    return run_bench(sim, config, spec, tag=tag, build_root=build_root)


def gemm_cosim(config: AcceleratorConfig, m: int, n: int, k: int, *, sim: str = "verilator",
               seed: int = 0, build_root: str | Path = "build", dataflow: str = "os",
               sparsity: tuple[int, int] | None = None) -> dict:
    """One GEMM (dense, or N:M sparse B) through numpy, hwsim (functional and timing) and the
    RTL; a row of results."""
    rng = np.random.default_rng(seed)
    prog, values = gemm_program_case(config, m, n, k, rng, dataflow, sparsity)
    t0 = time.perf_counter()
    got = cosim_programs(config, [(prog, values)], sim=sim, seed=seed, build_root=build_root,
                         tag=f"gemm-{m}x{n}x{k}-seed{seed}")[0]
    rtl_seconds = time.perf_counter() - t0
    model = run(prog, config, "functional", inputs=values)
    timing = run(prog, config, "timing")
    a = values["A"] if sparsity is None else values["A_dense"]
    ref = a.astype(np.int64) @ values["B"].astype(np.int64)
    ref = ((ref + 2**31) % 2**32 - 2**31).astype(np.int32)
    ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    rtl_c = prog.tensors["C"].read(np.frombuffer(bytes.fromhex(got["dram"]), np.uint8).copy())
    return {
        "config": config.name, "sim": sim, "m": m, "n": n, "k": k, "dataflow": dataflow,
        "sparsity": "dense" if sparsity is None else f"{sparsity[0]}:{sparsity[1]}",
        "seed": seed,
        "commands": len(prog.commands),
        "hwsim_cycles": model.stats.cycles, "timing_cycles": timing.stats.cycles,
        "rtl_cycles": max(ends) + 1,
        "cycles_equal": ends == model.stats.retire_cycles
        and got["accept"] == model.stats.accept_cycles
        and timing.stats.cycles == model.stats.cycles,
        "values_equal": bool(np.array_equal(rtl_c, ref) and np.array_equal(model.outputs["C"],
                                                                             ref)),
        "rtl_error_flag": got["error"],
        "rtl_seconds": round(rtl_seconds, 2),
    }
