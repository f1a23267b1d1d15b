"""What a built top runs, for its ``manifest.json``: every command of ``hwsim.isa`` the top's
units execute, with the dataflows, N:M patterns, datatypes and modes the config and the units'
``accepts`` allow. Derived from the config, :data:`rtl.accelerator.UNITS` and ``hwsim.isa``,
so a new unit, pattern or datatype reaches the manifest without an edit here."""

from __future__ import annotations

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.units.vector import ADAM, OPTIMIZERS

from .accelerator import top_units
from .decode import unit_opcodes
from .lookup.unit import ROW_BYTES

__all__ = ["supported_commands", "supported_summary"]

# modes of the lookup engine's commands the RTL runs (rtl.lookup.unit.LookupUnit.accepts; the
# meaning of each in hwsim.isa's Hash, Gather and Scatter docstrings)
_LOOKUP_MODES = {isa.Opcode.HASH: (0, 1, 2, 3), isa.Opcode.GATHER: (0, 1),
                 isa.Opcode.SCATTER: (0, 1, 2)}


def supported_commands(config: AcceleratorConfig, lookup: bool = True,
                       row_bytes: int = ROW_BYTES) -> dict[str, dict]:
    """The commands a top of ``config`` (with or without the lookup engine) runs, by opcode
    name, each with its unit and what it takes.

    GEMM: ``dtype`` (the array's), ``dataflows`` (the config's), ``sparsity`` (``"dense"`` and
    each N:M pattern of the config), ``accumulate``. PRUNE: the patterns, ``axis`` 1, from WGT
    (the SORE exists only with patterns). UPDATE: the optimizers other than Adam (fp32 master
    weights, fp16 copy). LOAD and STORE: the buffers. HASH, GATHER, SCATTER: modes, the
    table element type and the widest row. SETREG and SYNC: the controller's.
    """
    arr = config.array
    out: dict[str, dict] = {}
    units = [(slot.unit, slot.name) for slot in top_units(config, lookup)]
    for unit, name in [(isa.Unit.CONTROL, "control"), *units]:
        for op in unit_opcodes(unit):
            entry: dict = {"opcode": int(op), "unit": name}
            if op in (isa.Opcode.LOAD, isa.Opcode.STORE):
                entry["buffers"] = [b.name for b in isa.Buffer]
            elif op == isa.Opcode.GEMM:
                entry.update(dtype=arr.dtype, accumulate_dtype="int32" if arr.dtype == "int8"
                             else "fp32", dataflows=list(arr.dataflows),
                             sparsity=["dense", *arr.patterns], accumulate=True)
            elif op == isa.Opcode.PRUNE:
                entry.update(dtype=arr.dtype, patterns=list(arr.patterns), axis=[1],
                             source="WGT")
            elif op == isa.Opcode.UPDATE:
                entry.update(dtype="fp32", copy_dtype="fp16",
                             optimizers=[v for k, v in sorted(OPTIMIZERS.items()) if k != ADAM])
            elif op in _LOOKUP_MODES:
                entry.update(modes=list(_LOOKUP_MODES[op]), element=config.lookup.element,
                             max_row_bytes=row_bytes)
            out[op.name] = entry
    return dict(sorted(out.items(), key=lambda item: item[1]["opcode"]))


def supported_summary(commands: dict[str, dict]) -> list[str]:
    """One line per command of :func:`supported_commands`, e.g. ``"GEMM(dense|2:4, os|ws,
    fp16)"``."""
    lines = []
    for name, c in commands.items():
        if name == "GEMM":
            lines.append(f"GEMM({'|'.join(c['sparsity'])}, {'|'.join(c['dataflows'])}, "
                         f"{c['dtype']})")
        elif name == "PRUNE":
            lines.append(f"PRUNE({'|'.join(c['patterns'])}, axis 1, {c['dtype']})")
        elif name == "UPDATE":
            lines.append(f"UPDATE({', '.join(c['optimizers'])})")
        elif "modes" in c:
            lines.append(f"{name}(modes {', '.join(map(str, c['modes']))}, {c['element']} "
                         f"rows up to {c['max_row_bytes']} B)")
        else:
            lines.append(name)
    return lines
