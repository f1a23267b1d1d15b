"""Lowering one GEMM onto the array: tiling, DRAM layout and the LOAD/GEMM/STORE sequence.

This is the reference lowering behind :func:`hwsim.simulate_gemm`; the dataflow compiler
(``dataflow``) chooses tilings per op and emits the same command patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import isa
from .config import AcceleratorConfig
from .program import Program, TensorRef

__all__ = ["GemmTiling", "compile_gemm", "gemm_tiling"]


@dataclass(frozen=True)
class GemmTiling:
    """How C[M,N] = A[M,K]·B[K,N] is cut into array tiles.

    Output-stationary: output tiles of ``rows x cols``, the reduction cut into chunks of ``kt``
    steps that fit one half of the double-buffered ACT and WGT buffers; when the whole reduction
    fits (``kt == K``) the A tile stays resident while B tiles stream past it.
    Weight-stationary: weight tiles of ``rows`` (reduction) x ``cols``, activations streamed in
    chunks of ``mt`` rows that fit half of the ACT and ACC buffers.
    """

    m: int
    n: int
    k: int
    rows: int
    cols: int
    kt: int
    mt: int
    dataflow: str

    @property
    def a_resident(self) -> bool:
        return self.dataflow == "os" and self.kt >= self.k


def _check_dims(m: int, n: int, k: int) -> None:
    for name, v in (("M", m), ("N", n), ("K", k)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"GEMM dimension {name} must be a positive integer, not {v!r}")


def gemm_tiling(m: int, n: int, k: int, config: AcceleratorConfig,
                dataflow: str = "os") -> GemmTiling:
    """The largest chunks that fit half of each buffer (all of it without double buffering)."""
    _check_dims(m, n, k)
    half = 2 if config.buffers.double_buffered else 1
    lim = (1 << 16) - 1
    kt = min(k, config.act_depth // half, config.wgt_depth // half, lim)
    mt = min(m, config.act_depth // half, config.acc_depth // half, lim)
    return GemmTiling(m, n, k, config.array.rows, config.array.cols, kt, mt, dataflow)


def _dtypes(config: AcceleratorConfig) -> tuple[str, str]:
    return ("int8", "int32") if config.array.dtype == "int8" else ("fp16", "fp32")


def compile_gemm(m: int, n: int, k: int, config: AcceleratorConfig, *,
                 dataflow: str = "os") -> Program:
    """A program computing C = A·B (int8 -> int32 or fp16 -> fp32, by ``config.array.dtype``).

    DRAM layout: A (column-major for OS, so a column of an A tile is contiguous; row-major for
    WS), then B row-major, then C row-major, each 64-byte aligned. Partial tiles at the matrix
    edges use LOAD's zero fill, so DRAM holds no padding.

    Raises
    ------
    ValueError
        Non-positive dimensions, or a dataflow the config does not support.
    """
    if dataflow not in config.array.dataflows:
        raise ValueError(f"dataflow {dataflow!r} is not supported by config {config.name!r} "
                         f"(supported: {config.array.dataflows})")
    t = gemm_tiling(m, n, k, config, dataflow)
    op, acc = _dtypes(config)

    def align(x: int) -> int:
        return (x + 63) // 64 * 64

    a = TensorRef(0, (m, k), op, order="col" if dataflow == "os" else "row")
    b = TensorRef(align(a.addr + a.nbytes), (k, n), op)
    c = TensorRef(align(b.addr + b.nbytes), (m, n), acc)
    lower = _lower_os if dataflow == "os" else _lower_ws
    cmds = lower(t, config, a, b, c)
    return Program(cmds, align(c.addr + c.nbytes), {"A": a, "B": b, "C": c},
                   inputs=("A", "B"), outputs=("C",))


def _halves(config: AcceleratorConfig) -> tuple[int, int, int]:
    if not config.buffers.double_buffered:
        return 0, 0, 0
    return config.act_depth // 2, config.wgt_depth // 2, config.acc_depth // 2


def _lower_os(t: GemmTiling, config: AcceleratorConfig, a: TensorRef, b: TensorRef,
              c: TensorRef) -> list[isa.Command]:
    R, C = t.rows, t.cols
    eb = a.np_dtype.itemsize
    cb = c.np_dtype.itemsize
    half_act, half_wgt, half_acc = _halves(config)
    cmds: list[isa.Command] = []
    tile = 0
    for m0 in range(0, t.m, R):
        mr = min(R, t.m - m0)
        for n0 in range(0, t.n, C):
            nc = min(C, t.n - n0)
            c_addr = (tile % 2) * half_acc
            for chunk, k0 in enumerate(range(0, t.k, t.kt)):
                kc = min(t.kt, t.k - k0)
                b_addr = ((tile + chunk) % 2) * half_wgt
                # A stays resident across the N loop when the whole reduction fits
                a_addr = 0 if t.a_resident else ((tile + chunk) % 2) * half_act
                if not t.a_resident or n0 == 0:
                    cmds.append(isa.Load(isa.Buffer.ACT, a_addr, a.addr + (k0 * t.m + m0) * eb,
                                         kc, mr, t.m * eb))
                cmds.append(isa.Load(isa.Buffer.WGT, b_addr, b.addr + (k0 * t.n + n0) * eb,
                                     kc, nc, t.n * eb))
                cmds.append(isa.Gemm(a_addr=a_addr, b_addr=b_addr, c_addr=c_addr, idx_addr=0,
                                     k=kc, m=0, dataflow=isa.Dataflow.OS,
                                     accumulate=int(k0 > 0)))
            cmds.append(isa.Store(isa.Buffer.ACC, c_addr, c.addr + (m0 * t.n + n0) * cb, mr, nc,
                                  t.n * cb))
            tile += 1
    return cmds


def _lower_ws(t: GemmTiling, config: AcceleratorConfig, a: TensorRef, b: TensorRef,
              c: TensorRef) -> list[isa.Command]:
    R, C = t.rows, t.cols
    eb = a.np_dtype.itemsize
    cb = c.np_dtype.itemsize
    half_act, half_wgt, half_acc = _halves(config)
    cmds: list[isa.Command] = []
    step = 0
    for n0 in range(0, t.n, C):
        nc = min(C, t.n - n0)
        for blk, m0 in enumerate(range(0, t.m, t.mt)):
            mc = min(t.mt, t.m - m0)
            c_addr = (blk % 2) * half_acc
            for k0 in range(0, t.k, R):
                kc = min(R, t.k - k0)
                w_addr = (step % 2) * half_wgt
                a_addr = (step % 2) * half_act
                cmds.append(isa.Load(isa.Buffer.WGT, w_addr, b.addr + (k0 * t.n + n0) * eb,
                                     kc, nc, t.n * eb))
                cmds.append(isa.Load(isa.Buffer.ACT, a_addr, a.addr + (m0 * t.k + k0) * eb,
                                     mc, kc, t.k * eb))
                cmds.append(isa.Gemm(a_addr=a_addr, b_addr=w_addr, c_addr=c_addr, idx_addr=0,
                                     k=kc, m=mc, dataflow=isa.Dataflow.WS,
                                     accumulate=int(k0 > 0)))
                step += 1
            cmds.append(isa.Store(isa.Buffer.ACC, c_addr, c.addr + (m0 * t.n + n0) * cb, mc, nc,
                                  t.n * cb))
    return cmds
