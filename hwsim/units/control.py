"""The controller's own commands: SETREG (write a register) and SYNC (a fence).

Both execute in the controller, not on a unit queue (:mod:`hwsim.schedule`: the controller
stops accepting, waits until every unit is idle and its ``wait`` semaphores are positive, and
retires the command that cycle): one cycle each. RTL: ``rtl/controller.py``.
"""

from __future__ import annotations

import numpy as np

from .. import isa
from . import UnitModel, UnitTiming

__all__ = ["ControlModel"]


class ControlModel(UnitModel):
    """SETREG and SYNC (module docstring)."""

    name = "control"
    opcodes = (isa.Opcode.SETREG, isa.Opcode.SYNC)

    def execute(self, cmd, machine, config):
        if cmd.OPCODE == isa.Opcode.SETREG:
            machine.regs[cmd.reg] = cmd.value

    def cycles(self, rows, config):
        return UnitTiming(np.ones(len(rows), np.int64))
