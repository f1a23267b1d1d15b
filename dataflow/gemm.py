"""Lowering one GEMM onto the array: tiling, DRAM layout and the LOAD/GEMM/STORE sequence."""

from __future__ import annotations

from dataclasses import dataclass

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.program import Program, TensorRef

__all__ = ["GemmTiling", "compile_gemm", "gemm_tiling"]


@dataclass(frozen=True)
class GemmTiling:
    """How a GEMM C[M,N] = A[M,K]·B[K,N] is cut into array tiles.

    Output tiles are ``rows x cols`` (the array); the reduction is cut into chunks of ``kt``
    steps, each of which fits one half of the double-buffered ACT and WGT buffers. When the
    whole reduction fits (``kt == K``) the A tile stays resident while B tiles stream past it.
    """

    m: int
    n: int
    k: int
    rows: int
    cols: int
    kt: int

    @property
    def a_resident(self) -> bool:
        return self.kt >= self.k

    @property
    def tiles(self) -> int:
        return -(-self.m // self.rows) * -(-self.n // self.cols)


def gemm_tiling(m: int, n: int, k: int, config: AcceleratorConfig) -> GemmTiling:
    """Largest reduction chunk that fits half of the ACT and WGT buffers."""
    for name, v in (("M", m), ("N", n), ("K", k)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"GEMM dimension {name} must be a positive integer, not {v!r}")
    half = 2 if config.buffers.double_buffered else 1
    kt = min(k, config.act_depth // half, config.wgt_depth // half, (1 << 16) - 1)
    return GemmTiling(m, n, k, config.array.rows, config.array.cols, kt)


def compile_gemm(m: int, n: int, k: int, config: AcceleratorConfig, *,
                 dataflow: str = "os") -> Program:
    """A program computing C = A·B for int8 A[M,K], B[K,N] and int32 C[M,N].

    DRAM layout: Aᵀ (column-major A, so a column of an A tile is contiguous), then B row-major,
    then C row-major, each 64-byte aligned. Partial tiles at the matrix edges rely on LOAD's
    zero fill, so DRAM holds no padding.

    Raises
    ------
    ValueError
        Non-positive dimensions, or a dataflow the config does not support.
    """
    if dataflow not in config.array.dataflows:
        raise ValueError(f"dataflow {dataflow!r} is not supported by config {config.name!r} "
                         f"(supported: {config.array.dataflows})")
    if dataflow != "os":
        raise ValueError("only output-stationary GEMM lowering exists so far (dataflow='os')")
    if config.array.dtype != "int8":
        raise ValueError(f"int8 GEMM lowering needs an int8 array, config {config.name!r} is "
                         f"{config.array.dtype}")
    t = gemm_tiling(m, n, k, config)
    R, C = t.rows, t.cols

    def align(x: int) -> int:
        return (x + 63) // 64 * 64

    a = TensorRef(0, (m, k), "int8", order="col")
    b = TensorRef(align(a.addr + a.nbytes), (k, n), "int8")
    c = TensorRef(align(b.addr + b.nbytes), (m, n), "int32")
    dram = align(c.addr + c.nbytes)

    half_act = config.act_depth // 2 if config.buffers.double_buffered else 0
    half_wgt = config.wgt_depth // 2 if config.buffers.double_buffered else 0
    half_acc = config.acc_depth // 2 if config.buffers.double_buffered else 0
    cmds: list[isa.Command] = []
    tile = 0
    for m0 in range(0, m, R):
        mr = min(R, m - m0)
        for n0 in range(0, n, C):
            nc = min(C, n - n0)
            c_addr = (tile % 2) * half_acc
            for chunk, k0 in enumerate(range(0, k, t.kt)):
                kc = min(t.kt, k - k0)
                b_addr = ((tile + chunk) % 2) * half_wgt
                # A stays resident across the N loop when the whole reduction fits
                a_addr = 0 if t.a_resident else ((tile + chunk) % 2) * half_act
                if not t.a_resident or n0 == 0:
                    cmds.append(isa.Load(isa.Buffer.ACT, a_addr, a.addr + k0 * m + m0, kc, mr, m))
                cmds.append(isa.Load(isa.Buffer.WGT, b_addr, b.addr + k0 * n + n0, kc, nc, n))
                cmds.append(isa.Gemm(a_addr=a_addr, b_addr=b_addr, c_addr=c_addr, idx_addr=0,
                                     k=kc, m=0, dataflow=isa.Dataflow.OS, accumulate=int(k0 > 0)))
            cmds.append(isa.Store(isa.Buffer.ACC, c_addr, c.addr + (m0 * n + n0) * 4, mr, nc,
                                  n * 4))
            tile += 1
    return Program(cmds, dram, {"A": a, "B": b, "C": c}, inputs=("A", "B"), outputs=("C",))
