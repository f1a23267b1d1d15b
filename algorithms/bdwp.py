"""N:M sparse training layers: dense, SR-STE, BDWP and transposable masks.

Every training step of a layer runs three GEMMs. For a linear layer with weight
``W`` of shape ``(out, in)``:

===========  =======================  =====================================================
pass         GEMM                     weight operand
===========  =======================  =====================================================
``fwd``      ``Y  = X · (W ⊙ M_f)ᵀ``  ``M_f``: N:M along in-features (reduction axis)
``bgrad``    ``dX = dY · (W ⊙ M_b)``  ``M_b``: depends on the method (below)
``wgrad``    ``dW = dYᵀ · X``         dense, plus ``decay · (1 - M_f) ⊙ W`` (SR-STE term)
===========  =======================  =====================================================

Methods:

- ``"dense"``: ``M_f = M_b = 1``, no decay term (plain ``nn.Linear``/``nn.Conv2d``).
- ``"srste"``: ``M_f = nm_mask(W, dim=in)``; ``M_b = M_f``, which is the exact gradient
  of the sparse forward (as in the SR-STE code, aojunzz/NM-sparsity). ``W ⊙ M_f`` has
  no N:M structure along out-features, so hardware runs this GEMM *dense*, and
  :func:`algorithms.flops.training_macs` counts it dense.
- ``"bdwp"``: ``M_f`` as SR-STE, ``M_b = nm_mask(W, dim=out)``: N:M along the reduction
  axis of the data-gradient GEMM (Fang et al., TCAD 2023).
- ``"transposable"``: one ``transposable_mask`` serves as ``M_f`` and ``M_b``.

Masks are recomputed from the current ``W`` on every forward call. The weight gradient
is the straight-through estimate ``dYᵀ·X`` (not masked) plus the SR-STE decay term
for the sparse methods. Conv weights ``(C_out, C_in, kh, kw)`` are grouped along
``C_in`` for ``M_f`` (for each ``(out, kh, kw)``, runs of ``m`` input channels) and along
``C_out`` for ``M_b``; transposable conv masks are per kernel position over the
``C_out x C_in`` matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from .nm import nm_mask, parse_pattern, transposable_mask

__all__ = [
    "METHODS",
    "SparseConv2d",
    "SparseLinear",
    "check_method",
    "masks_for",
    "nm_conv2d",
    "nm_linear",
]

METHODS = ("dense", "srste", "bdwp", "transposable")


def check_method(method: str) -> str:
    """Return ``method`` if it is one of :data:`METHODS`, else raise ``ValueError``."""
    if method not in METHODS:
        allowed = ", ".join(repr(m) for m in METHODS)
        raise ValueError(f"method must be one of {allowed}, not {method!r}")
    return method


def masks_for(
    weight: torch.Tensor, n: int, m: int, method: str
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Forward and backward-data masks ``(M_f, M_b)`` of a linear or conv weight.

    Parameters
    ----------
    weight : torch.Tensor
        ``(out, in)`` or ``(C_out, C_in, kh, kw)``.
    n, m : int
        The pattern.
    method : str
        One of :data:`METHODS`.

    Returns
    -------
    tuple
        ``(M_f, M_b)`` boolean tensors shaped like ``weight``; ``(None, None)`` for
        ``"dense"``. For ``"srste"`` ``M_b is M_f``.

    Raises
    ------
    ValueError
        For an unknown method, or a reduction axis not divisible by ``m``.
    """
    check_method(method)
    if method == "dense":
        return None, None
    if method == "transposable":
        if weight.ndim == 4:
            # (C_out, C_in, kh, kw) -> (kh, kw, C_out, C_in): one matrix per kernel position
            mk = transposable_mask(weight.permute(2, 3, 0, 1), n, m).permute(2, 3, 0, 1)
        else:
            mk = transposable_mask(weight, n, m)
        return mk, mk
    mask_f = nm_mask(weight, n, m, dim=1)
    if method == "srste":
        return mask_f, mask_f
    return mask_f, nm_mask(weight, n, m, dim=0)


class _NMLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mask_f, mask_b, decay):
        ctx.save_for_backward(x, weight, mask_f, mask_b)
        ctx.decay = decay
        ctx.has_bias = bias is not None
        return nnf.linear(x, weight * mask_f, bias)

    @staticmethod
    def backward(ctx, dy):
        x, weight, mask_f, mask_b = ctx.saved_tensors
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = dy @ (weight * mask_b)
        if ctx.needs_input_grad[1]:
            dy2 = dy.reshape(-1, dy.shape[-1])
            dw = dy2.t() @ x.reshape(-1, x.shape[-1])
            if ctx.decay:
                dw = dw + ctx.decay * weight.masked_fill(mask_f, 0)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy.reshape(-1, dy.shape[-1]).sum(0)
        return dx, dw, db, None, None, None


class _NMConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mask_f, mask_b, decay, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight, mask_f, mask_b)
        ctx.conf = (decay, stride, padding, dilation, groups, bias is not None)
        return nnf.conv2d(x, weight * mask_f, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, dy):
        x, weight, mask_f, mask_b = ctx.saved_tensors
        decay, stride, padding, dilation, groups, has_bias = ctx.conf
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = torch.nn.grad.conv2d_input(
                x.shape, weight * mask_b, dy, stride, padding, dilation, groups
            )
        if ctx.needs_input_grad[1]:
            dw = torch.nn.grad.conv2d_weight(x, weight.shape, dy, stride, padding, dilation, groups)
            if decay:
                dw = dw + decay * weight.masked_fill(mask_f, 0)
        if has_bias and ctx.needs_input_grad[2]:
            db = dy.sum((0, 2, 3))
        return dx, dw, db, None, None, None, None, None, None, None


def nm_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask_f: torch.Tensor,
    mask_b: torch.Tensor,
    decay: float = 2e-4,
) -> torch.Tensor:
    """Linear layer with explicit forward and backward-data masks.

    Forward ``x · (W ⊙ M_f)ᵀ + b``; backward ``dX = dY · (W ⊙ M_b)``,
    ``dW = dYᵀ · X + decay · (1 - M_f) ⊙ W``, ``db = Σ dY``.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., in)``.
    weight : torch.Tensor
        ``(out, in)``.
    bias : torch.Tensor or None
        ``(out,)``.
    mask_f, mask_b : torch.Tensor
        Boolean masks shaped like ``weight``.
    decay : float, default 2e-4
        SR-STE decay on pruned weights.

    Returns
    -------
    torch.Tensor
        ``(..., out)``.
    """
    return _NMLinear.apply(x, weight, bias, mask_f, mask_b, decay)


def nm_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask_f: torch.Tensor,
    mask_b: torch.Tensor,
    decay: float = 2e-4,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> torch.Tensor:
    """2-D convolution with explicit forward and backward-data masks.

    Same contract as :func:`nm_linear` with ``nnf.conv2d`` in place of the GEMM:
    ``dX = conv2d_input(W ⊙ M_b, dY)``, ``dW = conv2d_weight(X, dY) + decay·(1-M_f)⊙W``.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C_in, H, W)``.
    weight : torch.Tensor
        ``(C_out, C_in / groups, kh, kw)``.
    bias : torch.Tensor or None
        ``(C_out,)``.
    mask_f, mask_b : torch.Tensor
        Boolean masks shaped like ``weight``.
    decay : float, default 2e-4
        SR-STE decay on pruned weights.
    stride, padding, dilation, groups
        As ``torch.nn.functional.conv2d`` (``padding`` must be numeric).

    Returns
    -------
    torch.Tensor
        ``(N, C_out, H_out, W_out)``.
    """
    return _NMConv2d.apply(
        x, weight, bias, mask_f, mask_b, decay, stride, padding, dilation, groups
    )


class _SparseMixin:
    """Shared pattern/method handling of :class:`SparseLinear` and :class:`SparseConv2d`."""

    def _setup(self, pattern, method: str, decay: float) -> None:
        self.n, self.m = parse_pattern(pattern)
        self.method = check_method(method)
        self.decay = float(decay)
        self._check_shape()

    @property
    def pattern(self) -> str:
        """The pattern as ``"N:M"``."""
        return f"{self.n}:{self.m}"

    def _check_shape(self) -> None:
        if self.method == "dense":
            return
        w = self.weight
        axes = [("in", 1)]
        if self.method in ("bdwp", "transposable"):
            axes.append(("out", 0))
        for label, axis in axes:
            if w.shape[axis] % self.m:
                raise ValueError(
                    f"{type(self).__name__}: {label}-channel size {w.shape[axis]} of weight "
                    f"shape {tuple(w.shape)} is not divisible by m={self.m} "
                    f"(pattern {self.pattern}, method {self.method!r})"
                )

    def masks(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Current ``(M_f, M_b)`` of this layer (``(None, None)`` when dense)."""
        return masks_for(self.weight, self.n, self.m, self.method)

    def sparse_weight(self) -> torch.Tensor:
        """``W ⊙ M_f``: the weight the forward pass uses (a new tensor, no grad)."""
        mask_f, _ = self.masks()
        w = self.weight.detach()
        return w.clone() if mask_f is None else w * mask_f

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pattern={self.pattern!r}, method={self.method!r}"


class SparseLinear(_SparseMixin, nn.Linear):
    """``nn.Linear`` trained with N:M sparse weights.

    Parameters
    ----------
    in_features, out_features : int
        As ``nn.Linear``. ``in_features`` must be a multiple of ``m`` for sparse methods,
        and ``out_features`` too for ``"bdwp"`` and ``"transposable"``.
    bias : bool, default True
    pattern : str or tuple, default "2:8"
        ``"N:M"``.
    method : {"dense", "srste", "bdwp", "transposable"}, default "bdwp"
    decay : float, default 2e-4
        SR-STE decay ``λ`` on pruned weights, added to the weight gradient.
    device, dtype
        As ``nn.Linear``.

    Raises
    ------
    ValueError
        For a bad pattern or method, or a dimension not divisible by ``m``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        pattern="2:8",
        method: str = "bdwp",
        decay: float = 2e-4,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._setup(pattern, method, decay)

    @classmethod
    def from_dense(cls, layer: nn.Linear, pattern="2:8", method="bdwp", decay=2e-4):
        """A ``SparseLinear`` sharing a copy of ``layer``'s weight and bias."""
        new = cls.__new__(cls)
        nn.Linear.__init__(
            new,
            layer.in_features,
            layer.out_features,
            layer.bias is not None,
            device=layer.weight.device,
            dtype=layer.weight.dtype,
        )
        with torch.no_grad():
            new.weight.copy_(layer.weight)
            if layer.bias is not None:
                new.bias.copy_(layer.bias)
        new._setup(pattern, method, decay)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "dense":
            return nnf.linear(x, self.weight, self.bias)
        mask_f, mask_b = self.masks()
        return nm_linear(x, self.weight, self.bias, mask_f, mask_b, self.decay)


class SparseConv2d(_SparseMixin, nn.Conv2d):
    """``nn.Conv2d`` trained with N:M sparse weights (grouped along ``C_in``, see module).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, bias
        As ``nn.Conv2d`` (``groups=1`` and ``padding_mode="zeros"`` only for sparse methods).
    pattern : str or tuple, default "2:8"
    method : {"dense", "srste", "bdwp", "transposable"}, default "bdwp"
    decay : float, default 2e-4
    device, dtype
        As ``nn.Conv2d``.

    Raises
    ------
    ValueError
        For a bad pattern or method, a channel count not divisible by ``m``, or
        grouped / non-zero-padded convolution with a sparse method.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias: bool = True,
        pattern="2:8",
        method: str = "bdwp",
        decay: float = 2e-4,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
            device=device,
            dtype=dtype,
        )
        self._setup(pattern, method, decay)

    @classmethod
    def from_dense(cls, layer: nn.Conv2d, pattern="2:8", method="bdwp", decay=2e-4):
        """A ``SparseConv2d`` with a copy of ``layer``'s geometry, weight and bias."""
        if method != "dense" and (layer.groups != 1 or layer.padding_mode != "zeros"):
            raise ValueError(
                f"SparseConv2d: grouped or {layer.padding_mode!r}-padded convolutions are not "
                f"supported (groups={layer.groups}); keep this layer dense"
            )
        new = cls(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.bias is not None,
            pattern=pattern,
            method="dense",
            decay=decay,
            device=layer.weight.device,
            dtype=layer.weight.dtype,
        )
        with torch.no_grad():
            new.weight.copy_(layer.weight)
            if layer.bias is not None:
                new.bias.copy_(layer.bias)
        new._setup(pattern, method, decay)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "dense":
            return self._conv_forward(x, self.weight, self.bias)
        if isinstance(self.padding, str):
            # "same"/"valid": resolve to numbers once; conv2d_input needs numeric padding
            raise ValueError("SparseConv2d: string padding is not supported; pass numbers")
        mask_f, mask_b = self.masks()
        return nm_conv2d(
            x,
            self.weight,
            self.bias,
            mask_f,
            mask_b,
            self.decay,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
