"""The array unit: GEMM tiles on an R x C systolic array (model: :mod:`hwsim.units.array`).

- :mod:`.unit`: :class:`ArrayUnit`, the unit the controller dispatches GEMM to: it feeds the
  array from the ACT, WGT and IDX buffers and drains results to ACC;
- :mod:`.systolic_array`: :class:`SystolicArray`, the mesh of PEs, both dataflows;
- :mod:`.pe`: :class:`PE`, one multiply-accumulate cell (and :class:`PEInstance`, the same
  ports as an instance of one separately written Verilog module).
"""

from .pe import DTYPES, PE, PEInstance, operand_width
from .systolic_array import SystolicArray
from .unit import ArrayUnit, array_group

__all__ = ["DTYPES", "PE", "ArrayUnit", "PEInstance", "SystolicArray", "array_group",
           "operand_width"]
