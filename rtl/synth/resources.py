"""What a Yosys run counts and what it costs of a part.

Yosys ``stat -json`` gives cell counts by type (:func:`parse_stat_json`);
:func:`resources_from_cells` maps the Xilinx cells to the resources of :data:`RESOURCES` plus
extra rows; a :class:`Device` holds a part's totals, the denominators of utilisation; a
:class:`SynthResult` is all of it for one run, and the ``result.json`` the run cache reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .timing import TimingEstimate

__all__ = [
    "DEVICES",
    "RESOURCES",
    "Device",
    "SynthResult",
    "parse_stat_json",
    "resources_from_cells",
]

RESOURCES = ("LUT", "FF", "DSP48E2", "BRAM36", "URAM")
"""The resources whose utilisation of the part is reported, in table order."""


@dataclass(frozen=True)
class Device:
    """Resource totals of an FPGA part (the denominators of utilisation)."""

    part: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram36: int
    uram: int

    def totals(self) -> dict[str, int]:
        return {"LUT": self.lut, "FF": self.ff, "DSP48E2": self.dsp, "BRAM36": self.bram36,
                "URAM": self.uram}


DEVICES = {
    # VCU1525 card's VU9P (../shared/REFERENCES.md, Hardware facts).
    "xcvu9p": Device("xcvu9p", "xcup", lut=1_182_240, ff=2_364_480, dsp=6_840, bram36=2_160,
                     uram=960),
}

# LUTs each distributed-RAM / shift-register primitive occupies (UltraScale+, UG574).
_LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM32M": 4, "RAM32M16": 8,
    "RAM64X1S": 1, "RAM64X1D": 2, "RAM64M": 4, "RAM64M8": 8,
    "RAM128X1S": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM256X1D": 8, "RAM512X1S": 8,
}
_SRL = ("SRL16E", "SRLC16E", "SRLC32E")
_FFS = ("FDRE", "FDSE", "FDCE", "FDPE")
_LOGIC_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2")
# Cells that cost none of the reported resources: constants, buffers and Amaranth hierarchy
# markers. INV stays visible as an extra row: Vivado folds most into LUTs or FF enables.
_FREE = ("$scopeinfo", "GND", "VCC", "BUFG", "BUFGCE", "IBUF", "OBUF", "OBUFT", "IOBUF")


def _check_part(part: str) -> None:
    """Raise the ``ValueError`` every entry point gives for a part not in :data:`DEVICES`."""
    if part not in DEVICES:
        raise ValueError(f"part must be one of {sorted(DEVICES)}, not {part!r}")


def _fmt(value: float) -> str:
    """A resource count as the tables write it: thousands separated, a fraction only if any."""
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


@dataclass
class SynthResult:
    """What one synthesis run measured.

    Parameters
    ----------
    top : str
        Top module name.
    part : str
        Part the utilisation is computed against.
    resources : dict of str to float
        ``LUT`` (logic LUTs plus LUTs used as RAM or shift registers), ``FF``, ``DSP48E2``,
        ``BRAM36`` (RAMB18E2 counted as 0.5) and ``URAM`` (URAM288), then extra rows:
        ``LUT logic``, ``LUT as memory``, ``LUT6_2``, ``CARRY4``/``CARRY8``, ``MUXF7``.. and any
        other cell type, so no cell is silently dropped.
    utilisation : dict of str to float
        Fraction of the part for each of :data:`RESOURCES`.
    cells : dict of str to int
        Raw Yosys cell counts by type.
    log_path, verilog_path : Path
        The Yosys log and the synthesized Verilog.
    runtime_s : float
        Wall-clock seconds of the Yosys run.
    timing : TimingEstimate, optional
        Yosys ``sta``'s critical path (:mod:`rtl.synth.timing`: what it is and is not); None
        when it timed no path, or for a result made before the flow had it.
    """

    top: str
    part: str
    resources: dict[str, float]
    utilisation: dict[str, float]
    cells: dict[str, int]
    log_path: Path
    verilog_path: Path
    runtime_s: float
    yosys_version: str = ""
    options: tuple[str, ...] = field(default_factory=tuple)
    # the Verilog's SHA-256 as an earlier result.json recorded it: what to_dict writes when the
    # Verilog file is gone (a result taken from another machine's report)
    verilog_sha256: str = ""
    timing: TimingEstimate | None = None

    def to_markdown(self) -> str:
        """A two-column resource table (used, % of part), extras after the main rows."""
        lines = [f"| {self.top} | used | % of {self.part} |", "|---|---:|---:|"]
        for name, value in self.resources.items():
            pct = f"{100 * self.utilisation[name]:.3f}" if name in self.utilisation else ""
            lines.append(f"| {name} | {_fmt(value)} | {pct} |")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> SynthResult:
        """The result :meth:`to_dict` wrote (``result.json``), the Verilog hash kept."""
        return cls(top=data["top"], part=data["part"], resources=dict(data["resources"]),
                   utilisation=dict(data["utilisation"]), cells=dict(data["cells"]),
                   log_path=Path(data["log_path"]), verilog_path=Path(data["verilog_path"]),
                   runtime_s=float(data["runtime_s"]),
                   yosys_version=data.get("yosys_version", ""),
                   options=tuple(data.get("options", ())),
                   verilog_sha256=data.get("verilog_sha256", ""),
                   timing=(TimingEstimate.from_dict(data["timing"]) if data.get("timing")
                           else None))

    def to_dict(self) -> dict:
        # The Verilog's hash is what lets a later run reuse this result (run._cached).
        return {"top": self.top, "part": self.part, "resources": self.resources,
                "utilisation": self.utilisation, "cells": self.cells,
                "log_path": str(self.log_path), "verilog_path": str(self.verilog_path),
                "verilog_sha256": (hashlib.sha256(self.verilog_path.read_bytes()).hexdigest()
                                   if self.verilog_path.exists() else self.verilog_sha256),
                "runtime_s": self.runtime_s, "yosys_version": self.yosys_version,
                "options": list(self.options),
                "timing": self.timing.to_dict() if self.timing else None}


def parse_stat_json(text: str) -> dict[str, int]:
    """Cell counts by type of the whole design from Yosys ``stat -json`` output.

    Parameters
    ----------
    text : str
        What ``stat -json`` wrote.

    Returns
    -------
    dict of str to int

    Raises
    ------
    ValueError
        If the text is not ``stat -json`` output.
    """
    try:
        data = json.loads(text)
        by_type = data["design"]["num_cells_by_type"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"not Yosys 'stat -json' output ({e.__class__.__name__}: {e})") from e
    return {str(k): int(v) for k, v in by_type.items()}


def resources_from_cells(cells: dict[str, int]) -> dict[str, float]:
    """Map Xilinx cell counts to resources: the :data:`RESOURCES` rows, then extra rows.

    LUT6_2 is one physical LUT with two outputs and counts as one LUT. Cells outside every
    table (other than constants, buffers and inverters) appear as their own extra row.

    Parameters
    ----------
    cells : dict of str to int
        Cell counts by type (:func:`parse_stat_json`).

    Returns
    -------
    dict of str to float
        ``LUT``, ``FF``, ``DSP48E2``, ``BRAM36``, ``URAM``, ``LUT logic``, ``LUT as memory``,
        then ``LUT6_2``, carry and wide-mux cells where present and any other cell type.
    """
    logic = sum(cells.get(t, 0) for t in _LOGIC_LUTS)
    lutram = sum(n * cells.get(t, 0) for t, n in _LUTRAM_LUTS.items())
    srl = sum(cells.get(t, 0) for t in _SRL)
    out: dict[str, float] = {
        "LUT": logic + lutram + srl,
        "FF": sum(cells.get(t, 0) for t in _FFS),
        "DSP48E2": cells.get("DSP48E2", 0),
        "BRAM36": cells.get("RAMB36E2", 0) + 0.5 * cells.get("RAMB18E2", 0),
        "URAM": cells.get("URAM288", 0),
        "LUT logic": logic,
        "LUT as memory": lutram + srl,
    }
    known = set(_LOGIC_LUTS) | set(_LUTRAM_LUTS) | set(_SRL) | set(_FFS) | set(_FREE)
    known |= {"DSP48E2", "RAMB36E2", "RAMB18E2", "URAM288"}
    for name in ("LUT6_2", "CARRY4", "CARRY8", "MUXF7", "MUXF8", "MUXF9"):
        if cells.get(name):
            out[name] = cells[name]
    for name in sorted(set(cells) - known - set(out)):
        out[name] = cells[name]
    return out
