"""The lookup engine through the AXI4 top's second master (``m_axi_lk``, :mod:`rtl.lookup.axi`)
under Icarus and Verilator: GATHER (modes 0 and 1), HASH + GATHER memory layers and SCATTERs
with repeated rows, some tables at addresses where every row spans two bus words and one
crosses a 4 KiB page.

- ``cocotbext.axi.AxiRam`` on both masters (one memory) with random pauses on every channel:
  outputs bit-equal to hwsim functional mode, no stray byte written;
- the bench's fixed-latency slave (one beat a cycle shared by reads and writes): the same, and
  every GATHER's and SCATTER's duration (start to done) equal to hwsim's with the tier of
  :func:`rtl.lookup.axi.fixed_latency_tier` (the DMA's master stays on ``AxiRam``, whose timing
  is not hwsim's: LOAD and STORE cycles are not compared, nor therefore start cycles).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hwsim import isa
from hwsim.engine import run
from hwsim.program import Program, TensorRef
from hwsim.units.scatter_timing import scatter_run
from reports.fidelity import (
    command_end_cycles,
    gather_program_case,
    lookup_test_config,
    memory_layer_case,
    scatter_program_case,
)
from rtl.cosim import available_simulators, run_bench
from rtl.lookup.axi import fixed_latency_tier
from rtl.lookup.unit import ROW_BYTES, tag_bits

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"
PAUSE = 0.3  # AxiRam: probability of a stall per cycle and channel
LATENCY = (6, 4)  # the fixed-latency slave's read and write latencies, cycles
LOOKUP_OPS = (isa.Opcode.GATHER, isa.Opcode.SCATTER)


def _scatter_rows(tokens, chunks, pattern):
    """Rows that repeat on purpose (as ``test_lookup_cocotb``): ``runs`` (three tokens in a row
    on one row) and ``cycle3`` (a row every third token) are forwarded from a held slot;
    ``cycle5`` (a row every fifth token: with 3 chunks, 15 accesses apart, one less than the
    16-slot window of 64-byte rows) finds the previous write issued and not yet acknowledged,
    so the access waits for its B response."""
    t = np.arange(tokens)[:, None]
    offset = {"runs": (t // 3) % 2, "cycle3": t % 3, "cycle5": t % 5}[pattern]
    return np.arange(chunks) * 64 + offset


def _move_table(prog, values, name, offset):
    """``prog`` with tensor ``name`` (the table register 1 points at) moved above everything
    to ``offset`` bytes past a 64-byte boundary, placed so that a row the program reads crosses
    a 4 KiB page."""
    ref = prog.tensors[name]
    rb = ref.nbytes // ref.shape[0]
    page = -(-(prog.dram_bytes + ref.nbytes + 2 * rb) // 4096) * 4096 + 4096
    for row in values["R"].flat:  # the first row that can start c bytes before the page
        c = -(offset + int(row) * rb) % 64
        if 0 < c < rb:
            break
    else:
        raise AssertionError("no row of the program can cross a page at this offset")
    addr = page - c - int(row) * rb
    assert addr % 64 == offset and addr >= prog.dram_bytes
    cmds = [dataclasses.replace(c, value=addr)
            if isinstance(c, isa.SetReg) and c.reg == 1 else c for c in prog.commands]
    tensors = {**prog.tensors, name: TensorRef(addr, ref.shape, ref.dtype)}
    return Program(cmds, addr + ref.nbytes, tensors, prog.inputs, prog.outputs)


def _cases(config, rng):
    """(label, program, values, outputs, (rows, h, tier) of a SCATTER or None)."""
    cases = []
    for t, k, h, tier in [(3, 4, 16, 0), (2, 5, 32, 1), (1, 1, 32, 2)]:
        prog, values = gather_program_case(config, t, k, h, rng, tier=tier)
        cases.append((f"GATHER {t}x{k} h={h} tier {tier}", prog, values, ("Y",), None))
    for t, k, h, tier in [(3, 4, 16, 0), (2, 3, 32, 3)]:
        prog, values = gather_program_case(config, t, k, h, rng, tier=tier, mode=1)
        cases.append((f"GATHER mode 1 {t}x{k} h={h}", prog, values, ("Y",), None))
    for t, d, h, tau, official, temp, tier in [(3, 16, 16, 4, False, 1.0, 0),
                                              (2, 24, 32, 8, True, 1.0, 1)]:
        prog, values = memory_layer_case(config, t, d, h, tau, rng, official=official, t=temp,
                                         tier=tier)
        cases.append((f"memory layer {t}x{d} h={h} tau={tau}", prog, values, ("R", "P", "Y"),
                      None))
    for t, k, h, tier, pattern in [(12, 2, 8, 0, "runs"), (10, 3, 16, 2, "cycle3"),
                                   (10, 3, 16, 3, "cycle5")]:
        rows = _scatter_rows(t, k, pattern)
        prog, values = scatter_program_case(config, rows, h, rng, tier=tier)
        cases.append((f"SCATTER {t}x{k} h={h} {pattern}", prog, values, ("G",),
                      (rows, h, tier)))
    # rows across bus words (two beats each, or every other one) and one across a page
    prog, values = gather_program_case(config, 3, 4, 32, rng, tier=1)
    cases.append(("GATHER h=32 table at 32 mod 64", _move_table(prog, values, "T", 32),
                  values, ("Y",), None))
    prog, values = gather_program_case(config, 4, 3, 16, rng, tier=0, mode=1)
    cases.append(("GATHER mode 1 h=16 table at 48 mod 64", _move_table(prog, values, "T", 48),
                  values, ("Y",), None))
    rows = _scatter_rows(10, 3, "cycle5")
    prog, values = scatter_program_case(config, rows, 16, rng, tier=2)
    cases.append(("SCATTER h=16 cycle5 table at 32 mod 64", _move_table(prog, values, "G", 32),
                  values, ("G",), (rows, 16, 2)))
    return cases


def _run(sim, config, cases, memory, pause, seed):
    bus = config.dram.bus_bytes
    mem_bytes = -(-(max(p.dram_bytes for _, p, *_ in cases) + 2 * ROW_BYTES) // 4096) * 4096
    spec = {"bus_bytes": bus, "mem_bytes": mem_bytes, "seed": seed, "max_cycles": 200_000,
            "lookup": {"memory": memory, "bus_bytes": ROW_BYTES,
                       "read_latency": LATENCY[0], "write_latency": LATENCY[1]},
            "programs": [{"words": [f"{isa.encode(c):x}" for c in p.commands],
                          "dram": p.dram_image(v).tobytes().hex(), "pause": pause}
                         for _, p, v, *_ in cases]}
    return run_bench(sim, config, spec, tag=f"lookup-axi-{memory}-seed{seed}",
                     build_root=BUILD, module="axi_bench", port="axi4")


def _check_values(where, prog, config, values, outputs, got):
    """Outputs bit-equal to hwsim functional mode and nothing else written; the lookup bursts
    legal (aligned, no 4 KiB crossing) and carrying the command's tier on AxUSER."""
    assert got["error"] == 0 and got["axi_error"] == 0, f"{where}: error flags"
    model = run(prog, config, "functional", inputs=values)
    dram = np.frombuffer(bytes.fromhex(got["dram"]), np.uint8).copy()
    for name in outputs:
        np.testing.assert_array_equal(prog.tensors[name].read(dram.copy()).view(np.uint8),
                                      model.outputs[name].view(np.uint8),
                                      err_msg=f"{where}: {name} RTL vs hwsim")
    want = prog.dram_image(values)
    for name in prog.outputs:
        prog.tensors[name].write(want, model.outputs[name])
    np.testing.assert_array_equal(dram, want, err_msg=f"{where}: stray writes")
    tiers = {c.tier for c in prog.commands if c.OPCODE in LOOKUP_OPS}
    for addr, blen, _, user in got["lk_ar"] + got["lk_aw"]:
        assert addr % ROW_BYTES == 0, f"{where}: burst at {addr:#x}"
        assert addr // 4096 == (addr + (blen + 1) * ROW_BYTES - 1) // 4096, where
        assert user in tiers, f"{where}: AxUSER {user} is not a command's tier {tiers}"


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_lookup_through_axi_with_random_pauses_matches_hwsim(sim):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = lookup_test_config("tiny")
    cases = _cases(config, np.random.default_rng(11))
    results = _run(sim, config, cases, "axiram", PAUSE, seed=11)
    manifest = json.loads(next((BUILD / "cocotb").glob(
        f"{sim}-{config.name}-{config.key()}-axi4/src/manifest.json")).read_text())
    assert manifest["axi4"]["lookup"]["data_bits"] == 8 * ROW_BYTES
    assert any(s.startswith("GATHER") for s in manifest["supported"])
    bursts = []
    for (label, prog, values, outputs, _), got in zip(cases, results, strict=True):
        _check_values(f"{sim} AxiRam {label}", prog, config, values, outputs, got)
        bursts += got["lk_ar"] + got["lk_aw"]
    # the moved tables gave two-beat rows and rows split at a page into two bursts
    assert any(blen == 1 for _, blen, _, _ in bursts)
    assert any(blen == 0 and (a + ROW_BYTES) % 4096 == 0 for a, blen, _, _ in bursts)


def _table_memory_run(sim, config, timed, cases, seed):
    """The same programs on the simple-port top (the build ``test_lookup_cocotb`` uses), its
    table memory hwsim's tier model of ``timed`` request by request
    (:class:`rtl.cosim.accel_bench.TableMemory`)."""
    spec = {"latency": config.dram_latency_cycles, "bus_bytes": config.dram.bus_bytes,
            "bytes_per_cycle": config.dram_bytes_per_cycle, "seed": seed,
            "lookup": {"tiers": [dataclasses.asdict(t) for t in timed.lookup.tiers],
                       "clock_mhz": config.clock_mhz, "tag_bits": tag_bits()},
            "programs": [{"words": [f"{isa.encode(c):x}" for c in p.commands],
                          "dram": p.dram_image(v).tobytes().hex()} for _, p, v, *_ in cases]}
    return run_bench(sim, config, spec, tag=f"lookup-axi-tier-seed{seed}", build_root=BUILD)


def _durations(prog, got, starts):
    """Unit cycles (start to done) of each GATHER and SCATTER: ``starts`` their start cycles."""
    ends = command_end_cycles(prog, [tuple(r) for r in got["retires"]])
    lookups = [i for i, c in enumerate(prog.commands) if c.OPCODE in LOOKUP_OPS]
    assert len(starts) == len(lookups)
    return {i: ends[i] - s + 1 for i, s in zip(lookups, starts, strict=True)}


ENGINE_GAPS: dict[str, int] = {}
"""Cases where the engine takes more cycles than hwsim with this fast tier, and by how many:
none. (GATHER mode 1 and SCATTER load token 0's dY before their first row request, which hwsim
times, :func:`hwsim.units.lookup.dy_preload`; before that a fast tier answered the first row
before dY had landed and the lanes waited a cycle.)"""


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_lookup_through_fixed_latency_axi_takes_hwsim_tier_cycles(sim):
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = lookup_test_config("tiny")
    cases = _cases(config, np.random.default_rng(12))
    timed = config.replace(lookup=dataclasses.replace(config.lookup, tiers=tuple(
        fixed_latency_tier(config.clock_mhz, ROW_BYTES, *LATENCY, name=t.name)
        for t in config.lookup.tiers)))  # one master serves every tier
    results = _run(sim, config, cases, "fixed", 0.0, seed=12)
    stalled = _run(sim, config, cases, "fixed", PAUSE, seed=13)
    reference = _table_memory_run(sim, config, timed, cases, seed=12)
    hazards = np.zeros(2, np.int64)
    rows_out, gaps = [], {}
    for (label, prog, values, outputs, scatter), got, got_stalled, ref in zip(
            cases, results, stalled, reference, strict=True):
        where = f"{sim} fixed-latency AXI {label}"
        _check_values(where, prog, config, values, outputs, got)
        _check_values(f"{where} with stalls", prog, config, values, outputs, got_stalled)
        model = run(prog, timed, "functional", inputs=values)
        rtl = _durations(prog, got, [rise - 1 for rise in got["lk_starts"]])
        simple = _durations(prog, ref, [model.stats.start_cycles[i] for i in sorted(rtl)])
        assert ref["accept"] == model.stats.accept_cycles, f"{where}: simple port's accepts"
        for i, cycles in rtl.items():
            hw = model.stats.retire_cycles[i] - model.stats.start_cycles[i] + 1
            op = prog.commands[i].OPCODE.name
            rows_out.append((label, op, hw, simple[i], cycles))
            # the bridge and the slave add exactly what the tier model says
            assert cycles == simple[i], f"{where}: {op} takes {cycles} cycles over AXI, " \
                                        f"{simple[i]} under hwsim's tier model"
            if cycles != hw:
                gaps[label] = cycles - hw
        if scatter is not None:
            hazards += scatter_run(timed, scatter[0], scatter[1], scatter[2])[5:7]
    print(f"\n{sim}: lookup commands behind a fixed-latency AXI slave (read {LATENCY[0]}, "
          f"write {LATENCY[1]} cycles), unit cycles")
    print(f"{'program':<42}{'op':<9}{'hwsim':>7}{'simple':>7}{'AXI':>7}")
    for label, op, *nums in rows_out:
        print(f"{label:<42}{op:<9}" + "".join(f"{x:>7}" for x in nums))
    assert gaps == ENGINE_GAPS, f"RTL vs hwsim cycle gaps {gaps}, known {ENGINE_GAPS}"
    forwarded, waited = hazards
    assert forwarded > 0 and waited > 0, f"hazards not provoked: {forwarded=} {waited=}"
