"""The fidelity chain, run: the same program through hwsim and the RTL, compared."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from dataflow import compile_gemm, sparse_operands
from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.engine import run
from hwsim.program import Program, TensorRef

__all__ = ["LOOKUP_TIERS", "command_end_cycles", "compiled_layer_case", "cosim_programs",
           "gather_program_case", "layer_errors", "layer_reference", "layer_step_cosim",
           "gemm_cosim", "gemm_program_case", "hash_grad_case", "lookup_cosim",
           "lookup_test_config", "memory_layer_case", "scatter_program_case",
           "UPDATE_HYPER", "update_program_case"]


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


LOOKUP_TIERS = ("ddr4", "hbm2e", "cxl", "pmem")
"""The tiers of :func:`lookup_test_config`, in ``tier`` field order."""


def lookup_test_config(name: str) -> AcceleratorConfig:
    """A preset (``"tiny"`` or ``"small8"``) with a lookup engine the RTL can run with its
    default row buffer: 1 KiB of rows in flight (so windows of 16-32 rows, small enough to
    bind), a 4 KiB VEC, and the tiers of :data:`LOOKUP_TIERS` (one Verilog build serves them
    all: a command picks its tier). ``small8`` also has 8 VEC lanes and 2 gather lanes (four
    lane cycles an entry)."""
    from hwsim.config import LookupConfig, preset
    from hwsim.tiers import tier_preset

    base = preset(name)
    tiers = tuple(tier_preset(t, name=t) for t in LOOKUP_TIERS)
    lanes = {"tiny": {}, "small8": {"gather_lanes": 2}}[name]
    cfg = base.replace(name=f"{name}_lookup", buffers__vec_kib=4,
                       lookup=LookupConfig(tiers=tiers, inflight_kib=1, rtl_limits=True,
                                           **lanes))
    return cfg.replace(vector__lanes=8) if name == "small8" else cfg


def gather_program_case(config: AcceleratorConfig, tokens: int, chunks: int, h: int,
                        rng: np.random.Generator, *, tau: int = 4, tier: int = 0, mode: int = 0
                        ) -> tuple[Program, dict[str, np.ndarray]]:
    """A GATHER program: MemoryFormer's forward lookup of ``tokens`` tokens and ``chunks``
    chunks from an fp16 table of ``chunks * 2**tau`` rows of ``h`` elements (``mode`` 0), or
    its backward to the chunk weights (``mode`` 1: ``Y[t,k] = DY[t] . T[R[t,k]]``).

    The row indices (each chunk's rows, drawn so that some repeat) and the weights ``P``
    (mode 1: the upstream gradient ``DY``, ``tokens x h``) load into VEC, register 1 holds the
    table's address, the result ``Y`` stores back to DRAM.
    """
    L = config.vector.lanes
    n = tokens * chunks
    table_rows = chunks << tau
    operand = ("P", (tokens, chunks)) if mode == 0 else ("DY", (tokens, h))
    layout = {"T": ((table_rows, h), "fp16"), "R": ((tokens, chunks), "int32"),
              operand[0]: (operand[1], "fp32"),
              "Y": ((tokens, h) if mode == 0 else (tokens, chunks), "fp32")}
    refs, addr = {}, 0
    for name, (shape, dt) in layout.items():
        refs[name] = TensorRef(addr, shape, dt)
        addr += -(-refs[name].nbytes // 64) * 64
    e_r, e_p = 0, -(-n // L)
    e_y = e_p + -(-int(np.prod(operand[1])) // L)
    rows = (np.arange(chunks) << tau) + rng.integers(0, 1 << tau, (tokens, chunks))
    values = {"T": rng.standard_normal((table_rows, h)).astype(np.float16),
              "R": rows.astype(np.int32)}
    values[operand[0]] = (rng.uniform(0.05, 1.0, operand[1]) if mode == 0
                          else rng.standard_normal(operand[1])).astype(np.float32)

    def move(cls, name, entry, **kw):
        ref = refs[name]
        return cls(isa.Buffer.VEC, entry, ref.addr, -(-ref.nbytes // (4 * L)), L, 4 * L, **kw)

    cmds = [isa.SetReg(1, refs["T"].addr), move(isa.Load, "R", e_r),
            move(isa.Load, operand[0], e_p, signal=1),
            isa.Gather(e_r, e_p, e_y, 1, tokens, chunks, h, tier, mode, wait=1, signal=2),
            move(isa.Store, "Y", e_y, wait=2)]
    return Program(cmds, addr, refs, inputs=("T", "R", operand[0]), outputs=("Y",)), values


def scatter_program_case(config: AcceleratorConfig, rows: np.ndarray, h: int,
                         rng: np.random.Generator, *, tier: int = 0, table_rows: int = 0
                         ) -> tuple[Program, dict[str, np.ndarray]]:
    """A SCATTER (mode 0) program: MemoryFormer's table gradient, ``G[rows[t,k]] += P[t,k] *
    DY[t]`` into an fp32 gradient table ``G`` (``table_rows`` rows of ``h``, default one past
    the largest row; random initial values, as after earlier steps' scatters).

    ``rows`` (``tokens x chunks``) says which rows repeat and how far apart: a repeat close
    behind its previous access is forwarded, one whose previous write has issued but is not yet
    acknowledged waits, one further on reads the row back (:mod:`hwsim.units.scatter_timing`).
    Register 1 holds the table's address; the indices, weights and dY load into VEC.
    """
    L = config.vector.lanes
    rows = np.asarray(rows, np.int64)
    tokens, chunks = rows.shape
    n = tokens * chunks
    table_rows = table_rows or int(rows.max()) + 1
    layout = {"G": ((table_rows, h), "fp32"), "R": ((tokens, chunks), "int32"),
              "P": ((tokens, chunks), "fp32"), "DY": ((tokens, h), "fp32")}
    refs, addr = {}, 0
    for name, (shape, dt) in layout.items():
        refs[name] = TensorRef(addr, shape, dt)
        addr += -(-refs[name].nbytes // 64) * 64
    e_r, e_p = 0, -(-n // L)
    e_dy = 2 * e_p
    values = {"G": rng.standard_normal((table_rows, h)).astype(np.float32),
              "R": rows.astype(np.int32),
              "P": rng.uniform(0.05, 1.0, (tokens, chunks)).astype(np.float32),
              "DY": rng.standard_normal((tokens, h)).astype(np.float32)}

    def move(name, entry, **kw):
        ref = refs[name]
        return isa.Load(isa.Buffer.VEC, entry, ref.addr, -(-ref.nbytes // (4 * L)), L, 4 * L,
                        **kw)

    cmds = [isa.SetReg(1, refs["G"].addr), move("R", e_r), move("P", e_p),
            move("DY", e_dy, signal=1),
            isa.Scatter(e_r, e_p, e_dy, 1, tokens, chunks, h, tier, 0, wait=1)]
    return Program(cmds, addr, refs, inputs=("G", "R", "P", "DY"), outputs=("G",)), values


UPDATE_HYPER = {"sgd_momentum": (0.05, 0.9, 0.01), "adam": (0.01, 0.1, 0.001, 1e-6, 0.01)}
"""The hyper-parameters of :func:`update_program_case`: lr, momentum, weight decay; Adam's
``lr_t``, ``1 - beta1``, ``1 - beta2``, eps, weight decay (registers 8 on)."""


def update_program_case(config: AcceleratorConfig, rows: np.ndarray, h: int,
                        rng: np.random.Generator, *, tier: int = 0, clean: float = 0.25,
                        optimizer: str = "sgd_momentum"
                        ) -> tuple[Program, dict[str, np.ndarray]]:
    """A SCATTER mode 1 (``sgd_momentum``) or mode 2 (``adam``) program: the lazy optimizer
    step of a memory table's rows listed in ``rows`` (``tokens x chunks``, program order,
    repeats allowed), on the fp16 table ``T``, the fp32 master ``W``, gradient ``G`` and state
    (momentum ``V``; Adam's moments ``M``, ``V``), ``table_rows x h``, one past the largest row.
    A share ``clean`` of the gradient rows is zero (rows the step skips); registers 1.. hold
    the tables' addresses, 8.. the hyper-parameters :data:`UPDATE_HYPER`.
    """
    L = config.vector.lanes
    rows = np.asarray(rows, np.int64)
    tokens, chunks = rows.shape
    table_rows = int(rows.max()) + 1
    tables = "TWGMV" if optimizer == "adam" else "TWGV"
    layout = {t: ((table_rows, h), "fp16" if t == "T" else "fp32") for t in tables}
    layout["R"] = ((tokens, chunks), "int32")
    refs, addr = {}, 0
    for name, (shape, dt) in layout.items():
        refs[name] = TensorRef(addr, shape, dt)
        addr += -(-refs[name].nbytes // 64) * 64
    w = rng.standard_normal((table_rows, h)).astype(np.float32)
    g = rng.standard_normal((table_rows, h)).astype(np.float32)
    g[rng.random(table_rows) < clean] = 0.0
    values = {"T": w.astype(np.float16), "W": w, "G": g,
              "V": rng.standard_normal((table_rows, h)).astype(np.float32),
              "R": rows.astype(np.int32)}
    if optimizer == "adam":  # moments from earlier steps: V >= 0
        values["M"] = (0.1 * rng.standard_normal((table_rows, h))).astype(np.float32)
        values["V"] = np.abs(values["V"]) * np.float32(0.01)
    ref = refs["R"]
    hp = [int(np.float32(x).view(np.uint32)) for x in UPDATE_HYPER[optimizer]]
    cmds = [*(isa.SetReg(1 + i, refs[t].addr) for i, t in enumerate(tables)),
            *(isa.SetReg(8 + i, v) for i, v in enumerate(hp)),
            isa.Load(isa.Buffer.VEC, 0, ref.addr, -(-ref.nbytes // (4 * L)), L, 4 * L,
                     signal=1),
            isa.Scatter(0, 8, 0, 1, tokens, chunks, h, tier, 2 if optimizer == "adam" else 1,
                        wait=1)]
    return Program(cmds, addr, refs, inputs=(*tables, "R"), outputs=tuple(tables)), values


def memory_layer_case(config: AcceleratorConfig, tokens: int, d: int, h: int, tau: int,
                      rng: np.random.Generator, *, official: bool = False, t: float = 1.0,
                      tier: int = 0) -> tuple[Program, dict[str, np.ndarray]]:
    """MemoryFormer's memory layer forward: ``X`` (``tokens x d`` fp32) hashed (HASH mode 0,
    or 1 with ``official``, temperature ``t``) into ``K = d / tau`` chunks, the rows gathered
    from the fp16 table of ``K * 2**tau`` rows of ``h`` (GATHER mode 0); outputs the row indices
    ``R``, the weights ``P`` and ``Y``."""
    L = config.vector.lanes
    K = d // tau
    n = tokens * K
    layout = {"X": ((tokens, d), "fp32"), "T": ((K << tau, h), "fp16"),
              "R": ((tokens, K), "int32"), "P": ((tokens, K), "fp32"),
              "Y": ((tokens, h), "fp32")}
    refs, addr = {}, 0
    for name, (shape, dt) in layout.items():
        refs[name] = TensorRef(addr, shape, dt)
        addr += -(-refs[name].nbytes // 64) * 64
    e_x, e_r = 0, -(-tokens * d // L)
    e_p = e_r + -(-n // L)
    e_y = e_p + -(-n // L)

    def move(cls, name, entry, **kw):
        ref = refs[name]
        return cls(isa.Buffer.VEC, entry, ref.addr, -(-ref.nbytes // (4 * L)), L, 4 * L, **kw)

    values = {"X": rng.standard_normal((tokens, d)).astype(np.float32),
              "T": rng.standard_normal((K << tau, h)).astype(np.float16)}
    scale = int(np.float32(2.0 / t).view(np.uint32))
    cmds = [isa.SetReg(0, scale), isa.SetReg(1, refs["T"].addr), move(isa.Load, "X", e_x,
                                                                       signal=1),
            isa.Hash(e_x, e_p, e_r, 0, tokens, K, tau, 0, int(official), wait=1),
            isa.Gather(e_r, e_p, e_y, 1, tokens, K, h, tier, 0, signal=2),
            move(isa.Store, "R", e_r, wait=2), move(isa.Store, "P", e_p),
            move(isa.Store, "Y", e_y)]
    return Program(cmds, addr, refs, inputs=("X", "T"), outputs=("R", "P", "Y")), values


def gemm_program_case(config: AcceleratorConfig, m: int, n: int, k: int,
                      rng: np.random.Generator, dataflow: str = "os",
                      sparsity: tuple[int, int] | None = None, blocked: bool = False
                      ) -> tuple[Program, dict[str, np.ndarray]]:
    """A GEMM program with random operands of the config's datatype (int8 or fp16).

    With ``sparsity=(N, M)`` B is pruned to N:M along K and the values are those of
    :func:`dataflow.sparse_operands` (``B`` is then the pruned dense B, the reference operand).
    ``blocked``: the tile-blocked DRAM layouts the model compiler uses (contiguous tiles, the
    LOADs a ``dram.dma == "wide"`` DMA moves several entries a request).
    """
    if config.array.dtype == "int8":
        a = rng.integers(-128, 128, (m, k), dtype=np.int64).astype(np.int8)
        b = rng.integers(-128, 128, (k, n), dtype=np.int64).astype(np.int8)
    else:
        a = rng.standard_normal((m, k)).astype(np.float16)
        b = rng.standard_normal((k, n)).astype(np.float16)
    if sparsity is not None:
        ws_rows = config.array.rows if dataflow == "ws" else None
        return (compile_gemm(m, n, k, config, dataflow=dataflow, sparsity=sparsity,
                             blocked=blocked),
                sparse_operands(a, b, *sparsity, ws_rows=ws_rows))
    return compile_gemm(m, n, k, config, dataflow=dataflow, blocked=blocked), {"A": a, "B": b}


def cosim_programs(config: AcceleratorConfig, cases: list[tuple[Program, dict]], *,
                   sim: str, seed: int, build_root: str | Path, tag: str, idle: float = 0.0,
                   backpressure: float = 0.0) -> list[dict]:
    """Run programs on the RTL (one simulator launch) and return the bench's observations.

    ``idle`` and ``backpressure`` are the probabilities with which the bench withholds a
    command or memory readiness on a cycle (0: the exact-timing setting hwsim models).
    """
    from rtl.cosim import run_bench
    from rtl.lookup.unit import tag_bits

    spec = {
        "latency": config.dram_latency_cycles,
        "bus_bytes": config.dram.bus_bytes,
        "bytes_per_cycle": config.dram_bytes_per_cycle,
        "seed": seed,
        "programs": [{"words": [f"{isa.encode(c):x}" for c in p.commands],
                      "dram": p.dram_image(v).tobytes().hex(), "idle": idle,
                      "backpressure": backpressure} for p, v in cases],
    }
    # the top without the lookup engine (half the Verilog of a test config's top) when no
    # program has a lookup command
    lookup = any(c.UNIT == isa.Unit.LOOKUP for p, _ in cases for c in p.commands)
    if lookup:
        spec["lookup"] = {"tiers": [dataclasses.asdict(t) for t in config.lookup.tiers],
                          "clock_mhz": config.clock_mhz, "tag_bits": tag_bits()}
    return run_bench(sim, config, spec, tag=tag, build_root=build_root, lookup=lookup)


def lookup_cosim(config: AcceleratorConfig, tokens: int, d: int, h: int, tau: int, *,
                 sim: str = "verilator", seed: int = 0, build_root: str | Path | None = None,
                 official: bool = False, tier: int = 0) -> dict:
    """One MemoryFormer memory-layer forward (HASH then GATHER, :func:`memory_layer_case`)
    through hwsim (functional) and the RTL; a row of results. ``values_equal``: the RTL's row
    indices, weights and sums bit-equal to hwsim's, hwsim's sums equal to the float64 formula
    on its weights within 1e-5; ``cycles_equal``: every command's accept and finish cycle."""
    rng = np.random.default_rng(seed)
    prog, values = memory_layer_case(config, tokens, d, h, tau, rng, official=official,
                                     tier=tier)
    t0 = time.perf_counter()
    got = cosim_programs(config, [(prog, values)], sim=sim, seed=seed, build_root=build_root,
                         tag=f"layer-{tokens}x{d}x{h}-tau{tau}-seed{seed}")[0]
    rtl_seconds = time.perf_counter() - t0
    model = run(prog, config, "functional", inputs=values)
    dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
    same = all(np.array_equal(prog.tensors[k].read(dram.copy()).view(np.uint32),
                              model.outputs[k].view(np.uint32)) for k in ("R", "P", "Y"))
    ref = np.einsum("tk,tkh->th", model.outputs["P"].astype(np.float64),
                    values["T"].astype(np.float64)[model.outputs["R"]])
    ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    return {
        "config": config.name, "sim": sim, "tokens": tokens, "d": d, "h": h, "tau": tau,
        "weight": "official" if official else "paper",
        "tier": config.lookup.tiers[tier].name, "seed": seed, "commands": len(prog.commands),
        "hwsim_cycles": model.stats.cycles, "rtl_cycles": max(ends) + 1,
        "cycles_equal": ends == model.stats.retire_cycles
        and got["accept"] == model.stats.accept_cycles,
        "values_equal": bool(same and np.allclose(model.outputs["Y"], ref, rtol=1e-5,
                                                  atol=1e-5)),
        "rtl_error_flag": got["error"],
        "rtl_seconds": round(rtl_seconds, 2),
    }


def compiled_layer_case(config: AcceleratorConfig, shape, phase: str,
                        rng: np.random.Generator, *, optimizer: str = "sgd_momentum"
                        ) -> tuple[Program, dict[str, np.ndarray]]:
    """``dataflow.compile_memory_layer``'s program for ``shape`` (a
    :class:`dataflow.lower.lookup.LayerShape`), ``phase`` and the table ``optimizer``, with
    random inputs (tables included); for ``"train"`` a step's start: the fp32 master equal to
    the fp16 table, a zero gradient table (and Adam's first step: zero moments)."""
    from dataflow.lower.lookup import compile_memory_layer

    prog = compile_memory_layer(shape, config, phase=phase, optimizer=optimizer)
    values = {}
    for name in prog.inputs:
        ref = prog.tensors[name]
        values[name] = rng.standard_normal(ref.shape).astype(
            np.float16 if ref.dtype == "fp16" else np.float32)
    if phase == "train":
        values["W"] = values["T"].astype(np.float32)
        for name in ("G", "M", "V") if optimizer == "adam" else ("G",):
            values[name] = np.zeros_like(values[name])
    return prog, values


def layer_reference(shape, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """MemoryFormer's layer (``algorithms.memoryformer.MemoryLayer``, PyTorch float64) on the
    program's ``X`` and table ``T``: ``Y`` and, given ``dY``, autograd's ``dX`` and table
    gradient ``G`` (flat rows)."""
    import torch

    from algorithms.memoryformer import MemoryLayer

    layer = MemoryLayer(shape.d, shape.h, tau=shape.tau, temperature=shape.t,
                        weight=shape.weight, bias=False).double()
    with torch.no_grad():
        layer.tables.copy_(torch.from_numpy(values["T"].astype(np.float64)).reshape(
            layer.tables.shape))
    x = torch.from_numpy(values["X"].astype(np.float64)).requires_grad_(True)
    y = layer(x)
    out = {"Y": y.detach().numpy()}
    if "dY" in values:
        y.backward(torch.from_numpy(values["dY"].astype(np.float64)))
        out["dX"] = x.grad.numpy()
        out["G"] = layer.tables.grad.reshape(-1, shape.h).numpy()
    idx, w = layer.hash(x.detach())
    out["rows"] = idx.numpy() + (np.arange(shape.chunks) << shape.tau)
    out["p"] = w.numpy()
    return out


def layer_errors(shape, phase: str, outputs: dict[str, np.ndarray],
                 values: dict[str, np.ndarray], *, lr: float = 0.01,
                 momentum: float = 0.9, optimizer: str = "sgd_momentum") -> dict[str, float]:
    """How far a compiled memory layer's outputs (hwsim's, which the RTL must equal) are from
    MemoryFormer's PyTorch layer, as the largest ratio of error to bound per output (at most 1:
    within the bound).

    Bounds: the chunk weights within :data:`hwsim.numerics.CHUNK_WEIGHT_MAX_REL_ERROR` (``B``)
    of exact, so ``Y = sum_k p_k T[row_k]`` within ``B + (K + 1) 2**-24`` of the sum of its
    terms' magnitudes; ``dX`` (the chunk weights' gradient, through dL/dp and dp/dz) within
    ``10 B`` of its largest magnitude; the SGD-momentum step (``train``: ``lr``, ``momentum``,
    no weight decay, ``compile_memory_layer``'s defaults) on the rows with a gradient,
    ``V = mu V + G``, ``W = W - lr V``, with autograd's table gradient ``G`` off by at most the
    weights' bound of its terms' magnitudes ``|p| |dY|`` plus four roundings; ``T`` the fp16
    of ``W`` exactly. With ``optimizer="adam"`` the step itself is not checked here (its
    values are hwsim's, tested against SparseAdam in ``tests/dataflow``), ``T`` still is."""
    from hwsim.numerics import CHUNK_WEIGHT_MAX_REL_ERROR

    ref = layer_reference(shape, values)
    weight_bound = CHUNK_WEIGHT_MAX_REL_ERROR[8 if shape.tau <= 8 else 10]
    bound = weight_bound + (shape.chunks + 1) * 2**-24
    table = values["T"].astype(np.float64)
    mag = np.einsum("tk,tkh->th", np.abs(ref["p"]), np.abs(table[ref["rows"]]))
    out = {"Y": float((np.abs(outputs["Y"] - ref["Y"]) / (bound * mag + 1e-30)).max())}
    if phase != "train":
        return out
    out["dX"] = float(np.abs(outputs["dX"] - ref["dX"]).max()
                      / (10 * weight_bound * np.abs(ref["dX"]).max()))
    out["T"] = 0.0 if np.array_equal(outputs["T"], outputs["W"].astype(np.float16)) else np.inf
    if optimizer == "adam":
        return out
    u = 2.0**-24
    grad = ref["G"]
    terms = np.zeros_like(grad)
    np.add.at(terms, ref["rows"].reshape(-1),
              (np.abs(ref["p"])[..., None] * np.abs(values["dY"].astype(np.float64))[:, None])
              .reshape(-1, shape.h))
    touched = terms.any(1)[:, None]
    v0, w0 = values["V"].astype(np.float64), values["W"].astype(np.float64)
    v_ref = np.where(touched, momentum * v0 + grad, v0)
    w_ref = np.where(touched, w0 - lr * v_ref, w0)
    v_tol = bound * terms + 4 * u * (momentum * np.abs(v0) + np.abs(grad)) + 1e-30
    w_tol = lr * v_tol + 4 * u * (np.abs(w0) + lr * np.abs(v_ref)) + 1e-30
    out["V"] = float((np.abs(outputs["V"] - v_ref) / v_tol).max())
    out["W"] = float((np.abs(outputs["W"] - w_ref) / w_tol).max())
    return out


def layer_step_cosim(config: AcceleratorConfig, shape, *, sim: str = "verilator",
                     seed: int = 0, build_root: str | Path | None = None) -> dict:
    """One MemoryFormer memory-layer training step compiled by ``dataflow`` (forward, backward,
    SGD-momentum table update: HASH, GATHER, HASH, GATHER mode 1, HASH backward, SCATTER,
    SCATTER mode 1) through hwsim (functional) and the RTL; a row of results.
    ``values_equal``: every output of the RTL bit-equal to hwsim's and hwsim's within the
    bounds of :func:`layer_errors` of MemoryFormer's PyTorch layer; ``cycles_equal``: every
    command's accept and finish cycle."""
    rng = np.random.default_rng(seed)
    prog, values = compiled_layer_case(config, shape, "train", rng)
    t0 = time.perf_counter()
    got = cosim_programs(config, [(prog, values)], sim=sim, seed=seed, build_root=build_root,
                         tag=f"step-{shape.tokens}x{shape.d}x{shape.h}-tau{shape.tau}")[0]
    rtl_seconds = time.perf_counter() - t0
    model = run(prog, config, "functional", inputs=values)
    dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8)
    same = all(np.array_equal(prog.tensors[k].read(dram.copy()).view(np.uint32),
                              model.outputs[k].view(np.uint32)) for k in prog.outputs)
    errors = layer_errors(shape, "train", model.outputs, values)
    ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    return {
        "config": config.name, "sim": sim, "tokens": shape.tokens, "d": shape.d, "h": shape.h,
        "tau": shape.tau, "weight": shape.weight, "step": "forward+backward+SGD update",
        "seed": seed, "commands": len(prog.commands),
        "hwsim_cycles": model.stats.cycles, "rtl_cycles": max(ends) + 1,
        "cycles_equal": ends == model.stats.retire_cycles
        and got["accept"] == model.stats.accept_cycles,
        "values_equal": bool(same and max(errors.values()) <= 1.0),
        "worst_error_over_bound": round(max(errors.values()), 3),
        "rtl_error_flag": got["error"],
        "rtl_seconds": round(rtl_seconds, 2),
    }


def gemm_cosim(config: AcceleratorConfig, m: int, n: int, k: int, *, sim: str = "verilator",
               seed: int = 0, build_root: str | Path | None = None, dataflow: str = "os",
               sparsity: tuple[int, int] | None = None, blocked: bool = False) -> dict:
    """One GEMM (dense, or N:M sparse B) through numpy, hwsim (functional and timing) and the
    RTL; a row of results. ``blocked``: tile-blocked DRAM layouts (:func:`gemm_program_case`)."""
    rng = np.random.default_rng(seed)
    prog, values = gemm_program_case(config, m, n, k, rng, dataflow, sparsity, blocked)
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


def hash_grad_case(config: AcceleratorConfig, tokens: int, chunks: int, tau: int,
                   rng: np.random.Generator, *, official: bool = False, t: float = 1.0,
                   in_place: bool = False) -> tuple[Program, dict[str, np.ndarray]]:
    """MemoryFormer's chunk-weight backward as one HASH (mode 2, or 3 with ``official``): for
    ``tokens x chunks`` chunks of ``tau`` elements of ``X`` and the upstream gradient ``G =
    dL/dw`` (one fp32 per chunk), ``DX = G (x) dw/dX``, temperature ``t``.

    ``X`` is normal at three scales (0.25, 1, 3) with a sixth of its elements ``+0`` or ``-0``
    (token 0's first chunk starts with ``+0, -0``); ``G`` is normal. ``X`` and ``G`` load into
    VEC, register 0 holds fp32 ``2/t``, ``DX`` is written to VEC (over ``X`` with
    ``in_place``) and stored."""
    L = config.vector.lanes
    n, d = tokens * chunks, chunks * tau
    layout = {"X": ((tokens, d), "fp32"), "G": ((tokens, chunks), "fp32"),
              "DX": ((tokens, d), "fp32")}
    refs, addr = {}, 0
    for name, (shape, dt) in layout.items():
        refs[name] = TensorRef(addr, shape, dt)
        addr += -(-refs[name].nbytes // 64) * 64
    e_x, e_g = 0, -(-tokens * d // L)
    e_dx = e_x if in_place else e_g + -(-n // L)
    x = rng.standard_normal((tokens, d)) * rng.choice([0.25, 1.0, 3.0], (tokens, d))
    zero = rng.random((tokens, d)) < 1 / 6
    x[zero] = np.where(rng.random(zero.sum()) < 0.5, 0.0, -0.0)
    x[0, :2] = [0.0, -0.0]
    values = {"X": x.astype(np.float32),
              "G": rng.standard_normal((tokens, chunks)).astype(np.float32)}

    def move(cls, name, entry, **kw):
        ref = refs[name]
        return cls(isa.Buffer.VEC, entry, ref.addr, -(-ref.nbytes // (4 * L)), L, 4 * L, **kw)

    scale = int(np.float32(2.0 / t).view(np.uint32))
    cmds = [isa.SetReg(0, scale), move(isa.Load, "X", e_x), move(isa.Load, "G", e_g, signal=1),
            isa.Hash(e_x, e_g, e_dx, 0, tokens, chunks, tau, 0, 2 + int(official), wait=1,
                     signal=2),
            move(isa.Store, "DX", e_dx, wait=2)]
    return Program(cmds, addr, refs, inputs=("X", "G"), outputs=("DX",)), values
