"""The accelerator's on-chip buffers in block RAM: tile counts and what Yosys maps them to.

:func:`_buffer_blocks` counts the URAM288 or RAMB36E2 tiles a config's buffers need from their
capacity (analytical). :func:`buffer_mapping_check` synthesizes the config's buffers, shortened,
without and with ``ram_style="ultra"`` (Yosys maps a memory to URAM288 only when it asks for
it, or under ``-uram``) and scales the counts to full depth, for the report's buffer section.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from amaranth.back import verilog

from hwsim import isa
from hwsim.config import AcceleratorConfig, load_config

from ..buffers import BufferMemory
from .resources import _check_part
from .run import _options, _synthesize_text

__all__ = ["buffer_mapping_check"]

_URAM_SHAPE = (72, 4096)  # URAM288: 4K x 72
_BRAM_SHAPE = (72, 512)   # RAMB36E2 in its widest simple-dual-port mode: 512 x 72
_URAM_ROWS = _URAM_SHAPE[1]

_BUFFERS = ("act", "wgt", "acc", "idx", "vec")


def _buffer_shapes(config: AcceleratorConfig) -> dict[str, tuple[int, int]]:
    """(width bits, depth) of each on-chip buffer of the accelerator."""
    return {"act": (config.act_entry_bytes * 8, config.act_depth),
            "wgt": (config.wgt_entry_bytes * 8, config.wgt_depth),
            "acc": (config.acc_entry_bytes * 8, config.acc_depth),
            "idx": (config.idx_entry_bytes * 8, config.idx_depth),
            "vec": (config.vec_entry_bytes * 8, config.vec_depth)}


def _buffer_blocks(config: AcceleratorConfig, shape: tuple[int, int],
                   buffers: tuple[str, ...] = _BUFFERS) -> int:
    """Blocks of ``shape`` (width, depth) tiling ``buffers``, one port pair each.

    ``buffers`` names those counted, of ``act``, ``wgt``, ``acc`` (the array's), ``idx`` (the
    SORE's index entries) and ``vec`` (the vector engine's scratch).
    """
    w, d = shape
    shapes = _buffer_shapes(config)
    return sum(math.ceil(shapes[b][0] / w) * math.ceil(shapes[b][1] / d) for b in buffers)


def buffer_mapping_check(config: str | AcceleratorConfig, out_dir: str | Path, *,
                         depth: int = 4096, styles: tuple[str | None, ...] = (None, "ultra"),
                         buffers: tuple[str, ...] = _BUFFERS, part: str = "xcvu9p",
                         timeout_s: float | None = None, reuse: bool = False) -> dict:
    """Synthesize the config's on-chip buffers, shortened to ``depth`` entries, under each
    ``ram_style``, and scale what they map to up to the full depth.

    Each buffer is built as :class:`rtl.accelerator.Accelerator` builds it
    (:class:`rtl.buffers.BufferMemory`: ACT banked over the array's activation group, ACC with
    two read ports) but with ``min(depth, its depth)`` entries, since Amaranth writes each
    entry's zero init into the Verilog and Yosys reads a MiB-scale buffer for many minutes.
    The runs are one at a time (``out_dir/buf_NAME_STYLE/``; ``STYLE`` is ``default`` for
    ``None``).

    Scaling to the full depth: URAM288 holds 4,096 rows, so the URAM count is multiplied by
    ``ceil(full rows / 4096) / ceil(rows / 4096)`` (exact while the shortened buffer is at
    most one URAM deep and Yosys tiles depth in whole URAMs); the BRAM36 count by
    ``full rows / rows`` (a RAMB36E2 holds 36 Kbit in any aspect ratio; an estimate). LUTs and
    FFs are not scaled: the read multiplexers over the deeper tiles are not measured.

    Parameters
    ----------
    config : str or AcceleratorConfig
        A preset name, a YAML path or a config.
    out_dir : str or Path
        One subdirectory per run; ``buffer_check.json`` (the returned dict) at the top.
    depth : int
        Entries each buffer is synthesized with (its own depth if smaller).
    styles : tuple of str or None
        ``ram_style`` values (:class:`~rtl.buffers.BufferMemory`); ``None``: no attribute,
        the RTL as the accelerator builds it today.
    buffers : tuple of str
        Of ``act``, ``wgt``, ``acc``, ``idx``, ``vec``.
    part : str
        A key of :data:`~rtl.synth.resources.DEVICES`.
    timeout_s : float, optional
        Per-run Yosys time limit.
    reuse : bool
        Take a run's ``result.json`` when it was made from the same Verilog, part and flow.

    Returns
    -------
    dict
        ``config``, ``part``, ``depth``, ``yosys_version`` and ``rows``: per buffer and style
        its shape (``width``, ``entries``, ``full_depth``, ``read_ports``, ``banks``, memory
        ``rows``/``full_rows`` and ``row_bits``), the measured ``LUT``, ``FF``, ``BRAM36``,
        ``URAM`` and ``runtime_s``, ``URAM_full``/``BRAM36_full`` (scaled) and the analytical
        ``URAM_analytical``/``BRAM36_analytical`` of the full-depth buffer.

    Raises
    ------
    ValueError
        An unknown buffer or part, or ``depth`` not a positive integer.
    SynthError
        A run failed.
    """
    config = load_config(config)
    _check_part(part)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    unknown = [b for b in buffers if b not in _BUFFERS]
    if unknown or not buffers:
        raise ValueError(f"buffers must name some of {list(_BUFFERS)}, not {buffers!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_out, version = [], ""
    for name in buffers:
        width, entries, ports, banks = _buffer_build(config, name, depth)
        for style in styles:
            top = f"buf_{name}_{re.sub(r'[^A-Za-z0-9_]', '_', style or 'default')}"
            extra = {k: v for k, v in _built(config, name).items()
                     if k in ("group", "write_lanes")}
            text = verilog.convert(BufferMemory(width, entries, read_ports=ports, banks=banks,
                                                ram_style=style, **extra),
                                   name=top, emit_src=False)
            r, _ = _synthesize_text(text, top=top, out_dir=out / top, part=part,
                                    timeout_s=timeout_s, reuse=reuse)
            version = version or r.yosys_version
            rows_out.append(_buffer_row(config, name, depth, style, r.resources, r.runtime_s))
    data = {"config": config.name, "config_key": config.key(), "part": part, "depth": depth,
            "yosys_version": version, "options": list(_options()), "rows": rows_out}
    (out / "buffer_check.json").write_text(json.dumps(data, indent=2))
    return data


def _buffer_build(config: AcceleratorConfig, name: str, depth: int
                  ) -> tuple[int, int, int, int]:
    """``(width, entries, read_ports, banks)`` of buffer ``name`` as ``Accelerator`` builds
    it (:func:`rtl.accelerator.buffer_shapes`), with at most ``depth`` entries."""
    width, full = _buffer_shapes(config)[name]
    shape = _built(config, name)
    return (width, min(depth, full), shape.get("read_ports", 1), shape.get("banks", 1))


def _built(config: AcceleratorConfig, name: str) -> dict:
    """:func:`rtl.accelerator.buffer_shapes`' arguments of buffer ``name``."""
    from ..accelerator import buffer_shapes

    return buffer_shapes(config)[isa.Buffer[name.upper()]]


def _buffer_row(config: AcceleratorConfig, name: str, depth: int, style: str | None,
                resources: dict[str, float], runtime_s: float) -> dict:
    """One row of :func:`buffer_mapping_check`: the buffer's shape, what the run measured and
    its scaling to the full depth."""
    width, entries, ports, banks = _buffer_build(config, name, depth)
    full = _buffer_shapes(config)[name][1]
    rows, full_rows = -(-entries // banks), -(-full // banks)
    uram_scale = math.ceil(full_rows / _URAM_ROWS) / math.ceil(rows / _URAM_ROWS)
    return {
        "buffer": name, "ram_style": style, "width": width, "entries": entries,
        "full_depth": full, "read_ports": ports, "banks": banks, "rows": rows,
        "full_rows": full_rows, "row_bits": width * banks,
        **{k: resources[k] for k in ("LUT", "FF", "BRAM36", "URAM")},
        "runtime_s": runtime_s,
        "URAM_full": resources["URAM"] * uram_scale,
        "BRAM36_full": resources["BRAM36"] * full_rows / rows,
        "URAM_analytical": _buffer_blocks(config, _URAM_SHAPE, (name,)),
        "BRAM36_analytical": _buffer_blocks(config, _BRAM_SHAPE, (name,)),
    }


def _by_style(rows: list[dict]) -> dict[str | None, list[dict]]:
    """Buffer-check rows grouped by ``ram_style``, styles in the order the check ran them."""
    out: dict[str | None, list[dict]] = {}
    for r in rows:
        out.setdefault(r["ram_style"], []).append(r)
    return out


def _checked_mapping(check: dict | None, key: str) -> tuple[str | None, list[dict] | None]:
    """The ``ram_style`` and the buffer-check rows that put every buffer wholly in ``key``
    (``"URAM"`` or ``"BRAM36"``), the first style that does; ``(None, None)`` if none does."""
    if not check:
        return None, None
    other = "BRAM36" if key == "URAM" else "URAM"
    for style, rows in _by_style(check["rows"]).items():
        if ({r["buffer"] for r in rows} == set(_BUFFERS)
                and all(r[key] > 0 and r[other] == 0 for r in rows)):
            return style, rows
    return None, None


def _rekeyed_check(config: AcceleratorConfig, check: dict) -> dict | None:
    """A buffer check of an earlier key of ``config`` (same name) made today's, if every buffer
    it synthesized has today's shape (width, depth, read ports, banks); else None."""
    config = load_config(config)
    if check.get("config") != config.name:
        return None
    for r in check["rows"]:
        width, entries, ports, banks = _buffer_build(config, r["buffer"], check["depth"])
        if ((r["width"], r["entries"], r["read_ports"], r["banks"], r["full_depth"])
                != (width, entries, ports, banks, _buffer_shapes(config)[r["buffer"]][1])):
            return None
    return {**check, "config_key": config.key()}
