"""Multiply-accumulate counts of one training step, per layer and per GEMM pass.

The counts are the *ideal* bound that hardware speedups are compared with: a pass
whose weight operand is N:M along the GEMM's reduction axis costs ``n/m`` of the dense
MACs; every other pass is dense.

=================  ========  ========  =======
method             fwd       bgrad     wgrad
=================  ========  ========  =======
``dense``          1         1         1
``srste``          n/m       1         1
``bdwp``           n/m       n/m       1
``transposable``   n/m       n/m       1
=================  ========  ========  =======

(``srste``'s backward-data operand ``W ⊙ M_f`` is not N:M along out-features, so it is
dense to the hardware.) Dense MACs per pass: linear ``T·in·out`` with ``T`` the number of
input rows (all leading dims); conv ``N·H_out·W_out·C_out·(C_in/groups)·kh·kw``. The three
passes of a layer have the same dense count. ``bgrad`` is counted for every layer,
including the first, whose input gradient a training step does not need; drop those
rows if your schedule skips it. Only ``nn.Linear`` and ``nn.Conv2d`` (including their
sparse subclasses) are counted: attention score GEMMs, norms and activations are not.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import pandas as pd
import torch
from torch import nn

from .bdwp import SparseConv2d, SparseLinear, check_method
from .nm import parse_pattern
from .sparsify_model import _skipped, sparsifiable_layers

__all__ = ["PASSES", "ideal_speedup", "pass_fractions", "training_macs"]

PASSES = ("fwd", "bgrad", "wgrad")


def pass_fractions(method: str, pattern) -> dict[str, Fraction]:
    """Fraction of the dense MACs each pass costs under ``method`` and ``pattern``.

    Parameters
    ----------
    method : {"dense", "srste", "bdwp", "transposable"}
    pattern : str or tuple
        ``"N:M"``.

    Returns
    -------
    dict
        ``{"fwd": Fraction, "bgrad": Fraction, "wgrad": Fraction}``.
    """
    check_method(method)
    n, m = parse_pattern(pattern)
    sparse = Fraction(n, m)
    one = Fraction(1)
    return {
        "fwd": one if method == "dense" else sparse,
        "bgrad": sparse if method in ("bdwp", "transposable") else one,
        "wgrad": one,
    }


def _dense_macs(mod: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    if isinstance(mod, nn.Conv2d):
        n, c_out, h_out, w_out = y.shape
        kh, kw = mod.kernel_size
        return n * h_out * w_out * c_out * (mod.in_channels // mod.groups) * kh * kw
    rows = x.numel() // mod.in_features
    return rows * mod.in_features * mod.out_features


def training_macs(
    model: nn.Module,
    example_input,
    method: str | None = None,
    pattern=None,
    skip: Iterable[str] = (),
) -> pd.DataFrame:
    """MACs of one training step of ``model`` on ``example_input``, per layer and pass.

    Parameters
    ----------
    model : nn.Module
        Any model; its ``nn.Linear``/``nn.Conv2d`` layers are counted. The model is run
        once forward under ``torch.no_grad()`` (training mode is restored).
    example_input : torch.Tensor or tuple of torch.Tensor
        One batch (passed as ``model(*example_input)`` if a tuple).
    method : str or None, default None
        None: count each layer as it is (a :class:`SparseLinear`/:class:`SparseConv2d`
        with its own method and pattern, plain layers dense). A method name: a what-if
        in which every layer not in ``skip`` uses ``method`` at ``pattern``.
    pattern : str or tuple or None
        Required when ``method`` is given and not ``"dense"``.
    skip : iterable of str, default ()
        Layer names or globs counted dense in what-if mode.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, pass), layers in execution order, passes ``fwd, bgrad,
        wgrad``. Columns: ``layer`` (qualified name), ``kind`` (``"linear"``/``"conv2d"``),
        ``pass``, ``method``, ``pattern`` (``"N:M"`` or ``""`` when dense),
        ``dense_macs`` and ``macs`` (int), ``fraction`` (``macs / dense_macs``).

    Raises
    ------
    ValueError
        For a bad method or pattern, or, in what-if mode, a layer whose shape does not fit
        the pattern (as :func:`algorithms.sparsify` would).
    """
    if method is not None:
        check_method(method)
        if method != "dense":
            if pattern is None:
                raise ValueError(f"training_macs: method {method!r} needs a pattern such as '2:8'")
            parse_pattern(pattern)
    skip = tuple(skip)
    seen: list[tuple[str, nn.Module, int]] = []
    names = {id(mod): name for name, mod in sparsifiable_layers(model)}

    def hook(mod, inputs, output):
        seen.append((names[id(mod)], mod, _dense_macs(mod, inputs[0], output)))

    handles = [mod.register_forward_hook(hook) for _, mod in sparsifiable_layers(model)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            model(*args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    rows = []
    for name, mod, dense in seen:
        if method is None:
            if isinstance(mod, SparseLinear | SparseConv2d):
                meth, pat = mod.method, mod.pattern
            else:
                meth, pat = "dense", None
        elif _skipped(name, skip) or method == "dense":
            meth, pat = "dense", None
        else:
            meth, pat = method, pattern
            _check_fits(name, mod, meth, pat)
        fractions = pass_fractions(meth, pat or "1:1")
        label = "" if meth == "dense" else "{}:{}".format(*parse_pattern(pat))
        kind = "conv2d" if isinstance(mod, nn.Conv2d) else "linear"
        for p in PASSES:
            macs = dense * fractions[p]
            rows.append(
                {
                    "layer": name,
                    "kind": kind,
                    "pass": p,
                    "method": meth,
                    "pattern": label,
                    "dense_macs": dense,
                    "macs": int(macs),
                    "fraction": float(fractions[p]),
                }
            )
    return pd.DataFrame(
        rows,
        columns=["layer", "kind", "pass", "method", "pattern", "dense_macs", "macs", "fraction"],
    )


def _check_fits(name: str, mod: nn.Module, method: str, pattern) -> None:
    _, m = parse_pattern(pattern)
    axes = [("in", 1)] + ([("out", 0)] if method in ("bdwp", "transposable") else [])
    for label, axis in axes:
        size = mod.weight.shape[axis]
        if size % m:
            raise ValueError(
                f"training_macs: layer {name!r}: {label}-channel size {size} is not divisible "
                f"by m={m} (pattern {pattern}, method {method!r}); add {name!r} to skip"
            )


def ideal_speedup(table: pd.DataFrame) -> float:
    """Dense MACs over method MACs of a :func:`training_macs` table (whole step).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`training_macs`.

    Returns
    -------
    float
        ``sum(dense_macs) / sum(macs)``; 2.0 for a single BDWP 2:8 layer.
    """
    return float(table["dense_macs"].sum() / table["macs"].sum())
