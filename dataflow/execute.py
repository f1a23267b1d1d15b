"""A whole training step with values: every op of a model's step on hwsim's functional units.

:func:`run_step` runs one training step of a PyTorch model (forward, the loss, backward, the
SGD update) with every arithmetic op on the machine's functional models, and returns the loss,
every gradient and every updated weight, which :func:`compare` sets beside PyTorch's autograd
(:func:`reference_step`). It runs the model eagerly under a
``torch.utils._python_dispatch.TorchDispatchMode``, which sees every ATen op of the forward
pass and of autograd's backward pass, and sends each to what executes it on the machine:

==============================  ==============================================================
ATen ops                        on the machine
==============================  ==============================================================
``mm``, ``addmm``, ``bmm``,     GEMMs on the array: the op's program from
``convolution(_backward)``,     :func:`dataflow.lower.gemm.compile_gemm` with the mapping
the SDPA op and its backward    :func:`dataflow.search` picks, run by :func:`hwsim.run` in
                                functional mode (fp16 operands rounded to nearest even, fp32
                                sums in the array's order, OS drain adds); a GEMM whose B is an
                                N:M-masked weight runs on the sparse path with the compressed
                                operand (:func:`dataflow.sparse_operands`)
                                when it is N:M along K, else dense. Convolutions are
                                im2col GEMMs with ``K`` ordered ``(kh, kw, C_in)``; their data
                                gradient is the column-gradient GEMM and a ``col2im``
                                scatter-add, or the flipped-kernel transposed convolution for a
                                stride-1 "same" convolution, as :mod:`dataflow.workload` lowers
                                them. Biases are added to the GEMM's fp32 result.
norms, softmax, log-softmax,    the vector engine's kernels (:mod:`hwsim.units.vector_kernels`)
the loss, GELU, ReLU, pooling,
sums, ``col2im``, embedding
gradient
``add``, ``mul``, ``div``,      elementwise IEEE fp32 operations: PyTorch's CPU kernels round
``neg``, ``masked_fill``,       each element's one operation to nearest even, as the engine's
``abs``                         ``fp32_add``/``fp32_mul``/``fp32_div`` do, so they run as they
                                are (``add`` with ``alpha != 1`` is refused)
views, copies, ``cat``,         data movement and selection (DMA, SORE's masks, the host's
masks, indices, ``topk``,       constants): exact, run as they are
max-pool's argmax, embedding
gather, ``cos``/``sin``/``pow``
on constant tables
the optimizer step              UPDATE's values (:func:`hwsim.units.vector.sgd_update`)
==============================  ==============================================================

Any other op raises :class:`NotOnMachineError` naming it. Tensors between ops are fp32 (GEMM
operands are rounded to fp16 where the array reads them; the weights the array reads are the
fp16 copy UPDATE writes). :attr:`StepResult.ops` counts what ran where, and the GEMM MACs of
each pass, which tests set beside the compiler's workload (:func:`dataflow.extract`).

The model must be in training mode and its loss is softmax cross-entropy over the last dim of
its output (``F.cross_entropy``, mean reduction). The machine's numerics make the step differ
from fp32 autograd by about fp16's unit roundoff (2^-11) relative, normwise; :func:`compare`
measures it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from hwsim.config import AcceleratorConfig, load_config
from hwsim.units import vector_kernels as vk
from hwsim.units.vector import SGD_MOMENTUM_FIRST, sgd_update

__all__ = ["GEMM_NUMERICS", "NotOnMachineError", "StepResult", "check_step", "compare",
           "reference_step", "run_step"]

GEMM_NUMERICS = ("array", "fp16", "fp32")
"""How :func:`run_step` computes its GEMMs: ``"array"`` the compiled programs on hwsim's array
(the machine); ``"fp16"`` fp16-rounded operands with exact products and sums, rounded once to
fp32 (what any fp16-operand machine could at best compute); ``"fp32"`` fp32 operands, exact
sums. The last two isolate what the array's operand rounding and its fp32 sums contribute to
the step's error; every other op is the machine's in all three."""

aten = torch.ops.aten


class NotOnMachineError(NotImplementedError):
    """An op of the step that no unit of the machine executes."""


@dataclass
class StepResult:
    """One training step's values: ``loss``, ``grads`` and updated ``weights`` by parameter
    name (float32 arrays), and ``ops``: counts of what ran where, GEMM MACs per pass
    (``macs_fwd``, ``macs_bwd``; ``sparse_macs`` the dense-equivalent MACs of sparse GEMMs),
    ``array_cycles`` (the GEMM programs' cycles, run one after another)."""

    loss: float
    grads: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    ops: Counter = field(default_factory=Counter)


_EXACT = {
    aten.detach.default, aten.view.default, aten._unsafe_view.default, aten.t.default,
    aten.transpose.int, aten.permute.default, aten.expand.default, aten.clone.default,
    aten.cat.default, aten.slice.Tensor, aten.select.int, aten.split.Tensor,
    aten.split_with_sizes.default, aten.unsqueeze.default, aten.squeeze.dim,
    aten.empty.memory_format,
    aten.new_empty.default, aten.zeros.default, aten.ones.default, aten.ones_like.default,
    aten.zeros_like.default, aten.new_zeros.default, aten.arange.default, aten.arange.start,
    aten.arange.start_step, aten.triu.default, aten.copy_.default, aten._to_copy.default,
    aten.select_backward.default, aten.slice_backward.default, aten.embedding.default,
    aten.max_pool2d_with_indices.default, aten.abs.default, aten.scatter_.value,
    aten.topk.default, aten.view.dtype, aten.lift_fresh.default, aten.alias.default,
    aten.fill_.Scalar, aten.zero_.default, aten.stack.default, aten.unbind.int,
    aten.expand_copy.default, aten.unsafe_split.Tensor, aten.flatten.using_ints,
    aten.reshape.default, aten.contiguous.default, aten.masked_fill.Scalar, aten.neg.default,
    aten.mul.Tensor, aten.div.Tensor, aten.sub.Tensor, aten.add.Tensor, aten.add_.Tensor,
    aten.mul_.Tensor, aten.where.self, aten.div.Scalar, aten.mul.Scalar, aten.add.Scalar,
    aten.sub.Scalar, aten.rsub.Scalar,
}
"""Data movement, selection and single-rounding elementwise ops: exact or bit-identical."""

_HOST = {aten.cos.default, aten.sin.default, aten.pow.Scalar, aten.pow.Tensor_Scalar}
"""Transcendentals allowed on constant tables only (inputs that do not require grad)."""


def _np(t) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32)))


def _pair(v) -> tuple[int, int]:
    v = [v] if isinstance(v, int) else list(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _im2col(x: np.ndarray, kernel, stride, padding, dilation) -> tuple[np.ndarray, int, int]:
    """``cols[(n, oh, ow), (kh, kw, c)]`` of ``x[n, c, h, w]`` (zero padding)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), np.float32)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    cols = np.empty((n, oh, ow, kh, kw, c), np.float32)
    for i in range(kh):
        for j in range(kw):
            hs, ws = i * dh, j * dw
            patch = xp[:, :, hs:hs + sh * (oh - 1) + 1:sh, ws:ws + sw * (ow - 1) + 1:sw]
            cols[:, :, :, i, j, :] = patch.transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, kh * kw * c), oh, ow


class MachineMode(TorchDispatchMode):
    """The dispatch mode of :func:`run_step` (module docstring)."""

    def __init__(self, config: AcceleratorConfig, pattern: tuple[int, int] | None,
                 gemm: str = "array"):
        super().__init__()
        if gemm not in GEMM_NUMERICS:
            raise ValueError(f"gemm must be one of {GEMM_NUMERICS}, not {gemm!r}")
        self.numerics = gemm
        self._attn: dict = {}
        self.config = config
        self.lanes = config.vector.lanes
        self.pattern = pattern
        self.ops: Counter = Counter()
        self.phase = "fwd"
        self._nm_ids: set[int] = set()
        self._keep: list = []  # masked weights stay alive while their ids are remembered
        self._programs: dict = {}

    # --- the array -------------------------------------------------------------------------
    def gemm(self, a: np.ndarray, b: np.ndarray, sparse: bool = False) -> np.ndarray:
        """``a @ b`` on the array (fp16 operands, fp32 result), sparse when ``sparse``."""
        from hwsim import run

        from .lower.gemm import compile_gemm, sparse_operands
        from .mapping import OpShape, search

        m, k = a.shape
        n = b.shape[1]
        nm = self.pattern if sparse else None
        a16 = np.asarray(a, np.float32).astype(np.float16)
        b16 = np.asarray(b, np.float32).astype(np.float16)
        if nm is not None and (k % nm[1] or (b16.reshape(k // nm[1], nm[1], n) != 0)
                               .sum(axis=1).max() > nm[0]):
            nm = None  # a masked weight not N:M along this GEMM's K (SR-STE's data gradient)
        macs = m * n * k
        self.ops["gemms"] += 1
        self.ops[f"macs_{self.phase}"] += macs
        if nm is not None:
            self.ops["sparse_macs"] += macs
        if self.numerics != "array":
            ops = (a16, b16) if self.numerics == "fp16" else (a, b)
            return (np.asarray(ops[0], np.float64) @ np.asarray(ops[1], np.float64)).astype(
                np.float32)
        key = (m, n, k, nm)
        if key not in self._programs:
            mp = search(OpShape(m, n, k, nm), self.config)
            self._programs[key] = (compile_gemm(m, n, k, self.config, dataflow=mp.dataflow,
                                                sparsity=nm, mapping=mp), mp.dataflow)
        prog, dataflow = self._programs[key]
        if nm is None:
            inputs = {"A": a16, "B": b16}
        else:
            ws = self.config.array.rows if dataflow == "ws" else None
            inputs = sparse_operands(a16, b16, *nm, ws_rows=ws)
        res = run(prog, self.config, "functional", inputs=inputs)
        self.ops["array_cycles"] += int(res.stats.cycles)
        return np.asarray(res.outputs["C"], np.float32).reshape(m, n)

    def _is_nm(self, t) -> bool:
        return self.pattern is not None and id(t) in self._nm_ids

    def matmul(self, a_t, b_t) -> np.ndarray:
        """``A @ B`` of two 2-D tensors; the masked weight is the array's B (transposing the
        GEMM when it is the left operand)."""
        a, b = _np(a_t), _np(b_t)
        if self._is_nm(a_t) and not self._is_nm(b_t):
            return self.gemm(b.T, a.T, sparse=True).T
        return self.gemm(a, b, sparse=self._is_nm(b_t))

    def conv(self, x, w, stride, padding, dilation, groups, sparse) -> np.ndarray:
        """``conv2d(x, w)`` as im2col GEMMs (one per group), fp32 result ``(N, C_out, H, W)``."""
        n = x.shape[0]
        co, cig, kh, kw = w.shape
        cog = co // groups
        outs = []
        for g in range(groups):
            cols, oh, ow = _im2col(x[:, g * cig:(g + 1) * cig], (kh, kw), stride, padding,
                                   dilation)
            wr = w[g * cog:(g + 1) * cog].transpose(2, 3, 1, 0).reshape(kh * kw * cig, cog)
            outs.append(self.gemm(cols, wr, sparse=sparse))
        y = np.concatenate(outs, axis=1)
        return y.reshape(n, oh, ow, co).transpose(0, 3, 1, 2)

    # --- dispatch --------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _HANDLERS.get(func)
        if handler is not None:
            self.ops[f"vector:{func.__name__}" if func not in _GEMM_OPS else
                     f"array:{func.__name__}"] += 1
            return handler(self, *args, **kwargs)
        if func in _EXACT:
            if func is aten.add.Tensor and kwargs.get("alpha", 1) != 1:
                raise NotOnMachineError("aten.add with alpha != 1 (a fused multiply-add)")
            out = func(*args, **kwargs)
            if (func is aten.mul.Tensor and len(args) == 2 and isinstance(args[1], torch.Tensor)
                    and args[1].dtype == torch.bool and args[0].is_floating_point()):
                self._mark(out)  # W ⊙ M: an N:M-masked weight (SORE's PRUNE)
            elif func in _VIEWS and isinstance(args[0], torch.Tensor) and self._is_nm(args[0]):
                self._mark(out)
            self.ops["exact"] += 1
            return out
        if func in _HOST:
            live = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
            if live:
                raise NotOnMachineError(f"{func} on a tensor that requires grad")
            self.ops[f"host:{func.__name__}"] += 1
            return func(*args, **kwargs)
        raise NotOnMachineError(f"{func} has no unit on the machine (dataflow.execute lists what "
                           f"runs where)")

    def _mark(self, t) -> None:
        self._nm_ids.add(id(t))
        self._keep.append(t)


_VIEWS = {aten.t.default, aten.transpose.int, aten.permute.default, aten.view.default,
          aten._unsafe_view.default, aten.detach.default, aten.expand.default}


# --- handlers ---------------------------------------------------------------------------------

def _mm(mode, a, b):
    return _t(mode.matmul(a, b))


def _addmm(mode, bias, a, b, *, beta=1, alpha=1):
    if beta != 1 or alpha != 1:
        raise NotOnMachineError("aten.addmm with beta or alpha != 1")
    return _t(mode.matmul(a, b) + _np(bias))


def _bmm(mode, a, b):
    sparse = mode._is_nm(b)
    an, bn = _np(a), _np(b)
    return _t(np.stack([mode.gemm(an[i], bn[i], sparse=sparse) for i in range(an.shape[0])]))


def _convolution(mode, x, w, bias, stride, padding, dilation, transposed, output_padding,
                 groups):
    if transposed:
        raise NotOnMachineError("aten.convolution with transposed=True")
    y = mode.conv(_np(x), _np(w), _pair(stride), _pair(padding), _pair(dilation), groups,
                  mode._is_nm(w))
    if bias is not None:
        y = y + _np(bias).reshape(1, -1, 1, 1)
    return _t(y)


def _convolution_backward(mode, dy, x, w, bias_sizes, stride, padding, dilation, transposed,
                          output_padding, groups, output_mask):
    if transposed:
        raise NotOnMachineError("aten.convolution_backward with transposed=True")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    dyn, xn, wn = _np(dy), _np(x), _np(w)
    n, co, oh, ow = dyn.shape
    _, cig, kh, kw = wn.shape
    cog = co // groups
    ci = cig * groups
    dx = dw = db = None
    if output_mask[0]:
        same = (stride == (1, 1) and dilation == (1, 1) and (oh, ow) == tuple(xn.shape[2:]))
        if same:
            # transposed convolution: dX = conv(dY, W flipped, channels swapped)
            wf = np.flip(wn, (2, 3))
            parts = []
            for g in range(groups):
                wg = wf[g * cog:(g + 1) * cog].transpose(1, 0, 2, 3)  # (cig, cog, kh, kw)
                parts.append(mode.conv(dyn[:, g * cog:(g + 1) * cog], wg, (1, 1),
                                       (kh - 1 - padding[0], kw - 1 - padding[1]), (1, 1), 1,
                                       mode._is_nm(w)))
            dx = np.concatenate(parts, axis=1)
        else:
            dxs = []
            for g in range(groups):
                dy2 = dyn[:, g * cog:(g + 1) * cog].transpose(0, 2, 3, 1).reshape(-1, cog)
                wr = wn[g * cog:(g + 1) * cog].transpose(2, 3, 1, 0).reshape(kh * kw * cig, cog)
                dcols = mode.gemm(dy2, wr.T, sparse=mode._is_nm(w))
                dxs.append(vk.col2im(dcols, (n, cig) + tuple(xn.shape[2:]), (kh, kw), stride,
                                     padding, dilation))
                mode.ops["vector:col2im"] += 1
            dx = np.concatenate(dxs, axis=1)
    if output_mask[1]:
        parts = []
        for g in range(groups):
            cols, _, _ = _im2col(xn[:, g * cig:(g + 1) * cig], (kh, kw), stride, padding,
                                 dilation)
            dy2 = dyn[:, g * cog:(g + 1) * cog].transpose(0, 2, 3, 1).reshape(-1, cog)
            dwr = mode.gemm(dy2.T, cols)  # (cog, kh·kw·cig)
            parts.append(dwr.reshape(cog, kh, kw, cig).transpose(0, 3, 1, 2))
        dw = np.concatenate(parts, axis=0)
    if output_mask[2]:
        db = vk.lane_sum(dyn.transpose(1, 0, 2, 3).reshape(co, -1), mode.lanes)
        mode.ops["vector:bias_grad"] += 1
    del ci
    return tuple(None if v is None else _t(v) for v in (dx, dw, db))


def _native_batch_norm(mode, x, w, b, rm, rv, training, momentum, eps):
    if not training:
        raise NotOnMachineError("batch norm in eval mode (the step trains)")
    y, mean, rstd, nrm, nrv = vk.batch_norm(_np(x), None if w is None else _np(w),
                                            None if b is None else _np(b),
                                            None if rm is None else _np(rm),
                                            None if rv is None else _np(rv), momentum, eps,
                                            mode.lanes)
    if rm is not None:
        rm.copy_(_t(nrm))
        rv.copy_(_t(nrv))
    return _t(y), _t(mean), _t(rstd)


def _native_batch_norm_backward(mode, dy, x, w, rm, rv, save_mean, save_rstd, train, eps,
                                output_mask):
    dx, dg, db = vk.batch_norm_backward(_np(dy), _np(x), None if w is None else _np(w),
                                        _np(save_mean), _np(save_rstd), mode.lanes)
    return tuple(_t(v) if m else None for v, m in zip((dx, dg, db), output_mask, strict=True))


def _native_layer_norm(mode, x, normalized_shape, w, b, eps):
    n = math.prod(normalized_shape)
    y, mean, rstd = vk.layer_norm(_np(x), n, None if w is None else _np(w),
                                  None if b is None else _np(b), eps, mode.lanes)
    lead = tuple(x.shape[:x.dim() - len(normalized_shape)])
    shp = lead + (1,) * len(normalized_shape)
    return _t(y), _t(mean.reshape(shp)), _t(rstd.reshape(shp))


def _native_layer_norm_backward(mode, dy, x, normalized_shape, mean, rstd, w, b, output_mask):
    n = math.prod(normalized_shape)
    dx, dg, db = vk.layer_norm_backward(_np(dy), _np(x), _np(mean), _np(rstd),
                                        None if w is None else _np(w), n, mode.lanes)
    wshape = tuple(normalized_shape)
    outs = (dx.reshape(tuple(x.shape)), dg.reshape(wshape), db.reshape(wshape))
    return tuple(_t(v) if m else None for v, m in zip(outs, output_mask, strict=True))


def _softmax(mode, x, dim, half_to_float):
    return _t(vk.softmax(_np(x), dim, mode.lanes))


def _softmax_backward(mode, dy, y, dim, input_dtype):
    return _t(vk.softmax_backward(_np(dy), _np(y), dim, mode.lanes))


def _log_softmax(mode, x, dim, half_to_float):
    return _t(vk.log_softmax(_np(x), dim, mode.lanes))


def _log_softmax_backward(mode, dy, y, dim, input_dtype):
    return _t(vk.log_softmax_backward(_np(dy), _np(y), dim, mode.lanes))


def _nll_loss_forward(mode, logp, target, weight, reduction, ignore_index):
    if weight is not None or reduction != 1 or logp.dim() != 2:
        raise NotOnMachineError("nll_loss other than unweighted, mean-reduced, over "
                                "(rows, classes)")
    t = target.numpy()
    if (t == ignore_index).any():
        raise NotOnMachineError("nll_loss with ignored targets")
    loss = vk.nll_loss(_np(logp), t, mode.lanes)
    return torch.tensor(loss, dtype=torch.float32), torch.tensor(float(logp.shape[0]))


def _nll_loss_backward(mode, grad, logp, target, weight, reduction, ignore_index, total):
    return _t(vk.nll_loss_backward(float(grad), tuple(logp.shape), target.numpy()))


def _gelu(mode, x, approximate="none"):
    if approximate != "none":
        raise NotOnMachineError("GELU's tanh approximation (the engine computes the erf form)")
    return _t(vk.gelu(_np(x)))


def _gelu_backward(mode, dy, x, approximate="none"):
    if approximate != "none":
        raise NotOnMachineError("GELU's tanh approximation (the engine computes the erf form)")
    return _t(vk.gelu_backward(_np(dy), _np(x)))


def _relu(mode, x):
    xn = _np(x)
    return _t(np.where(xn > 0, xn, np.float32(0)))


def _threshold_backward(mode, dy, x, threshold):
    return _t(np.where(_np(x) <= threshold, np.float32(0), _np(dy)))


def _max_pool_backward(mode, dy, x, kernel, stride, padding, dilation, ceil_mode, indices):
    n, c = x.shape[:2]
    hw = x.shape[2] * x.shape[3]
    idx = indices.numpy().reshape(n * c, -1) + (np.arange(n * c) * hw)[:, None]
    out = vk.scatter_add(n * c * hw, idx, _np(dy).reshape(n * c, -1))
    return _t(out.reshape(tuple(x.shape)))


def _avg_pool_args(kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    kernel = _pair(kernel)
    stride = kernel if not stride else _pair(stride)
    padding = _pair(padding)
    if ceil_mode or divisor_override or (not count_include_pad and any(padding)):
        raise NotOnMachineError("avg_pool2d with ceil_mode, divisor_override or padding left "
                                "out of the count")
    return kernel, stride, padding


def _avg_pool(mode, x, kernel, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):
    kernel, stride, padding = _avg_pool_args(kernel, stride, padding, ceil_mode,
                                             count_include_pad, divisor_override)
    n, c, h, w = x.shape
    cols, oh, ow = _im2col(_np(x).reshape(n * c, 1, h, w), kernel, stride, padding, (1, 1))
    total = np.zeros(cols.shape[0], np.float32)
    for j in range(cols.shape[1]):  # one lane an output: the window's elements in order
        total = total + cols[:, j]
    out = total / np.float32(kernel[0] * kernel[1])
    return _t(out.reshape(n, c, oh, ow))


def _avg_pool_backward(mode, dy, x, kernel, stride, padding, ceil_mode, count_include_pad,
                       divisor_override):
    kernel, stride, padding = _avg_pool_args(kernel, stride, padding, ceil_mode,
                                             count_include_pad, divisor_override)
    n, c, h, w = x.shape
    share = _np(dy).reshape(-1, 1) / np.float32(kernel[0] * kernel[1])
    dcols = np.repeat(share, kernel[0] * kernel[1], axis=1)
    dx = vk.col2im(dcols, (n * c, 1, h, w), kernel, stride, padding, (1, 1))
    return _t(dx.reshape(n, c, h, w))


def _dims(x, dim):
    return tuple(range(x.dim())) if dim is None or len(dim) == 0 else tuple(
        d % x.dim() for d in dim)


def _sum(mode, x, dim=None, keepdim=False, *, dtype=None):
    dims = _dims(x, dim)
    s = vk.lane_sum(_np(x), mode.lanes, axis=dims)
    if keepdim:
        s = np.expand_dims(s, dims)
    return _t(s)


def _mean(mode, x, dim=None, keepdim=False, *, dtype=None):
    dims = _dims(x, dim)
    count = math.prod(x.shape[d] for d in dims)
    s = vk.lane_sum(_np(x), mode.lanes, axis=dims) / np.float32(count)
    if keepdim:
        s = np.expand_dims(s, dims)
    return _t(s)


def _embedding_backward(mode, dy, indices, num_weights, padding_idx, scale_grad_by_freq):
    if scale_grad_by_freq or padding_idx not in (-1, None):
        raise NotOnMachineError("embedding gradient with padding_idx or scale_grad_by_freq")
    return _t(vk.embedding_backward(_np(dy), indices.numpy(), num_weights))


def _sdpa_forward_parts(mode, q, k, v, is_causal, attn_mask, scale):
    if attn_mask is not None:
        raise NotOnMachineError("scaled_dot_product_attention with attn_mask")
    qn, kn, vn = _np(q), _np(k), _np(v)
    lead = qn.shape[:-2]
    sq, d = qn.shape[-2:]
    sk = kn.shape[-2]
    sc = np.float32(1 / math.sqrt(d) if scale is None else scale)
    q2, k2, v2 = (t.reshape(-1, *t.shape[-2:]) for t in (qn, kn, vn))
    p = np.empty((q2.shape[0], sq, sk), np.float32)
    o = np.empty((q2.shape[0], sq, vn.shape[-1]), np.float32)
    lse = np.empty((q2.shape[0], sq), np.float32)
    for i in range(q2.shape[0]):
        s = mode.gemm(q2[i], k2[i].T) * sc
        if is_causal:
            s = np.where(np.triu(np.ones((sq, sk), bool), 1), np.float32(-np.inf), s)
        p[i] = vk.softmax(s, -1, mode.lanes)
        mx = s.max(-1)
        lse[i] = mx + vk.hw_log(vk.lane_sum(vk.hw_exp(s - mx[:, None]), mode.lanes))
        o[i] = mode.gemm(p[i], v2[i])
    return qn, kn, vn, lead, sc, p, o, lse


def _attn_key(q, k, v):
    return tuple((t.data_ptr(), tuple(t.shape), tuple(t.stride())) for t in (q, k, v))


def _sdpa(mode, q, k, v, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    if dropout_p:
        raise NotOnMachineError("attention dropout")
    qn, _, vn, lead, _, p, o, lse = _sdpa_forward_parts(mode, q, k, v, is_causal, attn_mask,
                                                        scale)
    mode._attn[_attn_key(q, k, v)] = p  # P stays in memory for the backward, as the
    mode._keep.extend((q, k, v))        # compiler's workload keeps it (no recompute)
    mode.ops["vector:softmax"] += 1
    return _t(o.reshape(lead + o.shape[-2:])), _t(lse.reshape(lead + lse.shape[-1:]))


def _sdpa_backward(mode, dout, q, k, v, out, lse, dropout_p=0.0, is_causal=False, *,
                   attn_mask=None, scale=None):
    if attn_mask is not None:
        raise NotOnMachineError("scaled_dot_product_attention with attn_mask")
    p = mode._attn.pop(_attn_key(q, k, v))
    qn, kn, vn = _np(q), _np(k), _np(v)
    lead = qn.shape[:-2]
    sc = np.float32(1 / math.sqrt(qn.shape[-1]) if scale is None else scale)
    do = _np(dout).reshape(-1, *dout.shape[-2:])
    q2, k2, v2 = (t.reshape(-1, *t.shape[-2:]) for t in (qn, kn, vn))
    dq, dk, dv = np.empty_like(q2), np.empty_like(k2), np.empty_like(v2)
    for i in range(q2.shape[0]):
        dv[i] = mode.gemm(p[i].T, do[i])
        dp = mode.gemm(do[i], v2[i].T)
        ds = vk.softmax_backward(dp, p[i], -1, mode.lanes) * sc
        dq[i] = mode.gemm(ds, k2[i])
        dk[i] = mode.gemm(ds.T, q2[i])
    mode.ops["vector:softmax_backward"] += 1
    return tuple(_t(a.reshape(lead + a.shape[-2:])) for a in (dq, dk, dv))


_GEMM_OPS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.convolution.default,
             aten.convolution_backward.default,
             aten._scaled_dot_product_flash_attention_for_cpu.default,
             aten._scaled_dot_product_flash_attention_for_cpu_backward.default}

_HANDLERS = {
    aten.mm.default: _mm,
    aten.addmm.default: _addmm,
    aten.bmm.default: _bmm,
    aten.convolution.default: _convolution,
    aten.convolution_backward.default: _convolution_backward,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu_backward.default: _sdpa_backward,
    aten.native_batch_norm.default: _native_batch_norm,
    aten.native_batch_norm_backward.default: _native_batch_norm_backward,
    aten.native_layer_norm.default: _native_layer_norm,
    aten.native_layer_norm_backward.default: _native_layer_norm_backward,
    aten._softmax.default: _softmax,
    aten._softmax_backward_data.default: _softmax_backward,
    aten._log_softmax.default: _log_softmax,
    aten._log_softmax_backward_data.default: _log_softmax_backward,
    aten.nll_loss_forward.default: _nll_loss_forward,
    aten.nll_loss_backward.default: _nll_loss_backward,
    aten.gelu.default: _gelu,
    aten.gelu_backward.default: _gelu_backward,
    aten.relu.default: _relu,
    aten.threshold_backward.default: _threshold_backward,
    aten.max_pool2d_with_indices_backward.default: _max_pool_backward,
    aten.avg_pool2d.default: _avg_pool,
    aten.avg_pool2d_backward.default: _avg_pool_backward,
    aten.sum.dim_IntList: _sum,
    aten.sum.default: _sum,
    aten.mean.dim: _mean,
    aten.embedding_dense_backward.default: _embedding_backward,
}


# --- the step ---------------------------------------------------------------------------------

def _loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nnf.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))


def _check_sgd(momentum: float) -> None:
    if momentum < 0:
        raise ValueError(f"momentum must be >= 0, not {momentum!r}")


def run_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
             config: AcceleratorConfig | str = "vcu1525", *, pattern: str | None = None,
             lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
             gemm: str = "array") -> StepResult:
    """One training step of ``model`` on the machine (module docstring).

    Parameters
    ----------
    model : nn.Module
        In training mode; its parameters are updated in place (SGD with momentum, the first
        step: ``v = g'``), as ``torch.optim.SGD`` would. N:M layers
        (:func:`algorithms.sparsify`) run their masked GEMMs on the sparse path.
    x, target : torch.Tensor
        The input and the class labels of softmax cross-entropy over the output's last dim.
    config : AcceleratorConfig or str
        An fp16 config (training needs fp16 operands).
    pattern : str, optional
        ``"N:M"``: the pattern of the model's sparse layers (default: none run sparse).
    lr, momentum, weight_decay : float
        SGD's hyper-parameters (UPDATE's registers).
    gemm : {"array", "fp16", "fp32"}
        :data:`GEMM_NUMERICS`: the machine's array (default), or a reference for the GEMMs
        that isolates the array's share of the error.
    """
    from algorithms.nm import parse_pattern

    cfg = load_config(config)
    if cfg.array.dtype != "fp16":
        raise ValueError(f"config {cfg.name!r} has {cfg.array.dtype} operands; a training step "
                         f"needs fp16 (array.dtype: fp16)")
    _check_sgd(momentum)
    nm = None if pattern is None else parse_pattern(pattern)
    if nm is not None and not cfg.supports_pattern(nm):
        raise ValueError(f"pattern {pattern} is not supported by config {cfg.name!r} "
                         f"{cfg.array.patterns}")
    model.zero_grad(set_to_none=True)
    mode = MachineMode(cfg, nm, gemm)
    with mode:
        out = model(x)
        loss = _loss(out, target)
        mode.phase = "bwd"
        loss.backward()
    grads, weights = {}, {}
    opt = SGD_MOMENTUM_FIRST if momentum else 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            g = _np(p.grad)
            w_new, _, _ = sgd_update(_np(p), g, None, lr, momentum, weight_decay, opt)
            grads[name] = g.copy()
            weights[name] = w_new.reshape(p.shape).copy()
            p.copy_(torch.from_numpy(weights[name]))
            mode.ops["vector:update"] += 1
    return StepResult(float(loss.detach()), grads, weights, mode.ops)


def reference_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                   lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0
                   ) -> StepResult:
    """The same step in PyTorch: fp32 autograd and ``torch.optim.SGD``; updates ``model``."""
    _check_sgd(momentum)
    model.zero_grad(set_to_none=True)
    loss = _loss(model(x), target)
    loss.backward()
    grads = {n: _np(p.grad).copy() for n, p in model.named_parameters() if p.grad is not None}
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    opt.step()
    weights = {n: _np(p).copy() for n, p in model.named_parameters() if n in grads}
    return StepResult(float(loss.detach()), grads, weights)


def compare(machine: StepResult, reference: StepResult) -> dict[str, float]:
    """Normwise relative errors ``‖a - b‖₂ / ‖b‖₂`` of the machine's step against the
    reference: ``loss``, the worst gradient (``grads``), the worst updated weight
    (``weights``), and ``grad:<name>`` per parameter."""
    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        den = np.linalg.norm(b)
        return float(np.linalg.norm(a - b) / den) if den else float(np.linalg.norm(a))

    if machine.grads.keys() != reference.grads.keys():
        raise ValueError("the two steps have different parameters with gradients")
    out = {"loss": rel(machine.loss, reference.loss)}
    for name in reference.grads:
        out[f"grad:{name}"] = rel(machine.grads[name], reference.grads[name])
        out[f"weight:{name}"] = rel(machine.weights[name], reference.weights[name])
    out["grads"] = max(v for k, v in out.items() if k.startswith("grad:"))
    out["weights"] = max(v for k, v in out.items() if k.startswith("weight:"))
    return out



def check_step(model: nn.Module, x: torch.Tensor, config: AcceleratorConfig | str = "vcu1525",
               *, method: str = "bdwp", pattern: str = "2:8", skip="default",
               gemm: str = "array", seed: int = 0, max_macs: int | None = None
               ) -> tuple[StepResult, StepResult, dict[str, float]]:
    """One step of ``model`` on the machine beside autograd: ``(machine, reference, errors)``.

    ``model`` is sparsified by ``method`` and ``pattern`` (``skip``: ``"default"``,
    ``"required"`` or layer names kept dense, as :func:`dataflow.simulate_model`), its labels
    are drawn (``seed``) over its output's last dim, and both steps start from the same copy.
    ``max_macs`` (default :data:`dataflow.lower.gemm.MAX_FUNCTIONAL_MACS`, 0: none) bounds the
    step's GEMM MACs before any is run: the array runs cycle by cycle.

    Raises
    ------
    BudgetError
        More MACs than ``max_macs``.
    NotOnMachineError
        An op of the step no unit executes.
    """
    import copy

    from algorithms import sparsify
    from algorithms.bdwp import check_method

    from .lower.gemm import MAX_FUNCTIONAL_MACS, BudgetError
    from .workload import default_skip, extract, required_skip

    check_method(method)
    model = copy.deepcopy(model).train()
    if method != "dense":
        names = (default_skip(model) if skip == "default" else
                 required_skip(model, method, pattern) if skip == "required" else tuple(skip))
        model = sparsify(model, pattern, method, skip=names)
    limit = MAX_FUNCTIONAL_MACS if max_macs is None else max_macs
    macs = sum(extract(model, x, method=None, pattern=pattern).macs(dense=True).values())
    if limit and macs > limit:
        raise BudgetError(f"a training step with values does {macs / 1e9:,.2f} G MACs through "
                          f"the per-cycle array (about {macs / 3e7 / 60:,.0f} min); the budget "
                          f"is {limit / 1e9:,.2f} G: use a smaller input or batch, or pass "
                          f"--max-macs 0 to run it")
    with torch.no_grad():
        out = copy.deepcopy(model)(x)
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, out.shape[-1], tuple(out.shape[:-1]), generator=gen)
    ref = reference_step(copy.deepcopy(model), x, target)
    got = run_step(copy.deepcopy(model), x, target, config,
                   pattern=None if method == "dense" else pattern, gemm=gemm)
    return got, ref, compare(got, ref)
