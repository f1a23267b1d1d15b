"""Co-simulation of the generated Verilog with cocotb (Icarus, Verilator)."""

from .runner import SIMULATORS, CosimError, available_simulators, run_bench, run_block

__all__ = ["SIMULATORS", "CosimError", "available_simulators", "run_bench", "run_block"]
