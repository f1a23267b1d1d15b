"""Swap a model's ``nn.Linear`` and ``nn.Conv2d`` layers for N:M sparse training layers.

The function is exported as ``algorithms.sparsify``; this module is named differently so
that the package attribute is the function, not the module.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable

from torch import nn

from .bdwp import SparseConv2d, SparseLinear, check_method
from .nm import parse_pattern

__all__ = ["sparsify", "sparsifiable_layers"]


def _skipped(name: str, skip: Iterable[str]) -> bool:
    return any(name == s or fnmatch.fnmatchcase(name, s) for s in skip)


def sparsifiable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Qualified names and modules of the ``nn.Linear``/``nn.Conv2d`` layers, in order.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of (str, nn.Module)
        In ``named_modules`` order (registration order), so ``[0]`` is usually the first
        layer and ``[-1]`` the classifier.
    """
    return [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear | nn.Conv2d) and name
    ]


def sparsify(
    model: nn.Module,
    pattern="2:8",
    method: str = "bdwp",
    skip: Iterable[str] = (),
    decay: float = 2e-4,
    inplace: bool = False,
) -> nn.Module:
    """Replace ``nn.Linear``/``nn.Conv2d`` layers with :class:`SparseLinear`/:class:`SparseConv2d`.

    Weights and biases are kept. Layers that are already sparse are re-created with the
    new pattern and method.

    Parameters
    ----------
    model : nn.Module
        The model. Not modified unless ``inplace=True``.
    pattern : str or tuple, default "2:8"
        ``"N:M"``.
    method : {"dense", "srste", "bdwp", "transposable"}, default "bdwp"
    skip : iterable of str, default ()
        Qualified module names (as in ``model.named_modules()``) or ``fnmatch`` globs
        to leave unchanged, typically the first conv and the classifier, e.g.
        ``skip=("conv1", "fc")``. :func:`sparsifiable_layers` lists the names.
    decay : float, default 2e-4
        SR-STE decay.
    inplace : bool, default False
        If False a deep copy is modified and returned; if True ``model`` itself is.

    Returns
    -------
    nn.Module
        The sparsified model.

    Raises
    ------
    ValueError
        For a bad pattern or method, a ``skip`` name that matches no layer, or a layer
        whose shape does not fit the pattern (the message names the layer and suggests
        ``skip``). Nothing is modified when an error is raised.
    """
    parse_pattern(pattern)
    check_method(method)
    skip = tuple(skip)
    layers = sparsifiable_layers(model)
    names = [n for n, _ in layers]
    for s in skip:
        if not any(_skipped(n, (s,)) for n in names):
            raise ValueError(
                f"sparsify: skip entry {s!r} matches no Linear/Conv2d layer; layers are {names}"
            )
    target = model if inplace else copy.deepcopy(model)
    replacements = []
    for name, mod in sparsifiable_layers(target):
        if _skipped(name, skip):
            continue
        try:
            if isinstance(mod, nn.Conv2d):
                new = SparseConv2d.from_dense(mod, pattern, method, decay)
            else:
                new = SparseLinear.from_dense(mod, pattern, method, decay)
        except ValueError as err:
            raise ValueError(f"sparsify: layer {name!r}: {err}; add {name!r} to skip") from None
        new.train(mod.training)
        replacements.append((name, new))
    for name, new in replacements:
        parent_name, _, attr = name.rpartition(".")
        parent = target.get_submodule(parent_name) if parent_name else target
        setattr(parent, attr, new)
    return target
