"""Verilog generation: the design plus a manifest of the parameters it was built with."""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from hwsim import isa
from hwsim.config import AcceleratorConfig

from .accelerator import Accelerator
from .array_unit import array_group
from .pe import PE

__all__ = ["PE_NAME", "TOP_NAME", "write_verilog"]

TOP_NAME = "satmem_top"
PE_NAME = f"{TOP_NAME}_pe"


def write_verilog(config: AcceleratorConfig, out_dir: str | Path) -> Path:
    """Write ``satmem_top.v`` and ``manifest.json`` for ``config`` into ``out_dir``.

    The manifest records the config (and its hash), the port list, the ISA word width and the
    per-command cycle expressions the RTL implements, so a board bring-up can check what it
    holds. Re-running with the same config rewrites identical files.

    The array's R x C cells all instantiate one PE module, ``satmem_top_pe``, written once at
    the end of the file (Amaranth alone would emit a renamed copy per cell): simulators and
    synthesis compile it once, and the netlist keeps the array's regular structure.

    Returns
    -------
    Path
        The Verilog file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = Accelerator(config, pe_module=PE_NAME)
    text = verilog.convert(top, name=TOP_NAME, emit_src=False)
    pe = PE(config.array.dtype, array_group(config))
    text += verilog.convert(pe, name=PE_NAME, emit_src=False)
    vpath = out / f"{TOP_NAME}.v"
    _write_if_changed(vpath, text)
    R, C = config.array.rows, config.array.cols
    manifest = {
        "top": TOP_NAME,
        "pe_module": PE_NAME,
        "config_name": config.name,
        "config_key": config.key(),
        "config": config.to_dict(),
        "isa_word_bits": isa.WORD_BITS,
        "ports": {name: str(member) for name, member in top.signature.members.items()},
        "buffers": {"act": [R * 8, config.act_depth], "wgt": [C * 8, config.wgt_depth],
                    "acc": [C * 32, config.acc_depth]},
        "controller": {"queue_depth": config.queue_depth, "semaphores": isa.NUM_SEMAPHORES,
                       "model": "hwsim.schedule (decoupled units, point-to-point semaphores)"},
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
        "supported": ["LOAD", "STORE", f"GEMM(dense, os|ws, {config.array.dtype})",
                      "PRUNE(axis 1)" if config.array.patterns else "PRUNE: no patterns",
                      "UPDATE(SGD, SGD momentum)", "SETREG", "SYNC"],
    }
    _write_if_changed(out / "manifest.json", json.dumps(manifest, indent=2))
    return vpath


def _write_if_changed(path: Path, text: str) -> None:
    """Keep the file (and its mtime, so simulator builds stay cached) when nothing changed."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
