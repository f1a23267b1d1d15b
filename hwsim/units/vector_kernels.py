"""The vector engine's kernels with values: norms, activations, softmax, pooling, the loss.

:mod:`dataflow.vector_ops` costs these kernels (passes, periods, DRAM bytes); this module is
what they compute, in the engine's numerics, so that a whole training step runs with values
(:mod:`dataflow.execute`). Each kernel is a fixed sequence of the engine's fp32 operations:

- ``+ - x /`` and ``sqrt`` are IEEE binary32 operations rounded to nearest even, subnormals
  kept (:func:`hwsim.numerics.fp32_add`, :func:`~hwsim.numerics.fp32_mul`,
  :func:`~hwsim.numerics.fp32_div`, :func:`~hwsim.numerics.fp32_sqrt`); numpy's float32
  arithmetic is exactly these operations, so the kernels are written with it (NaN payloads
  are not canonicalised here: no kernel below produces a NaN from finite inputs);
- **reductions** run on the ``L = config.vector.lanes`` lanes in one fixed order: lane ``j``
  adds elements ``j, j + L, j + 2L, ...`` to ``+0`` one rounded addition at a time, then the
  ``L`` lane sums are added in lane order (:func:`lane_sum`);
- ``exp``, ``log`` and ``erf`` are short fp32 programs (:func:`hw_exp`, :func:`hw_log`,
  :func:`hw_erf`): a Cody-Waite range reduction and a degree-6 polynomial; ``2·atanh`` series
  of the mantissa; Abramowitz-Stegun 7.1.26. Their errors are pinned by
  ``tests/hwsim/test_vector_kernels.py`` (:data:`EXP_ULPS`, :data:`LOG_ULPS`,
  :data:`ERF_ABS`);
- selection (ReLU's mask, max-pooling's argmax, the label's logit) and data movement (im2col,
  gathers) are exact; scatter-adds (max-pool and col2im backward, the embedding gradient) add
  in the order of their sources, one rounded addition each.

Norms use the one-pass statistics :mod:`dataflow.vector_ops` costs (sum and sum of squares,
``var = E[x²] - mean²``) and apply ``y = x·scale + shift`` with ``scale = γ·rstd``,
``shift = β - mean·scale``; ``rstd = 1 / sqrt(var + eps)`` is a square root and a division.
That is the hardware's arithmetic, not PyTorch's (Welford statistics, ``(x - mean)·rstd·γ +
β``): both are within a few fp32 roundings of the exact value for the inputs a network has.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ERF_ABS",
    "EXP_ULPS",
    "LOG_ULPS",
    "batch_norm",
    "batch_norm_backward",
    "col2im",
    "embedding_backward",
    "gelu",
    "gelu_backward",
    "hw_erf",
    "hw_exp",
    "hw_log",
    "lane_sum",
    "layer_norm",
    "layer_norm_backward",
    "log_softmax",
    "log_softmax_backward",
    "nll_loss",
    "nll_loss_backward",
    "scatter_add",
    "softmax",
    "softmax_backward",
]

F = np.float32
EXP_ULPS = 3
"""Most units in the last place :func:`hw_exp` is from the correctly rounded ``exp``."""
LOG_ULPS = 2
"""Most units in the last place :func:`hw_log` is from the correctly rounded ``log``."""
ERF_ABS = 6e-7
"""Most absolute error of :func:`hw_erf` (7.1.26's 1.5e-7 plus fp32 evaluation, measured)."""


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=F)


def lane_sum(x, lanes: int, axis: int = -1) -> np.ndarray:
    """Sum along ``axis`` in the engine's order (module docstring): per lane, then lane order.

    Parameters
    ----------
    x : array_like of float32
    lanes : int
        ``config.vector.lanes``.
    axis : int or tuple of int
        Axes reduced (several axes are flattened in C order into one stream).
    """
    x = _f(x)
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    axes = tuple(a % x.ndim for a in axes)
    keep = [a for a in range(x.ndim) if a not in axes]
    x = np.transpose(x, keep + list(axes))
    lead = x.shape[:len(keep)]
    x = x.reshape(lead + (-1,))
    n = x.shape[-1]
    entries = -(-n // lanes)
    if entries * lanes != n:
        x = np.concatenate([x, np.zeros(lead + (entries * lanes - n,), F)], axis=-1)
    x = x.reshape(lead + (entries, lanes))
    acc = np.zeros(lead + (lanes,), F)
    for e in range(entries):
        acc = acc + x[..., e, :]
    total = np.zeros(lead, F)
    for j in range(lanes):
        total = total + acc[..., j]
    return total


# --- exp, log, erf -------------------------------------------------------------------------

_LOG2E = F(1.4426950408889634)
_LN2_HI = F(0.693145751953125)  # 0x3f317200: n * _LN2_HI is exact for |n| < 2^9
_LN2_LO = F(1.428606765330187e-06)
_EXP_POLY = tuple(F(1 / c) for c in (720, 120, 24, 6, 2, 1, 1))


def hw_exp(x) -> np.ndarray:
    """``exp(x)`` in fp32: ``n = rint(x·log2 e)``, ``r = (x - n·ln2_hi) - n·ln2_lo``,
    ``p(r)`` by Horner (Taylor to degree 6), ``p·2^n``; ``+inf`` above 88.72, ``+0`` below
    -103.97 and at ``-inf``."""
    x = _f(x)
    with np.errstate(over="ignore", invalid="ignore"):
        xc = np.clip(x, F(-104), F(89))
        n = np.rint(xc * _LOG2E)
        r = (xc - n * _LN2_HI) - n * _LN2_LO
        p = np.full_like(r, _EXP_POLY[0])
        for c in _EXP_POLY[1:]:
            p = p * r + c
        out = np.ldexp(p, n.astype(np.int32)).astype(F)
    out = np.where(x > F(88.72283), F(np.inf), out)
    out = np.where(x < F(-103.97208), F(0), out)
    return np.where(np.isnan(x), x, out).astype(F)


_SQRT_HALF = F(0.70710677)
_LOG_POLY = tuple(F(2 / c) for c in (9, 7, 5, 3))


def hw_log(x) -> np.ndarray:
    """``log(x)`` in fp32 for ``x > 0``: ``x = m·2^e`` with ``m`` in ``[√½, √2)``,
    ``s = (m - 1)/(m + 1)``, ``log m = 2s + s·z·(2/3 + z·(2/5 + z·(2/7 + z·2/9)))`` with
    ``z = s²``, then ``e·ln2_hi + (e·ln2_lo + log m)``. ``log(0) = -inf``."""
    x = _f(x)
    m, e = np.frexp(x)
    m = m.astype(F)
    small = m < _SQRT_HALF
    m = np.where(small, m * F(2), m)
    e = np.where(small, e - 1, e).astype(F)
    s = (m - F(1)) / (m + F(1))
    z = s * s
    q = np.full_like(z, _LOG_POLY[0])
    for c in _LOG_POLY[1:]:
        q = q * z + c
    logm = s * F(2) + (s * z) * q
    out = e * _LN2_HI + (e * _LN2_LO + logm)
    return np.where(x == 0, F(-np.inf), out).astype(F)


_ERF_P = F(0.3275911)
_ERF_A = tuple(F(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736,
                              0.254829592))


def hw_erf(x) -> np.ndarray:
    """``erf(x)`` in fp32 by Abramowitz-Stegun 7.1.26: ``t = 1/(1 + p|x|)``,
    ``erf|x| = 1 - t·(a1 + t·(a2 + ...))·exp(-x²)``, sign restored."""
    x = _f(x)
    ax = np.abs(x)
    t = F(1) / (F(1) + _ERF_P * ax)
    q = np.full_like(t, _ERF_A[0])
    for c in _ERF_A[1:]:
        q = q * t + c
    y = F(1) - (t * q) * hw_exp(-(ax * ax))
    return np.copysign(y, x).astype(F)


# --- activations -----------------------------------------------------------------------------

_RSQRT2 = F(0.70710678118654752)
_INV_SQRT_2PI = F(0.3989422804014327)


def gelu(x) -> np.ndarray:
    """``x·½·(1 + erf(x/√2))`` (PyTorch's exact GELU)."""
    x = _f(x)
    return (x * F(0.5)) * (F(1) + hw_erf(x * _RSQRT2))


def gelu_backward(dy, x) -> np.ndarray:
    """``dy·(½·(1 + erf(x/√2)) + x·φ(x))`` with ``φ(x) = exp(-x²/2)/√(2π)``."""
    x, dy = _f(x), _f(dy)
    cdf = F(0.5) * (F(1) + hw_erf(x * _RSQRT2))
    pdf = hw_exp(-(x * x) * F(0.5)) * _INV_SQRT_2PI
    return dy * (cdf + x * pdf)


# --- softmax and the loss ----------------------------------------------------------------------

def _last(x, dim):
    return np.moveaxis(_f(x), dim, -1)


def softmax(x, dim: int, lanes: int) -> np.ndarray:
    """Row max, ``e = exp(x - max)``, ``e / Σe`` (a division per element)."""
    x = _last(x, dim)
    mx = np.max(x, axis=-1, keepdims=True)
    mx = np.where(np.isneginf(mx), F(0), mx)
    e = hw_exp(x - mx)
    return np.moveaxis(e / lane_sum(e, lanes)[..., None], -1, dim)


def softmax_backward(dy, y, dim: int, lanes: int) -> np.ndarray:
    """``dot = Σ dy·y`` per row, ``dx = y·(dy - dot)``."""
    dy, y = _last(dy, dim), _last(y, dim)
    dot = lane_sum(dy * y, lanes)[..., None]
    return np.moveaxis(y * (dy - dot), -1, dim)


def log_softmax(x, dim: int, lanes: int) -> np.ndarray:
    """``(x - max) - log Σ exp(x - max)``."""
    x = _last(x, dim)
    mx = np.max(x, axis=-1, keepdims=True)
    sh = x - mx
    lse = hw_log(lane_sum(hw_exp(sh), lanes))[..., None]
    return np.moveaxis(sh - lse, -1, dim)


def log_softmax_backward(dy, y, dim: int, lanes: int) -> np.ndarray:
    """``dx = dy - exp(y)·Σ dy``."""
    dy, y = _last(dy, dim), _last(y, dim)
    s = lane_sum(dy, lanes)[..., None]
    return np.moveaxis(dy - hw_exp(y) * s, -1, dim)


def nll_loss(logp, target, lanes: int) -> np.float32:
    """Mean negative log-likelihood: ``-(Σ logp[i, t_i]) / rows`` (reduction ``mean``)."""
    logp = _f(logp)
    picked = logp[np.arange(logp.shape[0]), np.asarray(target)]
    return F(-(lane_sum(picked, lanes) / F(logp.shape[0])))


def nll_loss_backward(grad, logp_shape, target) -> np.ndarray:
    """``dlogp[i, t_i] = -grad / rows``, zero elsewhere."""
    out = np.zeros(logp_shape, F)
    rows = logp_shape[0]
    out[np.arange(rows), np.asarray(target)] = -(F(grad) / F(rows))
    return out


# --- norms -----------------------------------------------------------------------------------

def _stats(x2d, lanes: int, eps: float):
    """One-pass statistics of the rows of ``x2d``: ``(mean, rstd, var)``."""
    n = F(x2d.shape[-1])
    s1 = lane_sum(x2d, lanes)
    s2 = lane_sum(x2d * x2d, lanes)
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, F(0))
    rstd = F(1) / np.sqrt(var + F(eps))
    return mean, rstd, var


def layer_norm(x, normalized: int, weight, bias, eps: float, lanes: int):
    """LayerNorm over the last ``normalized`` elements of each row: ``(y, mean, rstd)``
    (``mean``, ``rstd`` shaped ``(..., 1)`` as PyTorch's ``native_layer_norm``)."""
    x = _f(x)
    rows = x.reshape(-1, normalized)
    mean, rstd, _ = _stats(rows, lanes, eps)
    g = np.ones(normalized, F) if weight is None else _f(weight).reshape(-1)
    b = np.zeros(normalized, F) if bias is None else _f(bias).reshape(-1)
    scale = rstd[:, None] * g[None, :]
    shift = b[None, :] - mean[:, None] * scale
    y = rows * scale + shift
    lead = x.shape[:x.ndim - 1] if normalized == x.shape[-1] else None
    shp = (lead or (rows.shape[0],)) + (1,)
    return y.reshape(x.shape), mean.reshape(shp), rstd.reshape(shp)


def layer_norm_backward(dy, x, mean, rstd, weight, normalized: int, lanes: int):
    """``(dx, dγ, dβ)``: ``g = dy·γ``, ``dx = rstd·(g - Σg/n - x̂·Σ(g·x̂)/n)``,
    ``dγ = Σ_rows dy·x̂``, ``dβ = Σ_rows dy``."""
    dy = _f(dy).reshape(-1, normalized)
    x = _f(x).reshape(-1, normalized)
    mean = _f(mean).reshape(-1, 1)
    rstd = _f(rstd).reshape(-1, 1)
    xhat = (x - mean) * rstd
    gam = np.ones(normalized, F) if weight is None else _f(weight).reshape(-1)
    g = dy * gam[None, :]
    n = F(normalized)
    c1 = (lane_sum(g, lanes) / n)[:, None]
    c2 = (lane_sum(g * xhat, lanes) / n)[:, None]
    dx = ((g - c1) - xhat * c2) * rstd
    dgamma = lane_sum((dy * xhat).T, lanes)
    dbeta = lane_sum(dy.T, lanes)
    return dx, dgamma, dbeta


def _nchw_rows(x):
    """``(C, N·H·W)``: a channel's elements as one stream (batch-major, then raster)."""
    x = _f(x)
    c = x.shape[1]
    return np.moveaxis(x, 1, 0).reshape(c, -1)


def batch_norm(x, weight, bias, running_mean, running_var, momentum: float, eps: float,
               lanes: int):
    """Training-mode BatchNorm2d/1d: ``(y, save_mean, save_rstd, new_running_mean,
    new_running_var)``; running statistics ``(1-m)·r + m·stat`` with the unbiased variance."""
    x = _f(x)
    rows = _nchw_rows(x)
    n = rows.shape[1]
    mean, rstd, var = _stats(rows, lanes, eps)
    c = rows.shape[0]
    g = np.ones(c, F) if weight is None else _f(weight)
    b = np.zeros(c, F) if bias is None else _f(bias)
    scale = g * rstd
    shift = b - mean * scale
    shape = (1, c) + (1,) * (x.ndim - 2)
    y = x * scale.reshape(shape) + shift.reshape(shape)
    new_rm = new_rv = None
    if running_mean is not None:
        m = F(momentum)
        unbiased = var * F(n / max(n - 1, 1))
        new_rm = (F(1) - m) * _f(running_mean) + m * mean
        new_rv = (F(1) - m) * _f(running_var) + m * unbiased
    return y, mean, rstd, new_rm, new_rv


def batch_norm_backward(dy, x, weight, save_mean, save_rstd, lanes: int):
    """``(dx, dγ, dβ)``: ``dβ = Σdy``, ``dγ = Σdy·x̂``, ``dx = γ·rstd·(dy - dβ/n - x̂·dγ/n)``
    per channel."""
    x = _f(x)
    c = x.shape[1]
    shape = (1, c) + (1,) * (x.ndim - 2)
    mean = _f(save_mean).reshape(shape)
    rstd = _f(save_rstd).reshape(shape)
    dy = _f(dy)
    xhat = (x - mean) * rstd
    dbeta = lane_sum(_nchw_rows(dy), lanes)
    dgamma = lane_sum(_nchw_rows(dy * xhat), lanes)
    n = F(_nchw_rows(x).shape[1])
    g = np.ones(c, F) if weight is None else _f(weight)
    scale = (g * _f(save_rstd)).reshape(shape)
    c1 = (dbeta / n).reshape(shape)
    c2 = (dgamma / n).reshape(shape)
    dx = ((dy - c1) - xhat * c2) * scale
    return dx, dgamma, dbeta


# --- scatter-adds --------------------------------------------------------------------------

def scatter_add(size: int, index, values) -> np.ndarray:
    """``out[index[i]] += values[i]`` for ``i`` in order, from ``+0``, one rounded addition
    each (flattened ``index``/``values``)."""
    out = np.zeros(size, F)
    np.add.at(out, np.asarray(index).reshape(-1), _f(values).reshape(-1))
    return out


def col2im(dcols, x_shape, kernel, stride, padding, dilation) -> np.ndarray:
    """The column gradient ``dcols[(n, oh, ow), (kh, kw, c)]`` scatter-added into
    ``dx[n, c, h, w]`` in row order of ``dcols`` (one rounded addition per column entry)."""
    n, c, h, w = x_shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    ni, ohi, owi, khi, kwi, ci = np.meshgrid(np.arange(n), np.arange(oh), np.arange(ow),
                                             np.arange(kh), np.arange(kw), np.arange(c),
                                             indexing="ij")
    hi = ohi * sh - ph + khi * dh
    wi = owi * sw - pw + kwi * dw
    ok = (hi >= 0) & (hi < h) & (wi >= 0) & (wi < w)
    flat = ((ni * c + ci) * h + hi) * w + wi
    vals = _f(dcols).reshape(n, oh, ow, kh, kw, c)
    out = scatter_add(n * c * h * w, flat[ok], vals[ok])
    return out.reshape(n, c, h, w)


def embedding_backward(dy, indices, num_weights: int) -> np.ndarray:
    """``dW[idx[t]] += dy[t]`` over the tokens in order (rows of ``dy``)."""
    dy = _f(dy)
    d = dy.shape[-1]
    dy = dy.reshape(-1, d)
    idx = np.asarray(indices).reshape(-1)
    out = np.zeros((num_weights, d), F)
    np.add.at(out, idx, dy)
    return out
