"""Compile options: the paper's dataflow optimisations as switches.

=====================  ======================================================================
switch                 effect when on (off in brackets)
=====================  ======================================================================
``interleave``         the independent backward GEMMs of a layer (``bgrad`` and ``wgrad``;
                       attention's ``dP``/``dV`` and ``dQ``/``dK``) are one group whose tile
                       blocks alternate, so sparse DMA-bound tiles and dense compute-bound
                       tiles share the pipeline [each GEMM op runs on its own]
``pregenerate``        after each weight update SORE prunes both sparse copies (W along
                       in-features for the forward, Wᵀ along out-features for the backward)
                       and both go to DRAM [SORE prunes each copy online, right before the
                       GEMM that reads it, on that pass's critical path]
``offline_schedule``   items are ordered and overlapped across layers: semaphore tokens
                       carry only the true dependencies, weight updates (and pre-generation)
                       run on the vector engine and SORE beside the rest of the backward pass,
                       online pruning runs one GEMM ahead [a SYNC fence between every op:
                       layer-by-layer execution, updates at the end of the step]
=====================  ======================================================================

Beside them, ``tile_blocked`` (ours, not the paper's): operands in tile-blocked DRAM layouts
(:mod:`dataflow.lower.gemm`), so that each tile's LOAD and STORE is one contiguous range (one
burst stream for a burst DMA, rows over every DRAM channel for the RTL's) rather than 64- or
128-byte rows at the tensor's pitch [row- and column-major tensors].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .lower.lookup import TABLE_OPTIMIZERS
from .mapping import OBJECTIVES

__all__ = ["ABLATION", "CompileOptions"]


@dataclass(frozen=True)
class CompileOptions:
    """How :func:`dataflow.compile` lowers a workload.

    Parameters
    ----------
    objective : {"cycles", "energy", "edp"}
        Mapping-search objective.
    interleave, pregenerate, offline_schedule : bool
        The paper's dataflow optimisations (module docstring).
    vector_ops : bool
        Emit vector, update and prune commands. False emits the GEMMs only (what
        :func:`hwsim.run` executes today) and drops the optimisation switches' effect on them.
    fuse_elementwise : bool
        Assume norms, activations, pooling, residual adds, softmax, col2im and the loss are
        fused into the GEMMs' load/store paths (no vector-engine commands for them); weight
        updates and pruning are still emitted. A what-if that isolates the GEMM pipeline.
    dataflows : tuple of str or None
        Restrict the mapping search (default: the config's).
    cache_dir : str or None
        Directory of the on-disk mapping cache; None: in memory only.
    table_optimizer : {"sgd_momentum", "adam"}
        The optimizer of MemoryFormer's table rows (``table_update`` ops): SGD with momentum
        (the lookup engine's SCATTER mode 1) or Adam (mode 2, SparseAdam's step, with one more
        fp32 table per memory layer); :mod:`dataflow.lower.lookup`.
    max_commands : int or None
        The program's command budget, checked from the mappings before anything is emitted
        (:func:`dataflow.lower.gemm.check_budget`): None is the default budget, 0 none.
    tile_blocked : bool
        GEMM operands (A, B, its indices, C) in tile-blocked DRAM layouts
        (:mod:`dataflow.lower.gemm`): a tile's LOAD or STORE is one contiguous range. False:
        row- and column-major tensors (one DRAM request per tile row).
    chunk_vector : bool
        With ``offline_schedule``: the last pass of a vector kernel that a GEMM reads along
        its batch axis is cut into chunks of whole images, and each of the GEMM's loads waits
        only for the chunks it reads (:mod:`dataflow.compiler`). False: the GEMM waits for the
        whole kernel.
    defer_wgrad : bool
        With ``offline_schedule`` and ``interleave``: the weight-gradient tiles of a backward
        group that come after its chain GEMM's last tile are array side work, run where the
        chain's next GEMM waits for the vector engine (in order, whole tiles). False: right
        after the group's chain tiles.
    """

    objective: str = "cycles"
    interleave: bool = True
    pregenerate: bool = True
    offline_schedule: bool = True
    vector_ops: bool = True
    fuse_elementwise: bool = False
    dataflows: tuple[str, ...] | None = None
    cache_dir: str | None = None
    table_optimizer: str = "sgd_momentum"
    max_commands: int | None = None
    tile_blocked: bool = True
    chunk_vector: bool = True
    defer_wgrad: bool = True

    def __post_init__(self) -> None:
        if self.max_commands is not None and (isinstance(self.max_commands, bool) or not
                                              isinstance(self.max_commands, int)
                                              or self.max_commands < 0):
            raise ValueError(f"max_commands must be a non-negative integer or None, not "
                             f"{self.max_commands!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")
        if self.table_optimizer not in TABLE_OPTIMIZERS:
            raise ValueError(f"table_optimizer must be one of {TABLE_OPTIMIZERS}, not "
                             f"{self.table_optimizer!r}")
        for name in ("interleave", "pregenerate", "offline_schedule", "vector_ops",
                     "fuse_elementwise", "tile_blocked", "chunk_vector",
                     "defer_wgrad"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")

    def replace(self, **kw) -> CompileOptions:
        return replace(self, **kw)


ABLATION = (
    ("none", dict(interleave=False, pregenerate=False, offline_schedule=False)),
    ("+interleave", dict(interleave=True, pregenerate=False, offline_schedule=False)),
    ("+pregenerate", dict(interleave=False, pregenerate=True, offline_schedule=False)),
    ("+offline_schedule", dict(interleave=False, pregenerate=False, offline_schedule=True)),
    ("all but interleave", dict(interleave=False, pregenerate=True, offline_schedule=True)),
    ("all but pregenerate", dict(interleave=True, pregenerate=False, offline_schedule=True)),
    ("all but offline_schedule", dict(interleave=True, pregenerate=True,
                                      offline_schedule=False)),
    ("all", dict(interleave=True, pregenerate=True, offline_schedule=True)),
)
"""``(label, switches)`` rows of the ablation table."""
