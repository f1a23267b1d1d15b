"""From the swept points to the config: linear fits, estimates per component, and the verdict.

Each resource is fitted ``a + b * PEs`` through the arrays and ``a + b * lanes`` through each
engine's lane points; the config's array, SORE and vector engine are measured where their size
was swept and extrapolated otherwise. The shell designs (:mod:`rtl.synth.shell`: host
interface, DRAM channels, controller, DMA, buffer port multiplexers) are measured at the
config's own size, times the instances the machine has. Their sum plus the buffers is the
verdict: within :data:`FIT_LIMIT` of the part's DSP48E2, LUT and BRAM/URAM or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.config import AcceleratorConfig

from .buffers import _BRAM_SHAPE, _URAM_SHAPE, _buffer_blocks, _checked_mapping
from .designs import _ENGINES
from .resources import RESOURCES, SynthResult, _fmt

__all__ = ["FIT_LIMIT"]

FIT_LIMIT = 0.85
"""Utilisation each of DSP48E2, LUT and BRAM/URAM must stay under for a config to fit."""


def _fit(points: list[tuple[int, float]]) -> tuple[float, float, float]:
    """Least-squares ``value = a + b * pes``; returns ``(a, b, max |residual|)``."""
    x = np.array([p for p, _ in points], dtype=float)
    y = np.array([v for _, v in points], dtype=float)
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b), float(np.max(np.abs(a + b * x - y)))


def _fit_dict(fits: dict[str, tuple[float, float, float]]) -> dict[str, dict[str, float]]:
    """The fits as the report's JSON writes them."""
    return {k: {"a": a, "b": b, "max_residual": res} for k, (a, b, res) in fits.items()}


def _estimate(points: list[tuple[int, SynthResult]], target: int
              ) -> tuple[dict[str, tuple[float, float, float]], dict[str, float], str]:
    """Fit ``a + b * x`` per resource through ``(x, result)`` points and estimate ``target``.

    Returns the fits, the estimate of each of :data:`RESOURCES` (the measured point if
    ``target`` was synthesized, else the fit, clipped at 0) and ``"measured"`` or
    ``"extrapolated"``.
    """
    fits = {k: _fit([(x, r.resources[k]) for x, r in points]) for k in RESOURCES}
    measured = dict(points)
    if target in measured:
        return fits, {k: float(measured[target].resources[k]) for k in RESOURCES}, "measured"
    return fits, {k: max(0.0, a + b * target) for k, (a, b, _) in fits.items()}, "extrapolated"


@dataclass(frozen=True)
class _Component:
    """One part of the config's logic in the verdict: measured or extrapolated from a fit."""

    key: str  # "array", a key of _ENGINES, or a shell design's name
    label: str  # the report's name for it
    size: str  # its size in words, e.g. "32x32 = 1024 PEs"
    unit: str  # what the fit counts: "PEs" or "lanes" ("" for a shell design: no fit)
    target: int  # the config's PEs or lanes (a shell design's instance count)
    points: tuple[int, ...]  # the synthesized PE or lane counts
    fits: dict[str, tuple[float, float, float]]
    values: dict[str, float]  # estimate of each of RESOURCES
    source: str  # "measured" or "extrapolated"
    # a measured target with two or more smaller points: what the fit through those alone
    # extrapolates for it, from which points (how far extrapolation is off at this scale)
    check: dict[str, float] | None = None
    check_points: tuple[int, ...] = ()
    shell: bool = False  # a shell design (rtl.synth.shell), measured at the config's size

    def to_dict(self) -> dict:
        return {"label": self.label, "size": self.size, "unit": self.unit,
                "target": self.target, "points": list(self.points), "source": self.source,
                "fit": _fit_dict(self.fits), "shell": self.shell,
                **self.values,
                "check": None if self.check is None else {
                    "points": list(self.check_points), "extrapolated": self.check}}


def _components(config: AcceleratorConfig, designs, results) -> list[_Component]:
    """The config's array and each swept engine, estimated from their points, then each shell
    design, measured (times its instance count)."""
    pairs = list(zip(designs, results, strict=True))
    R, C = config.array.rows, config.array.cols
    arrays = [(d.pes, r) for d, r in pairs if d.pes is not None]
    out = [_component("array", "systolic array", f"{R}x{C} = {R * C} PEs", "PEs", R * C,
                      arrays)]
    lk = config.lookup
    targets = {"sore": config.sore.lanes, "vector": config.vector.lanes,
               "hash": lk.hash_lanes, "gather": lk.gather_lanes, "scatter": lk.gather_lanes,
               "update": lk.gather_lanes}
    for key, label in _ENGINES.items():
        points = [(d.lanes, r) for d, r in pairs if d.engine == key]
        if points:
            out.append(_component(key, label, f"{targets[key]} lanes", "lanes", targets[key],
                                  points))
    for d, r in pairs:
        if d.shell is not None:
            size = f"{d.count} x `{d.name}`" if d.count > 1 else f"`{d.name}`"
            out.append(_Component(d.name, d.shell, size, "", d.count, (), {},
                                  {k: d.count * float(r.resources[k]) for k in RESOURCES},
                                  "measured", shell=True))
    return out


def _component(key, label, size, unit, target, points) -> _Component:
    """Estimate ``target`` from ``(count, result)`` points; check a measured target against
    the fit through the smaller counts alone."""
    fits, values, source = _estimate(points, target)
    below = [(x, r) for x, r in points if x < target]
    check = None
    if source == "measured" and len(below) >= 2:
        check = _estimate(below, target)[1]
    return _Component(key, label, size, unit, target, tuple(x for x, _ in points), fits,
                      values, source, check, tuple(x for x, _ in below))


def _total(comps: list[_Component], keys: tuple[str, ...] = RESOURCES) -> dict[str, float]:
    """The components' estimates summed, per resource of ``keys``."""
    return {k: sum(c.values[k] for c in comps) for k in keys}


def _verdict_rows(config, comps: list[_Component], totals: dict[str, int],
                  check: dict | None = None) -> list[tuple]:
    """``(resource, estimate, source, of part)`` rows: the logic sum, then the buffers (from
    the buffer ``check`` where it measured every buffer in that memory, else analytical)."""
    logic = _total(comps)
    src = _sources(comps)
    rows = [("DSP48E2", logic["DSP48E2"], src, totals["DSP48E2"]),
            ("LUT", logic["LUT"], src, totals["LUT"])]
    for name, key, shape in (("URAM (buffers in URAM)", "URAM", _URAM_SHAPE),
                             ("BRAM36 (buffers in BRAM)", "BRAM36", _BRAM_SHAPE)):
        style, checked = _checked_mapping(check, key)
        if checked is None:
            blocks, bsrc = _buffer_blocks(config, shape), "buffers (analytical)"
        else:
            blocks = sum(r[f"{key}_full"] for r in checked)
            how = f'ram_style="{style}"' if style else "no ram_style"
            bsrc = (f"buffers (synthesized at {check['depth']:,} entries, {how}; scaled to "
                    "full depth)")
        rsrc = bsrc + (f" + logic ({_fmt(logic[key])})" if logic[key] else "")
        rows.append((name, blocks + logic[key], rsrc, totals[key]))
    return rows


def _sources(comps: list[_Component]) -> str:
    """What a verdict row's logic sums: each fitted component and its source, the shell
    designs as one term."""
    shell = [c for c in comps if c.shell]
    return " + ".join([*(f"{c.label} ({c.source})" for c in comps if not c.shell),
                       *([f"shell ({len(shell)} designs, measured)"] if shell else [])])


def _verdict(rows: list[tuple]) -> tuple[bool, str]:
    """Whether DSP, LUT and the cheaper of URAM/BRAM are under :data:`FIT_LIMIT`, and which
    memory holds the buffers."""
    (_, dsp, _, dsp_t), (_, lut, _, lut_t), (_, uram, _, uram_t), (_, bram, _, bram_t) = rows
    mem = "URAM" if uram / uram_t <= bram / bram_t else "BRAM"
    ok = (dsp / dsp_t < FIT_LIMIT and lut / lut_t < FIT_LIMIT
          and min(uram / uram_t, bram / bram_t) < FIT_LIMIT)
    return ok, mem
