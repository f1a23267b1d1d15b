"""Verilog generation: the design plus a manifest of the parameters it was built with."""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.dram import channel_interleave

from .accelerator import Accelerator, buffer_shapes, top_units
from .array import PE, array_group
from .axi import AXI_ADDR_BITS, AXI_CACHE, AXI_PREFIX, AxiAccelerator
from .decode import unit_opcodes
from .manifest import supported_commands, supported_summary

__all__ = ["PE_NAME", "PORTS", "TOP_NAME", "write_verilog"]

TOP_NAME = "satmem_top"
PE_NAME = f"{TOP_NAME}_pe"
PORTS = ("simple", "axi4")  # memory port kinds: rtl.dma's simple port, or an AXI4 master


def write_verilog(config: AcceleratorConfig, out_dir: str | Path, *,
                  port: str = "simple", lookup: bool = True) -> Path:
    """Write ``satmem_top.v`` and ``manifest.json`` for ``config`` into ``out_dir``.

    ``port`` picks the memory port: ``"simple"`` writes :class:`~rtl.accelerator.Accelerator`
    (the request/response port of :mod:`rtl.dma`), ``"axi4"`` writes
    :class:`~rtl.axi.AxiAccelerator` (AXI4 masters: ``m_axi_*`` for the DMA, or one
    ``m_axi_ch<c>_*`` per DRAM channel when ``dram.channels > 1`` (:mod:`rtl.channels`), and,
    with the lookup engine, ``m_axi_lk_*`` for its table memory). The top module is ``satmem_top``
    either way; the manifest records which (``"port"``). ``lookup=False`` leaves the lookup
    engine (and its master) out: a SAT-only top.

    The manifest records the config (and its hash), the memory port and the top's port list,
    the ISA word width, the buffers (``[width in bits, entries]`` by ``isa.Buffer``), the
    controller's queue depth and semaphores, the unit queues and their opcodes
    (:data:`rtl.accelerator.UNITS`), the commands it supports (``supported``, one line each,
    and ``commands``, with dataflows, N:M patterns, datatypes and modes:
    :func:`rtl.manifest.supported_commands`) and their cycle expressions
    and, for ``"axi4"``, the AXI4 master's parameters, so a board bring-up can check what it
    holds.
    Re-running with the same config leaves identical files untouched.

    The array's R x C cells all instantiate one PE module, ``satmem_top_pe``, written once at
    the end of the file (Amaranth alone would emit a renamed copy per cell): simulators and
    synthesis compile it once, and the netlist keeps the array's regular structure.

    Returns
    -------
    Path
        The Verilog file.

    Raises
    ------
    ValueError
        Unknown ``port``.
    """
    if port not in PORTS:
        raise ValueError(f"port must be one of {PORTS}, not {port!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if port == "axi4":
        top = AxiAccelerator(config, pe_module=PE_NAME, lookup=lookup)
    else:
        top = Accelerator(config, pe_module=PE_NAME, lookup=lookup)
    text = verilog.convert(top, name=TOP_NAME, emit_src=False)
    pe = PE(config.array.dtype, array_group(config))
    text += verilog.convert(pe, name=PE_NAME, emit_src=False)
    vpath = out / f"{TOP_NAME}.v"
    _write_if_changed(vpath, text)
    R, C = config.array.rows, config.array.cols
    commands = supported_commands(config, lookup)
    manifest = {
        "top": TOP_NAME,
        "pe_module": PE_NAME,
        "config_name": config.name,
        "config_key": config.key(),
        "config": config.to_dict(),
        "isa_word_bits": isa.WORD_BITS,
        "port": port,
        "ports": {name: str(member) for name, member in top.signature.members.items()},
        "buffers": {code.name.lower(): [shape["width"], shape["depth"]]
                    for code, shape in buffer_shapes(config).items()},
        "controller": {"queue_depth": config.queue_depth, "semaphores": isa.NUM_SEMAPHORES,
                       "model": "hwsim.schedule (decoupled units, point-to-point semaphores)"},
        "units": {slot.name: [op.name for op in unit_opcodes(slot.unit)]
                  for slot in top_units(config, lookup)},
        "unit_cycles": {
            "gemm_os": f"k + {2 * R + C + 1}",
            "gemm_ws": f"k + m + {R + C + 1}",
            "load": f"rows * slots + {config.dram_latency_cycles + 1} (2 if rows == 0)",
            "store": "rows * slots + 2 (2 if rows == 0)",
            "slots": "ceil(bytes per request / dram bytes per cycle)",
            "prune": f"rows * ceil({C} / {config.sore.lanes}) + n + 3 (2 if rows == 0)",
            "update": f"P * ceil(count / {config.vector.lanes}) + 10 - P, P = 3 (2 for SGD)",
        },
        "dram_latency_cycles": config.dram_latency_cycles,
        "supported": supported_summary(commands),
        "commands": commands,
    }
    if port == "axi4":
        manifest["axi4"] = _axi4_manifest(config, top)
        if lookup:
            lk = top.lk_bridge
            manifest["axi4"]["lookup"] = {
                "prefix": lk.prefix, "data_bits": lk.bus_bytes * 8, "addr_bits": AXI_ADDR_BITS,
                "id_bits": lk.id_width, "id": "the row-buffer tag (reads and writes complete "
                                              "in any order; R data may interleave across IDs)",
                "user_bits": lk.user_width, "user": "the command's tier (one master serves "
                                                   "every tier)",
                "max_outstanding": f"{lk.slots} reads and {lk.slots} writes (one per tag)",
                "bursts": "INCR, full width, the bus words of one row (two bursts with one ID "
                          "when the row crosses a 4 KiB page); WSTRB on the row's bytes",
                "cache": f"{AXI_CACHE:#06b}",
                "latency": f"+{lk.request_latency} cycle request to AR/AW, "
                           f"+{lk.response_latency} cycle last R beat or B to the engine",
                "requests": "one a cycle, a write before a read (lookup.request_ports = 1)",
                "timing": "a fixed-latency slave (one beat a cycle shared by reads and writes) "
                          "times lookup commands as hwsim's rtl.lookup.axi.fixed_latency_tier",
            }
    _write_if_changed(out / "manifest.json", json.dumps(manifest, indent=2))
    return vpath


def _axi4_manifest(config: AcceleratorConfig, top: AxiAccelerator) -> dict:
    """The DMA masters' parameters: one ``m_axi`` master, or one per DRAM channel."""
    bp = top.bridge_params
    out = {
        "prefix": AXI_PREFIX, "masters": list(top.prefixes),
        "data_bits": top.master_bytes * 8, "addr_bits": top.addr_bits,
        "id_bits": bp["id_width"], "id": bp["axi_id"],
        "max_outstanding_reads": bp["max_reads"],
        "max_outstanding_writes": bp["max_writes"],
        "bursts": "INCR, full width, 1 beat (2 when a request straddles a bus word; two "
                  "1-beat bursts at a 4 KiB boundary)",
        "cache": f"{AXI_CACHE:#06b}",
        "latency": "+1 cycle request to AR/AW, +1 cycle last R beat to the DMA",
        "idle": "accelerator idle and every write's B response received",
        "note": "unit_cycles and dram_latency_cycles describe hwsim's fixed-latency memory; "
                "over AXI, LOAD and STORE take what the memory takes",
    }
    if len(top.prefixes) > 1:
        g, n = channel_interleave(config), config.dram.channels
        out.update({
            "channels": n, "interleave_bytes": g,
            "channel_map": f"byte a: channel a // {g} % {n}, channel address "
                           f"a // {g} // {n} * {g} + a % {g} (hwsim.dram.channel_map); each "
                           f"master sees only its channel's addresses",
            "bursts": f"INCR, full width, one burst per piece of a request inside one {g}-byte "
                      f"chunk: up to {config.dram.bus_bytes // top.master_bytes} beats (one "
                      f"more when unaligned), never across 4 KiB",
            "latency": "+1 cycle request to the splitter, +1 cycle to AR/AW; +1 cycle last R "
                       "beat to the splitter, +1 cycle to the DMA",
        })
    return out


def _write_if_changed(path: Path, text: str) -> None:
    """Keep the file (and its mtime, so simulator builds stay cached) when nothing changed."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
