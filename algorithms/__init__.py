"""PyTorch reference math of satmem: N:M masks, SR-STE/BDWP training, MemoryFormer, AttMEMO.

Imports nothing else of satmem. Modules:

- :mod:`algorithms.nm`: N:M masks, transposable masks, the compressed format.
- :mod:`algorithms.bdwp`: ``SparseLinear``/``SparseConv2d`` (dense, SR-STE, BDWP,
  transposable).
- :func:`algorithms.sparsify`: swap a model's layers for sparse ones.
- :mod:`algorithms.flops`: per-layer, per-pass training MACs (the ideal bound).
- :mod:`algorithms.memoryformer`: hashed-table memory layers and the MemoryFormer LM.
- :mod:`algorithms.attmemo`: attention-map memoization (embedder, memo DB, Faiss index).
- :mod:`algorithms.transformer`: the dense causal transformer LM both compare against.
- :mod:`algorithms.experiments`: the N:M, MemoryFormer and AttMEMO experiments.
"""

from . import attmemo, bdwp, flops, memoryformer, nm, transformer
from .bdwp import METHODS, SparseConv2d, SparseLinear
from .flops import ideal_speedup, training_macs
from .nm import compress, decompress, nm_mask, parse_pattern, transposable_mask
from .sparsify_model import sparsifiable_layers, sparsify

__all__ = [
    "METHODS",
    "attmemo",
    "bdwp",
    "compress",
    "decompress",
    "flops",
    "ideal_speedup",
    "memoryformer",
    "nm",
    "nm_mask",
    "parse_pattern",
    "SparseConv2d",
    "SparseLinear",
    "sparsifiable_layers",
    "sparsify",
    "training_macs",
    "transformer",
    "transposable_mask",
]
