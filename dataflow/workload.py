"""Workload extraction: one training step (or inference pass) of a model as a list of ops.

:func:`extract` runs the model once, eagerly, on the example input, under a
``torch.overrides.TorchFunctionMode`` and with forward pre/post hooks on every submodule.
The hooks keep the stack of module paths and lower the layers with weights as a whole;
the mode sees every other top-level torch call (``@``, ``softmax``, ``+``, ``relu`` ...)
and files it under the innermost running module. Hooks plus the mode, not ``torch.fx``:
symbolic tracing fails on Python control flow over shapes or values and loses the module
path of functional ops, while an eager run follows exactly the path this input takes and
works on the ``meta`` device, where shapes propagate and no arithmetic is done (ResNet-50
extracts in well under a second).

Limits. One input, one path: data-dependent control flow is followed for the example
input only, and on ``meta`` a branch on tensor *values* raises (run on CPU then). Work
done outside torch functions (a C++ extension that bypasses ``__torch_function__``) and
modules created inside ``forward`` are not seen as modules. The loss is modelled as one
vector op over the model output (softmax cross-entropy assumed), not traced.

Conventions. A GEMM is ``C[M, N] = A[M, K] · B[K, N]``, ``repeat`` times (groups,
batch x heads); MACs are ``M·N·K·repeat``, times ``n/m`` when the op is N:M sparse. The
weight is always operand B and N:M groups run along K, the reduction axis.

==========  ======================  =======================  =========================
layer       fwd (M, N, K)           bgrad (M, N, K)          wgrad (M, N, K)
==========  ======================  =======================  =========================
Linear      T, out, in              T, in, out               out, in, T
Conv2d      P, C_out/g, C_in/g·kk   P, C_in/g·kk, C_out/g *  C_out/g, C_in/g·kk, P
matmul      M, N, K                 dA: M, K, N              dB: K, N, M
==========  ======================  =======================  =========================

``T`` is the number of input rows (all leading dims), ``P = batch·H_out·W_out``,
``kk = kh·kw``, ``g = groups`` (``repeat = g``).

- Convolutions are lowered by im2col. ``bgrad`` (*) is the *column-gradient* GEMM
  ``dcols = dY · W`` followed by a ``col2im`` scatter-add vector op (listed only when
  patches overlap: dilated kernel extent > stride), not a zero-inserted transposed
  convolution: it has the forward's MACs for any stride, and its reduction axis is C_out,
  the axis BDWP's backward mask groups. A stride-1, undilated convolution whose output has
  its input's size ("same" padding) is the exception: its ``bgrad`` is the transposed
  convolution ``dX = im2col(dY) · Wᵀ`` (the kernel flipped), ``(P, C_in/g, C_out/g·kk)``,
  with the forward's MACs too, no ``col2im``, and the reduction over ``(tap, C_out)``
  with C_out innermost, so BDWP's groups along C_out are groups of K (the implicit-GEMM
  data gradient of cuDNN-style libraries). im2col itself is data movement, not listed.
- ``bgrad`` is listed for every layer, the first included, as
  :func:`algorithms.flops.training_macs` counts it. Biases are folded into the forward
  GEMM; their gradient is a ``bias_grad`` vector op in ``wgrad``.
- ``matmul`` (``@``, ``mm``, ``bmm``, ``addmm`` ...): ``repeat`` is the broadcast batch;
  ``(..., M, K) @ (K, N)`` is one GEMM over all rows. Between two activations (attention:
  ``QKᵀ`` is ``M = S_q, N = S_k, K = d_h, repeat = batch·heads``, then ``PV``) both
  gradients are ``bgrad`` GEMMs; an ``nn.Parameter`` operand's gradient is ``wgrad``.
  ``scaled_dot_product_attention`` expands to ``QKᵀ``, softmax, ``PV`` and the backward
  ``dP``, ``dV``, softmax, ``dQ``, ``dK``. An operand that is a view of a parameter
  (``W.t()``, as in a decomposed exported program's ``addmm(b, x, t(W))``) is a weight too.
- ``einsum`` of two operands is one GEMM: the indices of both operands and the output are the
  batch (``repeat``), those of both operands only are contracted (``K``), the others are
  ``M`` (first operand's) and ``N`` (second's), so ``bij,jk->bik`` is ``(b·i, k, j)`` as
  with ``@``, and ``bhqd,bhkd->bhqk`` is ``QKᵀ`` with ``repeat = b·h``; its gradients are
  those of ``matmul``. Einsums with no contracted index (outer products), a diagonal, an
  index summed in one operand only, or more than two operands are refused.
- ``nn.MultiheadAttention`` (``multi_head_attention_forward``): the input projections as
  dense GEMMs of the packed (or separate) projection weights (parameters, not ``Linear``
  layers: never N:M), the attention as ``scaled_dot_product_attention`` with
  ``repeat = batch·heads`` (the key length grown by ``bias_k``/``add_zero_attn``), dropout
  and the head-averaged weights as vector ops, and ``out_proj`` as its ``Linear`` layer
  (``<path>.out_proj``, N:M like any other).
- Functional ``embedding`` is the gather and scatter-add of ``nn.Embedding``; functional norms
  (``layer_norm``, ``group_norm``, ``batch_norm``, ``rms_norm``) with a weight add the
  ``wgrad`` vector op of their module. ``torch.ops.aten`` calls (an exported program's
  graph, :mod:`dataflow.frontend`) are named by their op (``aten.linear.default`` is
  ``linear``), and ``aten.convolution`` with a 2-D kernel is ``conv2d``.
- Norms, activations, pooling, residual adds and the like are ``vector`` ops of
  ``elements = max numel`` over their tensor inputs and outputs (pooling: ``out·kh·kw``),
  with one ``bgrad`` vector op of the same size when their output needs a gradient;
  norms with affine parameters add a ``wgrad`` vector op (dγ, dβ). Embeddings are a
  gather (fwd) and a scatter-add (wgrad).
- A tensor is *live* if it requires grad: the parameters and the float example inputs,
  which ``extract`` marks while it traces, and everything computed from them. Layout
  calls on live tensors (view, transpose, cat ...) carry no compute and are only counted
  in ``Workload.layout_calls``; calls with no live input (a causal mask or a rotary table
  built from ``arange``) only in ``Workload.constant_calls``.
- Each parameter tensor that requires grad gets one ``update`` op (``elements = numel``);
  the backward pass is listed in full even when some parameters are frozen.

Lookups (MemoryFormer's :class:`algorithms.memoryformer.MemoryLayer`) are ``lookup`` ops,
with the fields ``tokens`` (T, input rows), ``chunks`` (K), ``tau`` (bits, and elements,
per chunk), ``width`` (h, elements per table row), ``table_rows`` (K·2^tau: one contiguous
table), ``rows`` (table rows the op reads or writes), ``table`` (the table's parameter
path), ``weight`` (``"paper"`` or ``"official"``) and ``hash_op`` (the hash whose rows
it uses). ``elements`` is ``rows·h`` for row ops and ``T·K·tau`` for the hash ops.

============  ======  =====================================================  ================
op            pass    per token                                              rows
============  ======  =====================================================  ================
hash          fwd     K chunks of tau: sign bits, row = k·2^tau + code,      0
                      weight p(z) (or ||z||₁·p(z), ``weight="official"``)
gather        fwd     y = Σ_k p_k·T[row_k] (+ b): K rows of h, fp32 sum      T·K
lookup_grad   bgrad   dp_k = <dY, T[row_k]>: the same K rows read again      T·K
hash_grad     bgrad   dX = (Σ dp over the hash's lookups)·dp/dz, K·tau       0
scatter       wgrad   T[row_k] += p_k·dY: read-modify-write of K rows        T·K
table_update  update  optimizer step of the distinct touched rows only       E[distinct]
============  ======  =====================================================  ================

- The paper's input gradient ``dY·T[row_k]ᵀ·dp/dz`` is ``lookup_grad`` then ``hash_grad``:
  with a shared hash the three ``dp`` are summed and multiplied by ``dp/dz`` once.
- A memory layer's bias is folded into the gather; its gradient is a ``bias_grad`` vector
  op in ``wgrad`` and its update an ordinary ``update`` op, as for ``Linear``.
- Shared hashes: ``MemoryFormerBlock`` calls ``q.hash`` once and ``q``/``k``/``v.lookup``
  with its result, around the module call that hooks see, so :func:`extract` wraps each
  memory layer's ``hash`` and ``lookup`` methods for the duration of the trace (instance
  attributes, removed afterwards). Each hash call is one ``hash`` op; a lookup whose
  indices are the very tensor (identity) a hash returned names that op in ``hash_op``
  (``""`` if the indices came from elsewhere). Q, K and V thus share one hash and one
  ``hash_grad``.
- Rows touched by ``table_update``: on ``meta`` the hashes are unknown, so the count is the
  expectation for uniformly random hashes, ``R·(1 - (1 - 1/R)^n)`` rows of each of the K
  chunk tables, ``R = 2^tau`` rows and ``n`` the tokens looked up (:func:`expected_rows`;
  at most ``min(n·K, K·R)``). Real sign hashes are skewed, so this is an upper estimate:
  at training batch sizes (n = 2048, R = 256) it is the whole table.
- Inference is ``training=False`` (hash and gather only). A decode step with a KV cache is
  a model whose ``S`` new tokens attend to ``context`` cached positions (the
  ``memoryformer_*`` zoo entries take ``seq_len=1, context=C``): its attention GEMMs are
  ``S x (C+S)``, its lookups those of the ``S`` new tokens.

Order: forward ops in execution order, then the loss, then the backward ops of each
forward op in reverse order, then the updates in ``named_parameters`` order.

Sparsity per method (on ``nn.Linear``/``nn.Conv2d`` layers not skipped): ``dense``
none, ``srste`` fwd, ``bdwp`` and ``transposable`` fwd and bgrad; wgrad is always dense.
``skip`` defaults to none, as in :func:`algorithms.sparsify` and ``training_macs``;
:func:`default_skip` gives the usual stem conv and classifier, :func:`required_skip` only the
layers that cannot be N:M (an RGB stem).
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from algorithms.bdwp import SparseConv2d, SparseLinear, check_method
from algorithms.memoryformer import WEIGHTS, MemoryLayer
from algorithms.nm import parse_pattern
from algorithms.sparsify_model import sparsifiable_layers

__all__ = [
    "KINDS",
    "LOOKUP_OPS",
    "PASSES",
    "Op",
    "UnmappableOpError",
    "Workload",
    "default_skip",
    "expected_rows",
    "extract",
    "required_skip",
]

PASSES = ("fwd", "bgrad", "wgrad", "update")
KINDS = ("gemm", "vector", "update", "lookup")
LOOKUP_OPS = ("hash", "gather", "lookup_grad", "hash_grad", "scatter", "table_update",
              "key_scan", "map_fetch", "memo_insert")
_HASH_OPS = ("hash", "hash_grad")
_MEMO_OPS = ("key_scan", "map_fetch", "memo_insert")  # AttMEMO's store (dataflow.memo)

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._BatchNorm)
_HANDLED = (nn.Linear, nn.Conv2d, nn.Embedding) + _NORMS
# zero-compute calls: shape queries, views, copies and constants
_LAYOUT = frozenset((
    "get", "getitem", "setitem", "size", "dim", "numel", "shape", "view", "view_as", "reshape",
    "reshape_as", "transpose", "permute", "flatten", "unflatten", "chunk", "split",
    "split_with_sizes", "unbind", "contiguous", "unsqueeze", "squeeze", "expand", "expand_as",
    "narrow", "select", "t", "movedim", "swapaxes", "swapdims", "cat", "concat", "concatenate",
    "stack", "detach", "clone", "to", "type", "type_as", "float", "half", "bfloat16", "double",
    "long", "int", "bool", "is_contiguous", "is_floating_point", "requires_grad", "item", "tolist",
    "repeat", "tile", "repeat_interleave", "roll", "flip", "pad", "zeros_like", "ones_like",
    "empty_like", "full_like", "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor",
    "arange", "ones", "zeros", "full", "empty", "tensor", "as_tensor", "len", "iter", "repr",
    "format", "data_ptr", "element_size",
))
_MATMULS = {"matmul": (0, 1), "mm": (0, 1), "bmm": (0, 1), "mv": (0, 1), "dot": (0, 1),
            "addmm": (1, 2), "baddbmm": (1, 2), "addmv": (1, 2)}
# torch calls with no lowering, and what to write instead
_REWRITE = "rewrite it with matmul/linear/conv2d"
_UNMAPPABLE = {
    "tensordot": "write it as torch.einsum of two operands or matmul",
    "conv1d": "use nn.Conv2d with a (1, k) kernel on an (N, C, 1, L) input",
    "conv3d": _REWRITE,
    "conv_transpose1d": _REWRITE,
    "conv_transpose2d": "only forward Conv2d convolutions are lowered; use nn.Upsample + "
                        "nn.Conv2d",
    "conv_transpose3d": _REWRITE,
    "bilinear": "write it as two einsums, t = einsum('bi,oij->boj', x1, W) then "
                "einsum('boj,bj->bo', t, x2)",
    "embedding_bag": "use nn.Embedding and a sum or mean",
    "lstm": "recurrent cells are not lowered; write the cell with nn.Linear",
    "gru": "recurrent cells are not lowered; write the cell with nn.Linear",
    "rnn_tanh": "recurrent cells are not lowered; write the cell with nn.Linear",
    "rnn_relu": "recurrent cells are not lowered; write the cell with nn.Linear",
    "outer": "an outer product has no reduction axis; write it as broadcasting multiplication",
    "ger": "an outer product has no reduction axis; write it as broadcasting multiplication",
    "kron": _REWRITE,
    "addbmm": "write it as bmm followed by sum",
    "chain_matmul": "write it as a chain of matmul calls",
    "unfold": _REWRITE,
    "fold": _REWRITE,
    "cdist": _REWRITE,
}
# exported programs' aten ops that only move or relabel data
_ATEN_LAYOUT = frozenset((
    "alias", "slice", "unsafe_view", "to_copy", "lift_fresh_copy", "copy", "sym_size",
    "sym_numel", "sym_stride", "assert_tensor_metadata", "expand_copy", "view_copy",
    "permute_copy", "transpose_copy", "t_copy", "unsqueeze_copy", "squeeze_copy", "slice_copy",
    "select_copy", "split_copy", "unbind_copy", "alias_copy",
))
_FUNCTIONAL_NORMS = frozenset((
    "layer_norm", "group_norm", "batch_norm", "rms_norm", "instance_norm", "native_layer_norm",
    "native_group_norm", "native_batch_norm", "native_batch_norm_legit",
    "native_batch_norm_legit_functional", "native_batch_norm_legit_no_training",
))

_SHORT = {"scaled_dot_product_attention": "sdpa", "multi_head_attention_forward": "attn"}


class UnmappableOpError(ValueError):
    """A module or torch call that the workload cannot express; names its path and type."""


@dataclass(frozen=True)
class Op:
    """One op of a workload.

    Parameters
    ----------
    name : str
        Unique in its workload, e.g. ``"layer1.0.conv1.bgrad"``.
    layer : str
        Module path (``named_modules`` name; ``""`` for the root, ``"(loss)"``).
    kind : {"gemm", "vector", "update", "lookup"}
    pass_ : {"fwd", "bgrad", "wgrad", "update"}
        The pass (``pass`` is a Python keyword; the DataFrame column is ``"pass"``).
    op : str
        Op type: ``"linear"``, ``"conv2d"``, ``"matmul"``, ``"attn_qk"``, ``"relu"``,
        ``"col2im"``, ``"sgd_momentum"`` ...; for lookups one of :data:`LOOKUP_OPS`.
    m, n, k : int
        GEMM shape ``C[M, N] = A[M, K] · B[K, N]``; 0 for other kinds.
    elements : int
        Elements a vector or update op processes; 0 for GEMMs. Lookups: ``rows·width``
        table elements moved, or ``tokens·chunks·tau`` input elements for the hash ops.
    repeat : int
        Independent repetitions (conv groups, batch x heads).
    sparsity : tuple of int or None
        ``(n, m)`` when operand ``sparse_operand`` is N:M along K.
    sparse_operand : {"B"} or None
        The sparse operand (the weight); None when dense.
    description : str
    tokens : int
        Lookups: input rows ``T`` hashed or looked up (``table_update``: all the tokens
        scattered into the table in the step); 0 for other kinds.
    chunks : int
        Lookups: ``K``, chunks per token, one ``2^tau``-row slice of the table each.
    tau : int
        Lookups: bits per chunk, which is also the elements per chunk of the hash input.
    width : int
        Lookups: ``h``, elements per table row; 0 for the hash ops.
    table_rows : int
        Lookups: ``K·2^tau``, the rows of the one contiguous table (the hash's index range).
    rows : int
        Lookups: table rows read or written, each access counted (``T·K``);
        ``table_update``: the distinct rows touched (an expectation, see the module
        docstring); 0 for the hash ops.
    table : str
        Lookups: the table's parameter path, e.g. ``"blocks.0.q.tables"``; ``""`` for the
        hash ops.
    weight : {"paper", "official"} or ""
        Lookups: the chunk weight, ``p(z)`` or ``||z||₁·p(z)``.
    hash_op : str
        ``gather``/``lookup_grad``/``scatter``: the name of the ``hash`` op whose rows and
        weights they use; ``""`` otherwise.
    """

    name: str
    layer: str
    kind: str
    pass_: str
    op: str
    m: int = 0
    n: int = 0
    k: int = 0
    elements: int = 0
    repeat: int = 1
    sparsity: tuple[int, int] | None = None
    sparse_operand: str | None = None
    description: str = ""
    tokens: int = 0
    chunks: int = 0
    tau: int = 0
    width: int = 0
    table_rows: int = 0
    rows: int = 0
    table: str = ""
    weight: str = ""
    hash_op: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Op {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.pass_ not in PASSES:
            raise ValueError(f"Op {self.name!r}: pass must be one of {PASSES}, not {self.pass_!r}")
        if self.kind == "gemm" and min(self.m, self.n, self.k, self.repeat) < 1:
            raise ValueError(f"Op {self.name!r}: GEMM dimensions must be positive, not "
                             f"M={self.m} N={self.n} K={self.k} repeat={self.repeat}")
        if (self.sparsity is None) != (self.sparse_operand is None):
            raise ValueError(f"Op {self.name!r}: sparsity and sparse_operand go together")
        if self.kind == "lookup":
            self._check_lookup()

    def _check_lookup(self) -> None:
        def bad(what):
            return ValueError(f"Op {self.name!r}: {what}")

        if self.op not in LOOKUP_OPS:
            raise bad(f"lookup op must be one of {LOOKUP_OPS}, not {self.op!r}")
        if self.chunks < 1 or self.tau < 1 or min(self.tokens, self.rows) < 0:
            raise bad(f"lookup needs chunks and tau >= 1 and tokens, rows >= 0, not "
                      f"chunks={self.chunks} tau={self.tau} tokens={self.tokens} "
                      f"rows={self.rows}")
        if self.op in _MEMO_OPS:  # a memo store's rows: any count (dataflow.memo)
            if self.table_rows < 1:
                raise bad(f"a memo store needs table_rows >= 1, not {self.table_rows}")
        elif self.table_rows != self.chunks << self.tau:
            raise bad(f"table_rows must be chunks·2^tau = {self.chunks << self.tau}, "
                      f"not {self.table_rows}")
        if self.op not in _HASH_OPS and (self.width < 1 or not self.table):
            raise bad(f"{self.op} needs a positive width and a table, not width={self.width} "
                      f"table={self.table!r}")
        if self.weight not in WEIGHTS:
            raise bad(f"weight must be 'paper' or 'official', not {self.weight!r}")

    @property
    def dense_macs(self) -> int:
        """``M·N·K·repeat`` for a GEMM, else 0."""
        return self.m * self.n * self.k * self.repeat if self.kind == "gemm" else 0

    @property
    def macs(self) -> int:
        """Dense MACs times ``n/m`` (floored) when sparse."""
        if self.sparsity is None:
            return self.dense_macs
        return self.dense_macs * self.sparsity[0] // self.sparsity[1]

    @property
    def pattern(self) -> str:
        """``"N:M"``, or ``""`` when dense."""
        return "" if self.sparsity is None else "{}:{}".format(*self.sparsity)


@dataclass(frozen=True)
class Workload:
    """The ordered ops of one training step or inference pass (see the module docstring).

    Parameters
    ----------
    ops : tuple of Op
    model : str
    method : str or None
        None: each layer as it is (``SparseLinear``/``SparseConv2d`` keep their own).
    pattern : str or None
        ``"N:M"``.
    training : bool
    skip : tuple of str
    layout_calls : tuple of (str, int)
        Zero-compute torch calls on live tensors (views, cats, shape queries), by name.
    constant_calls : tuple of (str, int)
        Torch calls with no live input (masks, rotary tables built from constants), by
        name: work that does not depend on the batch or the weights, left out.
    """

    ops: tuple[Op, ...]
    model: str
    method: str | None
    pattern: str | None
    training: bool
    skip: tuple[str, ...] = ()
    layout_calls: tuple[tuple[str, int], ...] = ()
    constant_calls: tuple[tuple[str, int], ...] = ()

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def gemms(self) -> tuple[Op, ...]:
        """The GEMM ops, in order."""
        return tuple(op for op in self.ops if op.kind == "gemm")

    def macs(self, *, dense: bool = False) -> dict[str, int]:
        """GEMM MACs per pass ``{"fwd", "bgrad", "wgrad"}``; ``dense=True`` ignores sparsity."""
        total = {"fwd": 0, "bgrad": 0, "wgrad": 0}
        for op in self.gemms():
            total[op.pass_] += op.dense_macs if dense else op.macs
        return total

    def ideal_speedup(self) -> float:
        """Dense GEMM MACs over sparse GEMM MACs of the whole workload."""
        return sum(self.macs(dense=True).values()) / sum(self.macs().values())

    def lookups(self) -> tuple[Op, ...]:
        """The lookup ops, in order."""
        return tuple(op for op in self.ops if op.kind == "lookup")

    def lookup_tables(self, element_bytes: int = 2, level: int | None = None) -> pd.DataFrame:
        """The lookup tables and what one pass reads from them.

        Parameters
        ----------
        element_bytes : int, default 2
            Bytes per table element (fp16).
        level : int or None
            None: one row per table. ``n``: tables grouped by the first ``n`` dotted parts
            of their path and summed (``2`` gives MemoryFormer's blocks ``blocks.<i>``:
            Q, K, V and the memory block's two layers).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``table`` (or ``group``): ``tables``, ``entries`` (``K·2^tau·h``),
            ``bytes``, ``gathered_bytes`` (by the forward gathers of the pass),
            ``gathered_bytes_per_token`` (what one token gathers: ``K·h·element_bytes`` per
            gather call on the table) and ``rows_touched`` (:func:`expected_rows` of the
            tokens looked up); per table also ``chunks``, ``tau``, ``width``,
            ``table_rows``.
        """
        shape, gathered, per_token, tokens = {}, Counter(), Counter(), Counter()
        for op in self.lookups():
            if not op.table:
                continue
            shape.setdefault(op.table, (op.chunks, op.tau, op.width, op.table_rows))
            if op.op == "gather":
                gathered[op.table] += op.rows * op.width * element_bytes
                per_token[op.table] += op.chunks * op.width * element_bytes
                tokens[op.table] += op.tokens
        rows = []
        for table, (chunks, tau, width, table_rows) in shape.items():
            entries = table_rows * width
            rows.append({"table": table, "tables": 1, "chunks": chunks, "tau": tau,
                         "width": width, "table_rows": table_rows, "entries": entries,
                         "bytes": entries * element_bytes, "gathered_bytes": gathered[table],
                         "gathered_bytes_per_token": per_token[table],
                         "rows_touched": expected_rows(tokens[table], chunks, tau)})
        cols = ["table", "tables", "chunks", "tau", "width", "table_rows", "entries", "bytes",
                "gathered_bytes", "gathered_bytes_per_token", "rows_touched"]
        df = pd.DataFrame(rows, columns=cols)
        if level is None:
            return df.set_index("table")
        df["group"] = [".".join(t.split(".")[:level]) for t in df["table"]]
        sums = ["tables", "entries", "bytes", "gathered_bytes", "gathered_bytes_per_token",
                "rows_touched"]
        return df.groupby("group", sort=False)[sums].sum()

    def lookup_totals(self, element_bytes: int = 2) -> dict[str, int]:
        """Whole-model sums of :meth:`lookup_tables`: ``tables``, ``entries``, ``bytes``,
        ``gathered_bytes``, ``gathered_bytes_per_token``, ``rows_touched``."""
        df = self.lookup_tables(element_bytes)
        keys = ("tables", "entries", "bytes", "gathered_bytes", "gathered_bytes_per_token",
                "rows_touched")
        return {key: int(df[key].sum()) for key in keys}

    def to_dataframe(self) -> pd.DataFrame:
        """One row per op: name, layer, kind, pass, op, m, n, k, repeat, elements, pattern,
        sparse_operand, dense_macs, macs, description, then the lookup fields tokens,
        chunks, tau, width, table_rows, rows, table, weight, hash_op."""
        cols = ["name", "layer", "kind", "pass", "op", "m", "n", "k", "repeat", "elements",
                "pattern", "sparse_operand", "dense_macs", "macs", "description", "tokens",
                "chunks", "tau", "width", "table_rows", "rows", "table", "weight", "hash_op"]
        rows = [(o.name, o.layer, o.kind, o.pass_, o.op, o.m, o.n, o.k, o.repeat, o.elements,
                 o.pattern, o.sparse_operand or "", o.dense_macs, o.macs, o.description,
                 o.tokens, o.chunks, o.tau, o.width, o.table_rows, o.rows, o.table, o.weight,
                 o.hash_op)
                for o in self.ops]
        return pd.DataFrame(rows, columns=cols)


def expected_rows(tokens: int, chunks: int, tau: int) -> int:
    """Expected distinct rows ``tokens`` uniformly random hashes touch in a lookup table.

    ``chunks · R·(1 - (1 - 1/R)^tokens)`` with ``R = 2^tau`` rows per chunk table, rounded;
    at most ``min(tokens·chunks, chunks·R)``. The rows a ``table_update`` touches when the
    hashes are unknown (on ``meta``); real sign hashes are skewed and touch fewer.
    """
    if tokens <= 0:
        return 0
    r = 2**tau
    per_chunk = r * -math.expm1(tokens * math.log1p(-1 / r))
    return min(tokens * chunks, round(chunks * per_chunk))


def _skipped(name: str, skip: Iterable[str]) -> bool:
    return any(name == s or fnmatch.fnmatchcase(name, s) for s in skip)


def default_skip(model: nn.Module) -> tuple[str, ...]:
    """The layers N:M training usually keeps dense: a ``Conv2d`` stem and the classifier.

    The first ``nn.Linear``/``nn.Conv2d`` (in :func:`algorithms.sparsifiable_layers` order)
    if it is a ``Conv2d``, and the last one. A transformer LM keeps its first block sparse.
    """
    layers = sparsifiable_layers(model)
    if not layers:
        return ()
    names = [layers[-1][0]]
    if isinstance(layers[0][1], nn.Conv2d) and len(layers) > 1:
        names.insert(0, layers[0][0])
    return tuple(names)


def _nm_obstacle(mod: nn.Module, method: str, m: int) -> str | None:
    """Why ``mod`` (a Linear or Conv2d) cannot be N:M sparse with groups of ``m`` under
    ``method``, or None: the reduction axes of its sparse GEMMs must be multiples of ``m``."""
    axes = [("in", 1)] + ([("out", 0)] if method in ("bdwp", "transposable") else [])
    for label, axis in axes:
        if mod.weight.shape[axis] % m:
            return f"{label}-channel size {mod.weight.shape[axis]} is not divisible by m={m}"
    if isinstance(mod, nn.Conv2d) and mod.groups != 1:
        return f"grouped convolution (groups={mod.groups}) cannot be N:M sparse"
    return None


def required_skip(model: nn.Module, method: str, pattern: str) -> tuple[str, ...]:
    """The layers that cannot be N:M sparse under ``method`` at ``pattern``, and nothing else.

    A ``Linear``/``Conv2d`` whose sparse reduction axes (in-features; with BDWP and transposable
    also out-features) are not multiples of M, or a grouped convolution: an RGB stem (3 input
    channels) is the usual one. Every other layer, the classifier included, stays sparse, which
    is what the 2.0x bound of BDWP at 2:8 assumes. Compare :func:`default_skip`.
    """
    check_method(method)
    if method == "dense":
        return ()
    _, m = parse_pattern(pattern)
    return tuple(name for name, mod in sparsifiable_layers(model)
                 if _nm_obstacle(mod, method, m))


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _einsum_operands(args, kwargs) -> tuple:
    """``(equation, operands)`` of ``torch.einsum(eq, a, b)``, ``einsum(eq, [a, b])`` or
    ``aten.einsum(eq, [a, b])``."""
    eq = _arg(args, kwargs, 0, "equation")
    ops = tuple(args[1:]) or tuple(_tensors(kwargs))
    if len(ops) == 1 and isinstance(ops[0], list | tuple):
        ops = tuple(ops[0])
    return eq, ops


def _einsum_shape(eq, ops) -> tuple[int, ...] | str:
    """``(M, N, K, repeat, repeat_A, repeat_B)`` of a two-operand einsum (see the module
    docstring), or why it is not a GEMM, in words."""
    if not isinstance(eq, str):
        return "the sublist form is not lowered; write the equation as a string"
    if len(ops) != 2:
        return (f"{eq!r} has {len(ops)} operands and only two-operand einsums are GEMMs; "
                f"split it into einsums of two")
    lhs, arrow, out = eq.replace(" ", "").partition("->")
    terms = lhs.split(",")
    extra = [t.dim() - len(term.replace("...", "")) for term, t in zip(terms, ops, strict=True)]
    if any(x < 0 or (x and "..." not in term) for x, term in zip(extra, terms, strict=True)):
        return f"{eq!r} does not match operands of shapes {[tuple(t.shape) for t in ops]}"
    width = max(extra)
    dots = [chr(0x3B1 + i) for i in range(width)]  # labels of the ellipsis dimensions

    def expand(term: str, n: int) -> list[str]:
        head, sep, tail = term.partition("...")
        return list(head) + (dots[width - n:] if sep else []) + list(tail)

    a, b = (expand(term, x) for term, x in zip(terms, extra, strict=True))
    if arrow:
        o = set(expand(out, width))
    else:
        counts = Counter(a + b)
        o = set(dots) | {c for c, n in counts.items() if n == 1}
    if len(set(a)) < len(a) or len(set(b)) < len(b):
        return f"{eq!r} repeats an index within an operand (a diagonal), which is not lowered"
    size_a, size_b = dict(zip(a, ops[0].shape, strict=True)), dict(zip(b, ops[1].shape,
                                                                        strict=True))
    in_a, in_b = set(a), set(b)
    for c in in_a & in_b:  # a size-1 dimension broadcast against the other operand's
        if size_a[c] != size_b[c] and 1 in (size_a[c], size_b[c]):
            (in_a if size_a[c] == 1 else in_b).discard(c)
    summed = (in_a ^ in_b) - o
    if summed:
        return (f"{eq!r} sums index {''.join(sorted(summed))} within one operand; sum it "
                f"with .sum() first")
    contracted = (in_a & in_b) - o
    if not contracted:
        return (f"{eq!r} contracts no index (an outer or elementwise product); write it as "
                f"broadcasting multiplication")
    def size(c: str) -> int:
        return size_a[c] if c in in_a else size_b[c]

    m, n, k, r = (math.prod(size(c) for c in group) for group in
                  (in_a - in_b, in_b - in_a, contracted, in_a & in_b & o))
    return m, n, k, r, r, r


def _arg(args, kwargs, i: int, name: str, default=None):
    return args[i] if len(args) > i else kwargs.get(name, default)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _same_stride1(stride, dilation, x, y, c_in: int, c_out: int) -> bool:
    """A stride-1, undilated convolution whose output has its input's pixels ("same")."""
    return (tuple(_pair(stride)) == (1, 1) and tuple(_pair(dilation)) == (1, 1)
            and x.numel() // c_in == y.numel() // c_out)


class _Tracer(TorchFunctionMode):
    """Records ops while the model runs; see the module docstring."""

    def __init__(self, names: dict[int, str], training: bool, sparsity, trace_through,
                 modules: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.names, self.training, self.sparsity = names, training, sparsity
        self.modules = modules or {}  # path -> module
        self.param_views: dict[int, torch.Tensor] = {}  # layout views of parameters, kept alive
        self.trace_through = tuple(trace_through)
        self.stack: list[tuple[str, bool]] = []
        self.opaque = 0
        self.fwd: list[Op] = []
        self.bwd: list[list[Op]] = []
        self.bases: Counter[str] = Counter()
        self.calls: Counter = Counter()  # id(module), or (what, id(memory layer)): calls
        self.layout: Counter[str] = Counter()
        self.constant: Counter[str] = Counter()
        # id(indices) -> (hash op name, its MemoryLayer, the indices kept alive for the id)
        self.hashes: dict[int, tuple[str, MemoryLayer, torch.Tensor]] = {}
        self.table_tokens: Counter[int] = Counter()  # id(tables) -> tokens looked up

    # ---- naming and emission -------------------------------------------------------------
    def _base(self, stem: str) -> str:
        self.bases[stem] += 1
        count = self.bases[stem]
        return stem if count == 1 else f"{stem}#{count}"

    def _gemm(self, base, layer, pass_, op, m, n, k, repeat=1, nm=None, desc="", part=""):
        return Op(f"{base}.{pass_}{part}", layer, "gemm", pass_, op, m=int(m), n=int(n),
                  k=int(k), repeat=int(repeat), sparsity=nm, sparse_operand=nm and "B",
                  description=desc)

    def _vector(self, base, layer, pass_, op, elements, desc="", part=""):
        return Op(f"{base}.{pass_}{part}", layer, "vector", pass_, op, elements=int(elements),
                  description=desc)

    def _record(self, fwd: list[Op], bwd: list[Op]) -> None:
        self.fwd.extend(fwd)
        if self.training and bwd:
            self.bwd.append(bwd)

    # ---- module hooks --------------------------------------------------------------------
    def pre_hook(self, mod, args, kwargs):
        path = self.names[id(mod)]
        # handled: True (lowered here as a whole), None (a leaf traced op by op), False
        handled = None if next(mod.children(), None) is None else False
        if not self.opaque:
            if isinstance(mod, _HANDLED):
                handled = True
                self.opaque += 1
            elif isinstance(mod, self.trace_through):
                pass
            elif isinstance(mod, MemoryLayer):
                handled = False  # lowered by its wrapped hash and lookup methods
            elif handled is None and next(mod.parameters(False), None) is not None:
                kind = type(mod).__name__
                hint = ("only Conv2d convolutions are lowered" if "Conv" in kind else
                        "an unknown leaf module with parameters; write it with nn.Linear/"
                        f"nn.Conv2d and torch ops, or pass trace_through=({kind},) if its "
                        "forward is plain torch ops")
                raise UnmappableOpError(f"cannot map module {path or '<root>'!r} ({kind}): {hint}")
        self.stack.append((path, handled))

    def post_hook(self, mod, args, kwargs, output):
        path, handled = self.stack.pop()
        if handled is not True:
            return
        try:
            self.calls[id(mod)] += 1
            n = self.calls[id(mod)]
            stem = path or "<root>"
            base = stem if n == 1 else f"{stem}#{n}"
            x = (_tensors(args) + _tensors(kwargs))[0]
            y = _tensors(output)[0]
            if isinstance(mod, nn.Linear):
                self._linear(base, path, mod, x, y)
            elif isinstance(mod, nn.Conv2d):
                self._conv2d(base, path, mod, x, y)
            elif isinstance(mod, nn.Embedding):
                e = y.numel()
                self._record([self._vector(base, path, "fwd", "embedding", e, "gather rows")],
                             [self._vector(base, path, "wgrad", "embedding", e,
                                           "scatter-add dY into the table")])
            else:
                self._norm(base, path, mod, x)
        finally:
            self.opaque -= 1

    def _linear(self, base, layer, mod, x, y) -> None:
        self._linear_ops(base, layer, mod, x.numel() // mod.in_features)

    def _linear_ops(self, base, layer, mod, t) -> None:
        meth, nm = self.sparsity(layer, mod)
        i, o = mod.in_features, mod.out_features
        fwd = [self._gemm(base, layer, "fwd", "linear", t, o, i, nm=nm if meth != "dense" else None,
                          desc="Y = X·Wᵀ")]
        bwd = [self._gemm(base, layer, "bgrad", "linear", t, i, o,
                          nm=nm if meth in ("bdwp", "transposable") else None, desc="dX = dY·W"),
               self._gemm(base, layer, "wgrad", "linear", o, i, t, desc="dW = dYᵀ·X")]
        if mod.bias is not None:
            bwd.append(self._vector(base, layer, "wgrad", "bias_grad", t * o, "db = Σ dY",
                                    ".bias"))
        self._record(fwd, bwd)

    def _conv2d(self, base, layer, mod, x, y) -> None:
        meth, nm = self.sparsity(layer, mod)
        g = mod.groups
        co, ci = mod.out_channels // g, mod.in_channels // g
        kk = mod.kernel_size[0] * mod.kernel_size[1]
        p = y.numel() // mod.out_channels
        fwd = [self._gemm(base, layer, "fwd", "conv2d", p, co, ci * kk, g,
                          nm if meth != "dense" else None, "Y = im2col(X)·Wᵀ")]
        bnm = nm if meth in ("bdwp", "transposable") else None
        if _same_stride1(mod.stride, mod.dilation, x, y, mod.in_channels, mod.out_channels):
            bwd = [self._gemm(base, layer, "bgrad", "conv2d", p, ci, co * kk, g, bnm,
                              "dX = im2col(dY)·flip(W) (transposed convolution, stride 1)")]
        else:
            bwd = [self._gemm(base, layer, "bgrad", "conv2d", p, ci * kk, co, g, bnm,
                              "dcols = dY·W (then col2im)")]
            span = [(k - 1) * d + 1 for k, d in zip(mod.kernel_size, mod.dilation,
                                                    strict=True)]
            if any(sp > st for sp, st in zip(span, mod.stride, strict=True)):  # overlap
                bwd.append(self._vector(base, layer, "bgrad", "col2im", p * ci * kk * g,
                                        "scatter-add dcols into dX", ".col2im"))
        bwd.append(self._gemm(base, layer, "wgrad", "conv2d", co, ci * kk, p, g,
                              desc="dW = dYᵀ·im2col(X)"))
        if mod.bias is not None:
            bwd.append(self._vector(base, layer, "wgrad", "bias_grad", y.numel(), "db = Σ dY",
                                    ".bias"))
        self._record(fwd, bwd)

    def _norm(self, base, layer, mod, x) -> None:
        op = {nn.LayerNorm: "layer_norm", nn.GroupNorm: "group_norm", nn.RMSNorm: "rms_norm"}
        name = op.get(type(mod), "batch_norm" if isinstance(mod, _NORMS[3]) else "norm")
        e = x.numel()
        bwd = [self._vector(base, layer, "bgrad", name, e, "dX")]
        if any(p.requires_grad for p in mod.parameters(False)):
            bwd.append(self._vector(base, layer, "wgrad", name, e, "dγ, dβ reductions"))
        self._record([self._vector(base, layer, "fwd", name, e)], bwd)

    # ---- memory layers (see "Shared hashes" in the module docstring) ----------------------
    def wrap(self, path: str, mod: MemoryLayer) -> None:
        """Route ``mod.hash`` and ``mod.lookup`` through the tracer until :meth:`unwrap`."""
        hash_, lookup = mod.hash, mod.lookup
        mod.hash = lambda x: self._hash(path, mod, hash_, x)
        mod.lookup = lambda indices, weights: self._lookup(path, mod, lookup, indices, weights)

    @staticmethod
    def unwrap(mod: MemoryLayer) -> None:
        for attr in ("hash", "lookup"):
            vars(mod).pop(attr, None)

    def _call_base(self, key, path: str) -> str:
        self.calls[key] += 1
        stem = path or "<root>"
        return stem if self.calls[key] == 1 else f"{stem}#{self.calls[key]}"

    def _lookup_op(self, base, layer, pass_, op, mod, tokens, desc, part="", rows=0, width=0,
                   table="", weight=None, hash_op=""):
        elements = rows * width if width else tokens * mod.in_features
        return Op(f"{base}.{pass_}{part}", layer, "lookup", pass_, op, elements=int(elements),
                  description=desc, tokens=int(tokens), chunks=mod.num_tables, tau=mod.tau,
                  width=width, table_rows=mod.num_tables << mod.tau, rows=int(rows),
                  table=table, weight=weight or mod.weight_kind, hash_op=hash_op)

    def _hash(self, path, mod, hash_, x):
        if self.opaque:
            return hash_(x)
        self.opaque += 1  # the hash's torch calls, and ours on its tensors, are not ops
        try:
            indices, weights = hash_(x)
            self._emit_hash(path, mod, x, indices)
        finally:
            self.opaque -= 1
        return indices, weights

    def _emit_hash(self, path, mod, x, indices) -> None:
        base = self._call_base(("hash", id(mod)), path)
        t = x.numel() // mod.in_features
        fwd = self._lookup_op(base, path, "fwd", "hash", mod, t, "sign bits, rows and p(z) of "
                              "K chunks of tau", ".hash")
        self.hashes[id(indices)] = (fwd.name, mod, indices)
        bwd = [self._lookup_op(base, path, "bgrad", "hash_grad", mod, t, "dX = (Σ dp)·dp/dz",
                               ".hash")] if x.requires_grad else []
        self._record([fwd], bwd)

    def _lookup(self, path, mod, lookup, indices, weights):
        if self.opaque:
            return lookup(indices, weights)
        self.opaque += 1
        try:
            y = lookup(indices, weights)
            self._emit_lookup(path, mod, indices, weights)
        finally:
            self.opaque -= 1
        return y

    def _emit_lookup(self, path, mod, indices, weights) -> None:
        hash_op, source, _ = self.hashes.get(id(indices), ("", mod, None))
        if (source.num_tables, source.tau) != (mod.num_tables, mod.tau):
            raise UnmappableOpError(
                f"memory layer {path!r} looks up rows hashed by {source.extra_repr()!r}: "
                f"{mod.num_tables} chunks of tau={mod.tau} expected")
        base = self._call_base(("lookup", id(mod)), path)
        t, h = indices.numel() // mod.num_tables, mod.out_features
        row = dict(rows=t * mod.num_tables, width=h, table=f"{path}.tables" if path else "tables",
                   weight=source.weight_kind, hash_op=hash_op)
        fwd = [self._lookup_op(base, path, "fwd", "gather", mod, t,
                               "Y = Σ_k p_k·T[row_k] (+ b), fp32 accumulation", **row)]
        bwd = [self._lookup_op(base, path, "bgrad", "lookup_grad", mod, t,
                               "dp_k = <dY, T[row_k]>", **row)] if weights.requires_grad else []
        bwd.append(self._lookup_op(base, path, "wgrad", "scatter", mod, t,
                                   "T[row_k] += p_k·dY (read-modify-write)", **row))
        if mod.bias is not None:
            bwd.append(self._vector(base, path, "wgrad", "bias_grad", t * h, "db = Σ dY", ".bias"))
        self.table_tokens[id(mod.tables)] += t
        self._record(fwd, bwd)

    # ---- torch functions -----------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.opaque:
            return func(*args, **kwargs)
        aten = isinstance(func, torch._ops.OpOverload)  # an exported graph's torch.ops.aten.*
        name = (func._opname if aten else getattr(func, "__name__", repr(func))).strip("_")
        ins = _tensors(args) + _tensors(kwargs)
        live = any(t.requires_grad for t in ins)
        layer = self.stack[-1][0] if self.stack else ""
        if live and name in _UNMAPPABLE:
            raise UnmappableOpError(
                f"cannot map torch.{name} called in module {layer or '<root>'!r}: no lowering "
                f"to GEMM or vector ops; {_UNMAPPABLE[name]}")
        if live and name == "einsum":  # refused before it runs
            shape = _einsum_shape(*_einsum_operands(args, kwargs))
            if isinstance(shape, str):
                raise UnmappableOpError(f"cannot map torch.einsum called in module "
                                        f"{layer or '<root>'!r}: {shape}")
        out = func(*args, **kwargs)
        outs = _tensors(out)
        if not live:
            self.constant[name] += 1
            return out
        if not outs or name in _LAYOUT or (aten and name in _ATEN_LAYOUT):
            self.layout[name] += 1
            if len(ins) == 1 and self._is_weight(ins[0]):
                self.param_views.update((id(t), t) for t in outs)
            return out
        # a parameter-free leaf (nn.ReLU, nn.MaxPool2d) names its ops by its own path
        leaf = self.stack and self.stack[-1][1] is None
        stem = _SHORT.get(name, name)
        base = self._base(layer if leaf else f"{layer}.{stem}" if layer else stem)
        if name in _MATMULS:
            ia, ib = _MATMULS[name]
            self._matmul(base, layer, "matmul", args[ia], args[ib])
        elif name == "linear":
            w = _arg(args, kwargs, 1, "weight")
            self._matmul(base, layer, "functional_linear", args[0], w, transpose_b=True)
        elif name == "conv2d":
            self._conv2d_fn(base, layer, args, kwargs, outs[0])
        elif name == "convolution":
            self._convolution(base, layer, args, kwargs, outs[0])
        elif name == "scaled_dot_product_attention":
            self._sdpa(base, layer, args[0], args[1], args[2])
        elif name == "einsum":
            a, b = _einsum_operands(args, kwargs)[1]
            self._product(base, layer, "einsum", a, b, *shape)
        elif name == "multi_head_attention_forward":
            self._mha(base, layer, func, args, kwargs)
        elif name == "embedding":
            w = next(t for t in ins if t.is_floating_point())
            self._record([self._vector(base, layer, "fwd", "embedding", outs[0].numel(),
                                       "gather rows")],
                         [self._vector(base, layer, "wgrad", "embedding", outs[0].numel(),
                                       "scatter-add dY into the table")]
                         if w.requires_grad else [])
        elif name in _FUNCTIONAL_NORMS:
            e = max(t.numel() for t in ins + outs)
            op = name.removeprefix("native_").partition("_legit")[0]  # aten.native_* as well
            bwd = [self._vector(base, layer, "bgrad", op, e, "dX")]
            if any(self._is_weight(t) for t in ins[1:]):
                bwd.append(self._vector(base, layer, "wgrad", op, e, "dγ, dβ reductions"))
            self._record([self._vector(base, layer, "fwd", op, e)], bwd)
        else:
            e = max(t.numel() for t in _tensors(args) + _tensors(kwargs) + outs)
            if name in ("max_pool2d", "avg_pool2d"):
                kh, kw = _pair(_arg(args, kwargs, 1, "kernel_size"))
                e = outs[0].numel() * kh * kw
            grad = self.training and any(t.requires_grad for t in outs)
            self._record([self._vector(base, layer, "fwd", name, e)],
                         [self._vector(base, layer, "bgrad", name, e)] if grad else [])
        return out

    def _is_weight(self, t: torch.Tensor) -> bool:
        """A parameter, or a layout view of one (``W.t()``)."""
        return isinstance(t, nn.Parameter) or id(t) in self.param_views

    def _matmul(self, base, layer, op, a, b, transpose_b=False) -> None:
        a_shape = (1,) + tuple(a.shape) if a.dim() == 1 else tuple(a.shape)
        b_shape = tuple(b.shape) + (1,) if b.dim() == 1 else tuple(b.shape)
        if transpose_b:
            b_shape = b_shape[:-2] + (b_shape[-1], b_shape[-2])
        m, k, n = a_shape[-2], a_shape[-1], b_shape[-1]
        ra, rb = math.prod(a_shape[:-2]), math.prod(b_shape[:-2])
        r = math.prod(torch.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
        if len(b_shape) == 2:  # (..., M, K) @ (K, N) is one GEMM over all rows
            m, ra, r = m * ra, 1, 1
        self._product(base, layer, op, a, b, m, n, k, r, ra, rb)

    def _product(self, base, layer, op, a, b, m, n, k, r, ra, rb) -> None:
        """``C = A·B``, ``repeat`` r, and the gradients of the operands that need one (A
        repeated ra times, B rb times; a broadcast operand's gradient sums over the batch)."""
        fwd = [self._gemm(base, layer, "fwd", op, m, n, k, r, desc="C = A·B")]
        bwd = []
        for t, part in ((a, "A"), (b, "B")):
            if not t.requires_grad:
                continue
            pass_ = "wgrad" if self._is_weight(t) else "bgrad"
            if part == "A":
                g = self._gemm(base, layer, pass_, op, m, k, n * (r // ra), ra,
                               desc="dA = dC·Bᵀ", part=".dA")
            else:
                g = self._gemm(base, layer, pass_, op, k, n, m * (r // rb), rb,
                               desc="dB = Aᵀ·dC", part=".dB")
            bwd.append(g)
        self._record(fwd, bwd)

    def _conv2d_fn(self, base, layer, args, kwargs, y) -> None:
        w = _arg(args, kwargs, 1, "weight")
        g = _arg(args, kwargs, 6, "groups", 1)
        stride = _pair(_arg(args, kwargs, 3, "stride", 1))
        dilation = _pair(_arg(args, kwargs, 5, "dilation", 1))
        co, ci, kk = w.shape[0] // g, w.shape[1], w.shape[2] * w.shape[3]
        p = y.numel() // w.shape[0]
        if _same_stride1(stride, dilation, args[0], y, ci * g, co * g):
            bgrad = self._gemm(base, layer, "bgrad", "functional_conv2d", p, ci, co * kk, g,
                               desc="dX = im2col(dY)·flip(W) (transposed convolution, stride 1)")
        else:
            bgrad = self._gemm(base, layer, "bgrad", "functional_conv2d", p, ci * kk, co, g,
                               desc="dcols = dY·W (then col2im)")
        self._record(
            [self._gemm(base, layer, "fwd", "functional_conv2d", p, co, ci * kk, g,
                        desc="Y = im2col(X)·Wᵀ")],
            [bgrad,
             self._gemm(base, layer, "wgrad", "functional_conv2d", co, ci * kk, p, g,
                        desc="dW = dYᵀ·im2col(X)")])

    def _sdpa(self, base, layer, q, k, v) -> None:
        self._attention(base, layer, math.prod(q.shape[:-2]), q.shape[-2], k.shape[-2],
                        q.shape[-1], v.shape[-1])

    def _attention(self, base, layer, r, lq, s, e, ev, dropout=False) -> None:
        """Softmax attention of ``r`` (batch x heads) problems: ``lq`` queries over ``s`` keys,
        ``e`` elements per query and key, ``ev`` per value."""
        scores = r * lq * s

        def g(pass_, op, m, n, kk, desc, part=""):
            return self._gemm(base, layer, pass_, op, m, n, kk, r, desc=desc, part=part)

        fwd = [g("fwd", "attn_qk", lq, s, e, "S = Q·Kᵀ", ".qk"),
               self._vector(base, layer, "fwd", "softmax", scores, "P = softmax(S·scale + mask)",
                            ".softmax"),
               g("fwd", "attn_pv", lq, ev, s, "O = P·V", ".pv")]
        bwd = [g("bgrad", "attn_dp", lq, s, ev, "dP = dO·Vᵀ", ".dp"),
               g("bgrad", "attn_dv", s, ev, lq, "dV = Pᵀ·dO", ".dv"),
               self._vector(base, layer, "bgrad", "softmax", scores, "dS", ".softmax"),
               g("bgrad", "attn_dq", lq, e, s, "dQ = dS·K", ".dq"),
               g("bgrad", "attn_dk", s, e, lq, "dK = dSᵀ·Q", ".dk")]
        if dropout:
            fwd.insert(2, self._vector(base, layer, "fwd", "dropout", scores, "P = dropout(P)",
                                       ".dropout"))
            bwd.insert(2, self._vector(base, layer, "bgrad", "dropout", scores, "dP·mask",
                                       ".dropout"))
        self._record(fwd, bwd)

    def _convolution(self, base, layer, args, kwargs, y) -> None:
        """``aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding,
        groups)`` (a decomposed exported program's): a 2-D forward one is ``conv2d``."""
        w = _arg(args, kwargs, 1, "weight")
        if w.dim() != 4 or _arg(args, kwargs, 6, "transposed", False):
            kind = "transposed" if w.dim() == 4 else f"{w.dim() - 2}-D"
            raise UnmappableOpError(
                f"cannot map a {kind} convolution (aten.convolution) in module "
                f"{layer or '<root>'!r}: only forward 2-D convolutions are lowered; "
                f"{_UNMAPPABLE['conv_transpose2d' if w.dim() == 4 else 'conv3d']}")
        keys = ("input", "weight", "bias", "stride", "padding", "dilation")
        conv = [_arg(args, kwargs, i, key) for i, key in enumerate(keys)]
        self._conv2d_fn(base, layer, conv + [_arg(args, kwargs, 8, "groups", 1)], {}, y)

    def _mha(self, base, layer, func, args, kwargs) -> None:
        """``F.multi_head_attention_forward``: see the module docstring."""
        import inspect

        a = inspect.signature(func).bind(*args, **kwargs)
        a.apply_defaults()
        a = a.arguments
        q, k, v, heads = a["query"], a["key"], a["value"], a["num_heads"]
        batched = q.dim() == 3
        b = q.shape[1] if batched else 1
        lq, s, e = q.shape[0], k.shape[0], q.shape[-1]
        if a["static_k"] is not None or a["static_v"] is not None:
            raise UnmappableOpError(f"cannot map multi_head_attention_forward in module "
                                    f"{layer or '<root>'!r} with static_k/static_v; pass the "
                                    f"cached keys and values as key and value")
        proj = self._base(f"{layer}.in_proj" if layer else "in_proj")
        if a["use_separate_proj_weight"]:
            ws = [(".q", q, a["q_proj_weight"], e), (".k", k, a["k_proj_weight"], e),
                  (".v", v, a["v_proj_weight"], e)]
        elif q is k and k is v:
            ws = [("", q, a["in_proj_weight"], 3 * e)]
        elif k is v:
            ws = [(".q", q, a["in_proj_weight"], e), (".kv", k, a["in_proj_weight"], 2 * e)]
        else:
            ws = [(".q", q, a["in_proj_weight"], e), (".k", k, a["in_proj_weight"], e),
                  (".v", v, a["in_proj_weight"], e)]
        for part, x, w, out in ws:
            t, i = x.numel() // x.shape[-1], x.shape[-1]
            fwd = [self._gemm(proj, layer, "fwd", "mha_in_proj", t, out, i,
                              desc="Y = X·W_inᵀ", part=part)]
            bwd = [self._gemm(proj, layer, "bgrad", "mha_in_proj", t, i, out, desc="dX = dY·W_in",
                              part=part)] if x.requires_grad else []
            if w.requires_grad:
                bwd.append(self._gemm(proj, layer, "wgrad", "mha_in_proj", out, i, t,
                                      desc="dW_in = dYᵀ·X", part=part))
            if a["in_proj_bias"] is not None and a["in_proj_bias"].requires_grad:
                bwd.append(self._vector(proj, layer, "wgrad", "bias_grad", t * out, "db = Σ dY",
                                        f"{part}.bias"))
            self._record(fwd, bwd)
        s += (a["bias_k"] is not None) + bool(a["add_zero_attn"])
        dropout = a["dropout_p"] > 0 and a["training"] and self.training
        self._attention(base, layer, b * heads, lq, s, e // heads, e // heads, dropout)
        if a["need_weights"] and a["average_attn_weights"]:
            n = b * heads * lq * s
            self._record([self._vector(base, layer, "fwd", "mean", n, "average the heads' "
                                       "attention weights", ".weights")],
                         [self._vector(base, layer, "bgrad", "mean", n, "", ".weights")])
        mod = self.modules.get(layer)
        w = a["out_proj_weight"]
        out = getattr(mod, "out_proj", None) if isinstance(mod, nn.MultiheadAttention) else None
        if out is not None and out.weight is w:
            path = f"{layer}.out_proj" if layer else "out_proj"
            self.calls[id(out)] += 1
            n = self.calls[id(out)]
            self._linear_ops(path if n == 1 else f"{path}#{n}", path, out, lq * b)
        else:
            self._product(self._base(f"{layer}.out_proj" if layer else "out_proj"), layer,
                          "mha_out_proj", q, w, lq * b, w.shape[0], w.shape[1], 1, 1, 1)


def _table_update(pname: str, mod: MemoryLayer, tokens: int) -> Op:
    rows = expected_rows(tokens, mod.num_tables, mod.tau)
    return Op(f"{pname}.update", pname.rpartition(".")[0], "lookup", "update", "table_update",
              elements=rows * mod.out_features, tokens=tokens, chunks=mod.num_tables,
              tau=mod.tau, width=mod.out_features, table_rows=mod.num_tables << mod.tau,
              rows=rows, table=pname, weight=mod.weight_kind,
              description="sparse step of the touched rows only (FP32 master rows, fp16 copy); "
                          "rows: expected distinct rows for uniform hashes")


def extract(
    model: nn.Module,
    example_input,
    *,
    training: bool = True,
    method: str | None = "dense",
    pattern=None,
    skip: Iterable[str] = (),
    name: str | None = None,
    trace_through: Iterable[type] = (),
) -> Workload:
    """The workload of one training step (or inference pass) of ``model`` on one batch.

    Parameters
    ----------
    model : nn.Module
        Any model, on any device; on ``"meta"`` no arithmetic is done.
    example_input : torch.Tensor or tuple of torch.Tensor
        One batch (``model(*example_input)`` if a tuple).
    training : bool, default True
        False: forward ops only (model in eval mode), no loss, backward or updates: an
        inference pass (a decode step is a model with a KV cache, e.g.
        ``get_model("memoryformer_tiny", seq_len=1, context=C)``).
    method : {"dense", "srste", "bdwp", "transposable"} or None, default "dense"
        Applied to every ``nn.Linear``/``nn.Conv2d`` not in ``skip``. None: each layer as
        it is (``SparseLinear``/``SparseConv2d`` with their own method and pattern).
    pattern : str or tuple or None
        ``"N:M"``; required for a sparse method.
    skip : iterable of str
        Layer names or ``fnmatch`` globs kept dense; each must match a layer.
    name : str or None
        Model name of the workload; default the class name.
    trace_through : iterable of type
        Leaf module types with parameters to trace through their torch calls instead of
        rejecting (their weight GEMMs are then not N:M tagged).

    Returns
    -------
    Workload
        MemoryFormer memory layers give ``lookup`` ops (see the module docstring); ``method``
        and ``pattern`` do not apply to them.

    Raises
    ------
    ValueError
        A bad method or pattern, a ``skip`` entry that matches no layer, or a layer that
        does not fit the pattern (grouped conv, or a channel count not divisible by M).
    UnmappableOpError
        A module or torch call with no lowering (e.g. ``Conv3d``, ``einsum``, an unknown
        leaf module with parameters); the message names the module path and the type.
    """
    if method is not None:
        check_method(method)
    nm = None
    if method not in (None, "dense"):
        if pattern is None:
            raise ValueError(f"extract: method {method!r} needs a pattern such as '2:8'")
        nm = parse_pattern(pattern)
    skip = tuple(skip)
    layer_names = [n for n, _ in sparsifiable_layers(model)]
    for s in skip:
        if not any(_skipped(n, (s,)) for n in layer_names):
            raise ValueError(f"extract: skip entry {s!r} matches no Linear/Conv2d layer; "
                             f"layers are {layer_names}")

    def sparsity(path: str, mod: nn.Module):
        if method is None:
            if isinstance(mod, SparseLinear | SparseConv2d) and mod.method != "dense":
                return mod.method, (mod.n, mod.m)
            return "dense", None
        if method == "dense" or _skipped(path, skip):
            return "dense", None
        why = _nm_obstacle(mod, method, nm[1])
        if why:
            raise ValueError(f"extract: layer {path!r}: {why} (pattern {pattern}, method "
                             f"{method!r}); add {path!r} to skip")
        return method, nm

    names = {id(mod): path for path, mod in model.named_modules()}
    tracer = _Tracer(names, training, sparsity, trace_through, dict(model.named_modules()))
    handles = []
    modules = {id(m): m for m in model.modules()}.values()
    memory = [m for m in modules if isinstance(m, MemoryLayer)]
    for mod in modules:
        handles.append(mod.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True))
        handles.append(mod.register_forward_hook(tracer.post_hook, with_kwargs=True))
    for mod in memory:
        tracer.wrap(names[id(mod)], mod)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    # float inputs and every parameter require grad while tracing, so that everything
    # computed from the batch or the weights is live (frozen parameters included)
    args = tuple(a.detach().requires_grad_(True) if torch.is_tensor(a) and a.is_floating_point()
                 else a for a in args)
    trainable = [(pname, p, p.requires_grad) for pname, p in model.named_parameters()]
    was_training = model.training
    try:
        model.train(training)
        for _, p, _ in trainable:
            p.requires_grad_(True)
        with torch.enable_grad(), tracer:
            output = model(*args)
    finally:
        model.train(was_training)
        for _, p, flag in trainable:
            p.requires_grad_(flag)
        for h in handles:
            h.remove()
        for mod in memory:
            tracer.unwrap(mod)

    ops = list(tracer.fwd)
    if training:
        e = sum(t.numel() for t in _tensors(output))
        desc = "loss over the output (softmax cross-entropy assumed)"
        ops.append(Op("loss.fwd", "(loss)", "vector", "fwd", "loss", elements=e, description=desc))
        ops.append(Op("loss.bgrad", "(loss)", "vector", "bgrad", "loss", elements=e,
                      description="dLoss/dOutput"))
        ops.extend(op for group in reversed(tracer.bwd) for op in group)
        tables = {id(mod.tables): mod for mod in memory}
        for pname, p, flag in trainable:
            if flag and id(p) in tables:
                ops.append(_table_update(pname, tables[id(p)], tracer.table_tokens[id(p)]))
            elif flag:
                ops.append(Op(f"{pname}.update", pname.rpartition(".")[0], "update", "update",
                              "sgd_momentum", elements=p.numel(),
                              description="FP32 master-weight step and fp16 copy"))
    return Workload(
        ops=tuple(ops),
        model=name or type(model).__name__,
        method=method,
        pattern=None if nm is None else "{}:{}".format(*nm),
        training=training,
        skip=skip,
        layout_calls=tuple(sorted(tracer.layout.items())),
        constant_calls=tuple(sorted(tracer.constant.items())),
    )
