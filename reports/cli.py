"""The ``satmem`` command line.

Every user error (unknown preset, bad shape, unreadable file, unsupported option) ends in one
line on stderr and exit status 2; nothing prints a traceback unless ``SATMEM_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout

__all__ = ["main"]

EXIT_USAGE = 2


class UsageError(Exception):
    """A user mistake the CLI reports in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise UsageError(message)


def _int_at_least(low: int, what: str):
    """An argparse type: an integer >= ``low``, or one clear line."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = low - 1
        if v < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonneg_int = _int_at_least(0, "a non-negative integer")


def _positive_ints(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive integers ('' for none)."""
    return tuple(_positive_int(x.strip()) for x in text.split(",") if x.strip())


def _config(spec: str):
    from hwsim.config import load_config

    return load_config(spec)


@contextmanager
def _progress(args, *, log: bool = False) -> Iterator:
    """The command's ``progress`` (:func:`reports.progress.progress_for`: a bar on a terminal,
    None with ``--quiet`` or when stderr is not a terminal; ``log``: plain lines then). While
    a bar is drawn, what the command prints is held back and printed after the bar closes,
    so results never land in the middle of a bar."""
    from reports.progress import ProgressBar, progress_for

    bar = progress_for(getattr(args, "quiet", False), log=log)
    if not isinstance(bar, ProgressBar):
        yield bar
        return
    held = io.StringIO()
    try:
        with redirect_stdout(held):
            yield bar
    finally:
        bar.close()
        sys.stdout.write(held.getvalue())
        sys.stdout.flush()


# --- commands -------------------------------------------------------------------------------

def cmd_info(args) -> int:
    cfg = _config(args.config)
    if args.json:
        print(json.dumps({"config": cfg.to_dict(), "derived": _derived(cfg)}, indent=2))
        return 0
    print(f"# satmem config {cfg.name!r} (key {cfg.key()})")
    print(cfg.to_yaml(), end="")
    print("# derived")
    for k, v in _derived(cfg).items():
        print(f"{k}: {v}")
    return 0


def _derived(cfg) -> dict:
    return {
        "pes": cfg.array.pes,
        "peak_macs_per_cycle": cfg.peak_macs_per_cycle,
        "peak_tops": round(cfg.peak_macs_per_cycle * 2 * cfg.clock_mhz * 1e6 / 1e12, 4),
        "act_depth_entries": cfg.act_depth,
        "wgt_depth_entries": cfg.wgt_depth,
        "acc_depth_entries": cfg.acc_depth,
        "dram_latency_cycles": cfg.dram_latency_cycles,
        "dram_bytes_per_cycle": round(cfg.dram_bytes_per_cycle, 3),
    }


def cmd_simulate_gemm(args) -> int:
    from dataflow import simulate_gemm

    cfg = _config(args.config)
    chrome = args.trace is not None and args.trace.lower().endswith(".json")
    trace = f"{args.trace}.csv.partial" if chrome else args.trace
    stats = simulate_gemm(args.m, args.n, args.k, cfg, dataflow=args.dataflow, mode=args.mode,
                          sparsity=args.sparsity, trace=trace,
                          max_commands=args.max_commands, max_macs=args.max_macs,
                          mapping=None if args.mapping == "default" else args.mapping,
                          extrapolate=False if args.no_extrapolate else None)
    if chrome:  # FILE.json: the Chrome/Perfetto trace-event format, one track per unit
        from pathlib import Path

        from hwsim.trace import csv_to_chrome_trace

        csv_to_chrome_trace(trace, args.trace, cfg.clock_mhz,
                            process=f"GEMM {args.m}x{args.n}x{args.k} on {cfg.name}")
        Path(trace).unlink()
    seconds = stats.cycles / (cfg.clock_mhz * 1e6)
    if args.json:
        out = {"config": cfg.name, "config_key": cfg.key(), "m": args.m, "n": args.n,
               "k": args.k, "dataflow": args.dataflow, "mode": args.mode,
               "seconds": seconds, **stats.to_dict(),
               "energy_sram_pj_by_buffer": stats.energy_sram_pj_by_buffer}
        print(json.dumps(out, indent=2))
        return 0
    print(f"GEMM {args.m}x{args.n}x{args.k} on {cfg.name} ({args.dataflow}, {args.mode})")
    print(f"  cycles       {stats.cycles:,}  ({seconds * 1e6:,.2f} us at {cfg.clock_mhz:g} MHz)")
    print(f"  utilisation  {stats.utilisation:.1%}  ({stats.macs:,} MACs on {cfg.array.pes} PEs)")
    print(f"  DRAM bytes   read {stats.bytes['dram_read']:,}  write {stats.bytes['dram_write']:,}")
    print(f"  energy       {stats.energy_total_pj / 1e6:,.3f} uJ  "
          + _energy_text(stats.energy_pj, "  "))
    if stats.extrapolated is not None:
        print("  " + _extrapolated_text(stats.extrapolated, stats.cycles))
    return 0


def _extrapolated_text(x: dict, cycles: int) -> str:
    """One line on how an extrapolated GEMM was timed (``Stats.extrapolated``)."""
    loops = ", ".join(f"{name} {count:,} iterations from {sim} simulated"
                      for name, (count, sim, _) in x["loops"].items())
    if x["exact"]:
        how = "steady state checked: exact"
    else:
        bound = x["bound"].get("cycles", 0)
        how = (f"no steady state (DRAM rows): approximate, cycles +-{bound:,} "
               f"({bound / max(cycles, 1):.2%}) by the sampled windows")
    return f"extrapolated, not simulated in full: loop {loops} ({x['runs']} runs); {how}"


def _compile_options(args):
    from dataflow import CompileOptions

    return CompileOptions(objective=args.objective,
                          interleave=not args.no_interleave,
                          pregenerate=not args.no_pregenerate,
                          offline_schedule=not args.no_offline_schedule,
                          table_optimizer=args.table_optimizer,
                          max_commands=getattr(args, "max_commands", None))


def _check_phase(args) -> None:
    """One line naming the option for a phase, sequence or context the model does not take."""
    from dataflow.simulate import model_phases

    phases = model_phases(args.model)  # an unknown model: ValueError, one line
    if args.phase not in phases:
        raise UsageError(f"--phase {args.phase} is for the language models (pythia70m, "
                         f"memoryformer_*); {args.model} has only phase"
                         f"{'s' if len(phases) > 1 else ''} {', '.join(map(repr, phases))}")
    if args.seq_len is not None and len(phases) == 1:
        raise UsageError(f"--seq-len is for the language models (pythia70m, memoryformer_*), "
                         f"not {args.model}")
    if args.context is not None and args.phase != "decode":
        raise UsageError(f"--context is the KV cache of --phase decode, not --phase "
                         f"{args.phase}")


def _energy_text(energy: dict, sep: str) -> str:
    """Components in microjoules, the SRAM buffers' nonzero parts in brackets after ``sram``
    (they are part of it, not more components)."""
    from hwsim.energy import is_part

    def part(k: str) -> str:
        return k[len("sram_"):] if k.startswith("sram_") else k

    out = []
    for k, v in energy.items():
        if is_part(k):
            continue
        text = f"{k} {v / 1e6:,.3f}"
        if k == "sram":
            parts = [f"{part(p)} {w / 1e6:,.3f}" for p, w in energy.items() if is_part(p) and w]
            text += f" ({', '.join(parts)})" if parts else ""
        out.append(text)
    return sep.join(out)


def _model_lines(res) -> list[str]:
    """Energy by component, bytes by memory level and tier, critical path: one line each."""
    t = res.totals
    energy = {k[len("energy_"):-len("_pj")].replace("tier_", "tier "): v for k, v in t.items()
              if k.startswith("energy_") and k != "energy_pj"}
    levels = [("DRAM", "dram_"), ("SRAM", "sram_")] + [
        (f"tier {k[5:-5]}", k[:-4]) for k in t if k.startswith("tier_") and k.endswith("_read")]
    path = {k[5:]: v for k, v in t.items() if k.startswith("path_")}
    return [
        f"  energy  {t['energy_pj'] / 1e6:,.3f} uJ: " + _energy_text(energy, ", "),
        "  bytes   " + "; ".join(
            f"{name} read {t[pre + 'read']:,} write {t[pre + 'write']:,}"
            + (f" other {t['dram_other']:,}" if name == "DRAM" else "") for name, pre in levels),
        "  critical path  " + ", ".join(f"{k} {v / t['cycles']:.1%}" for k, v in path.items()
                                        if v),
    ]


def cmd_simulate_memo(args) -> int:
    from pathlib import Path

    from dataflow.memo import MemoStore, simulate_memo

    if args.phase not in ("train", "prefill"):
        raise UsageError(f"--memo runs an inference pass (--phase prefill), not --phase "
                         f"{args.phase}")
    if args.method not in (None, "dense"):
        raise UsageError("--memo runs the dense model; leave out --method")
    try:
        hits = float(args.memo)
    except ValueError:
        if not Path(args.memo).is_file():
            raise UsageError(f"--memo takes a hit rate in [0, 1] or a trace CSV file, not "
                             f"{args.memo!r}") from None
        hits = args.memo
    kw = {"seq_len": args.seq_len} if args.seq_len else {}
    store = MemoStore(tier=args.memo_tier, entries=args.memo_entries, insert=args.memo_insert)
    res = simulate_memo(args.model, hits, store, _config(args.config), args.batch,
                        selective=args.memo_selective, options=_compile_options(args), **kw)
    if args.json:
        out = {"summary": res.summary(), "model": res.model, "config": res.config,
               "batch": res.batch, "seq_len": res.seq_len, "tier": store.tier,
               "entries": store.entries, "saving": res.saving, "plain": res.plain,
               "memo": res.memo, "layers": res.layers.to_dict(orient="records")}
        print(json.dumps(out, indent=2, default=float))
        return 0
    print(res.summary())
    cols = ["layer", "hit_rate", "hits", "memoized", "plain_cycles", "memo_cycles", "saving",
            "model_saving", "break_even"]
    print(res.layers[cols].to_string(index=False, max_rows=args.max_rows,
                                     float_format=lambda v: f"{v:,.3f}"))
    return 0


def _own_model_args(args) -> dict:
    """``simulate_model``'s input options for ``--model FILE.py:FACTORY`` or ``FILE.pt2``, or
    one line naming the zoo option given to such a model (or the reverse)."""
    from dataflow.zoo import model_names

    own = {"input_shape": args.input_shape, "input_dtype": args.input_dtype,
           "vocab": args.vocab}
    given = [f"--{k.replace('_', '-')}" for k, v in own.items() if v is not None]
    if args.model in model_names("all"):
        if given:
            raise UsageError(f"{', '.join(given)}: for a model from a file "
                             f"(--model FILE.py:FACTORY or FILE.pt2), not zoo model {args.model}")
        return {}
    zoo = [name for name, v in (("--memo", args.memo), ("--seq-len", args.seq_len),
                                ("--context", args.context)) if v is not None]
    if args.batch != 1:
        zoo.append("--batch")
    if zoo:
        raise UsageError(f"{', '.join(zoo)}: for zoo models; the batch and sequence of "
                         f"{args.model} are its input's shape (--input-shape)")
    if args.phase not in ("train", "prefill"):
        raise UsageError(f"--phase {args.phase} is for the zoo's language models; a model from "
                         f"a file runs --phase train or prefill")
    return own


def cmd_simulate_model(args) -> int:
    with _progress(args) as bar:
        if bar is None:
            return _run_model(args)
        from reports.figures import capture_runs
        from reports.progress import running

        def timed(prog) -> bool:  # a program of the run compiled and timed: one unit
            w = getattr(prog, "workload", None)
            what = "" if w is None else " ".join(x for x in (w.method, w.pattern) if x)
            bar.advance(postfix=f"{what} step timed".strip())
            return False  # keep nothing

        with running(bar, f"simulate {args.model} (programs timed)"), capture_runs(timed):
            return _run_model(args)


def _run_model(args) -> int:
    if getattr(args, "trace", None):
        return _traced(args, _simulate_model)
    return _simulate_model(args)


def _traced(args, run) -> int:
    """``run(args)`` and the per-command trace of the model's step (not its dense comparison)
    to ``--trace``: CSV, or the Chrome/Perfetto trace-event format for ``FILE.json``."""
    from hwsim.trace import write_chrome_trace, write_trace
    from reports.figures import capture_runs

    with capture_runs() as runs:
        code = run(args)
    if not runs:
        raise UsageError("--trace: this run compiles no program to trace")
    prog, stats = runs[0]
    if args.trace.lower().endswith(".json"):
        w = prog.workload
        write_chrome_trace(prog, stats, args.trace, prog.config.clock_mhz,
                           process=f"{w.model} {w.method} on {prog.config.name}")
    else:
        write_trace(prog, stats, args.trace)
    print(f"trace: {args.trace}", file=sys.stderr)
    return code


def _simulate_model(args) -> int:
    from dataflow import simulate_model

    own = _own_model_args(args)
    if args.values:
        return _simulate_values(args, own)
    if own:
        res = simulate_model(args.model, args.method, args.pattern, _config(args.config),
                             1, _compile_options(args), skip=_dense_layers(args),
                             phase=args.phase, **own)
        return _print_model(args, res)
    if args.memo is not None:
        return cmd_simulate_memo(args)
    _check_phase(args)
    kw = {"seq_len": args.seq_len} if args.seq_len else {}
    res = simulate_model(args.model, args.method, args.pattern, _config(args.config),
                         args.batch, _compile_options(args), skip=_dense_layers(args),
                         phase=args.phase, context=args.context, **kw)
    return _print_model(args, res)


def _simulate_values(args, own: dict) -> int:
    """``simulate --model M --values``: one training step with values on hwsim's functional
    units beside PyTorch autograd (:func:`dataflow.execute.check_step`)."""
    import torch

    from dataflow.execute import check_step

    if args.phase != "train" or args.memo is not None:
        raise UsageError("--values runs a training step: not with --phase prefill/decode or "
                         "--memo")
    if own:
        from dataflow.frontend import load_model

        loaded = load_model(args.model, **own)
        model, x = loaded.module, loaded.example_input
        x = x[0] if isinstance(x, tuple) and len(x) == 1 else x
    else:
        from dataflow.zoo import get_model

        kw = {"seq_len": args.seq_len} if args.seq_len else {}
        model, x = get_model(args.model, batch=args.batch, **kw)
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"--values: {args.model} takes several inputs; a step with values "
                         f"takes one")
    method = args.method or "bdwp"
    got, ref, err = check_step(model, x, _config(args.config), method=method,
                               pattern=args.pattern, skip=_dense_layers(args), gemm=args.gemm,
                               max_macs=args.max_macs)
    tensors = sorted(((v, k) for k, v in err.items() if ":" in k), reverse=True)
    if args.json:
        print(json.dumps({"model": args.model, "method": method, "pattern": args.pattern,
                          "config": args.config, "gemm": args.gemm, "loss": got.loss,
                          "reference_loss": ref.loss, "errors": err,
                          "ops": dict(got.ops)}, indent=2, default=float))
        return 0
    ops = got.ops
    print(f"{args.model} {method}{'' if method == 'dense' else ' ' + args.pattern} training "
          f"step with values on {args.config} (GEMMs: {args.gemm}): loss {got.loss:.6f}, "
          f"autograd {ref.loss:.6f}; normwise relative error: loss {err['loss']:.1e}, worst "
          f"gradient {err['grads']:.1e}, worst updated weight {err['weights']:.1e}")
    print(f"{ops['gemms']:,} GEMM programs, {ops['macs_fwd'] + ops['macs_bwd']:,} MACs "
          f"({ops['sparse_macs']:,} on the sparse path), {ops['array_cycles']:,} array cycles")
    print()
    print("largest errors (tensor, normwise relative error):")
    for v, k in tensors[:args.max_rows]:
        print(f"  {k:<60} {v:.2e}")
    return 0


def _dense_layers(args):
    return args.dense_layers if args.dense_layers in ("default", "required") else \
        tuple(x.strip() for x in args.dense_layers.split(",") if x.strip())


def _sram_by_buffer(totals: dict) -> dict[str, float]:
    """The ``sram`` energy's parts of a model run's totals, by buffer (``act`` ... ``vec``,
    ``hot_rows``; :data:`hwsim.energy.SRAM_PARTS`), picojoules: they sum to
    ``totals["energy_sram_pj"]``."""
    from hwsim.energy import SRAM_PARTS

    return {p: totals.get(f"energy_sram_{p}_pj", 0.0) for p in SRAM_PARTS}


def _print_model(args, res) -> int:
    if args.json:
        out = {"summary": res.summary(), "model": res.model, "method": res.method,
               "pattern": res.pattern, "phase": res.phase, "seq_len": res.seq_len,
               "context": res.context, "config": res.config, "totals": res.totals,
               "energy_sram_pj_by_buffer": _sram_by_buffer(res.totals),
               "speedup": res.speedup, "ideal_speedup": res.ideal_speedup,
               "per_pass": res.per_pass.to_dict(orient="records"),
               "per_layer": res.per_layer.to_dict(orient="records")}
        print(json.dumps(out, indent=2, default=float))
        return 0
    print(res.summary())
    print("\n".join(_model_lines(res)))
    print()
    print(res.per_pass.to_string(index=False))
    print()
    print(res.per_layer.to_string(index=False, max_rows=args.max_rows))
    return 0


def cmd_simulate(args) -> int:
    if (args.topology is None) == (args.model is None):
        raise UsageError("simulate needs exactly one of --topology FILE.csv (SCALE-Sim format) "
                         "or --model NAME")
    if args.trace is not None and args.model is None:
        raise UsageError("--trace is for --model (a topology runs one layer at a time)")
    if args.model is not None:
        return cmd_simulate_model(args)
    from reports.topology import format_table, topology_rows  # rows without pandas

    cfg = _config(args.config)
    if args.scalesim_cfg:
        from dataflow.scalesim import read_scalesim_cfg

        cfg = read_scalesim_cfg(args.scalesim_cfg, base=cfg)
    # the .cfg's Dataflow (the one dataflow read_scalesim_cfg leaves) wins unless --dataflow
    # says otherwise; without a .cfg, ws where the config has it
    dataflow = args.dataflow or ("ws" if "ws" in cfg.array.dataflows and not args.scalesim_cfg
                                 else cfg.array.dataflows[0])
    rows = [{"layer": r["layer"], "dataflow": dataflow, **r}
            for r in topology_rows(args.topology, cfg, dataflow=dataflow)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    total = sum(r["cycles"] for r in rows)
    print(f"{args.topology} on {cfg.name} ({dataflow}, {len(rows)} layers, {total:,} cycles, "
          f"{total / (cfg.clock_mhz * 1e3):,.3f} ms)")
    print(format_table(rows))
    return 0


def cmd_scalesim(args) -> int:
    from pathlib import Path

    from reports.scalesim_cli import format_result, run_scalesim

    if args.l is not None and not Path(args.l).is_file():
        raise UsageError(f"-l {args.l}: layout file not found")
    res = run_scalesim(args.c, args.t, args.p, args.i, base=_config(args.config))
    print(format_result(res, as_json=args.json, traces=args.s == "Y"))
    return 0


def cmd_report_sat(args) -> int:
    from reports.sat_report import sat_reproduction

    models = args.models.split(",") if args.models else None
    with _progress(args) as bar:
        path = sat_reproduction(args.out, args.config, batch=args.batch, models=models,
                                progress=bar)
        print(f"report: {path}")
    return 0


def cmd_report_memoryformer(args) -> int:
    from reports.memoryformer_report import memoryformer_report

    tiers = tuple(x.strip() for x in args.tiers.split(",") if x.strip()) \
        if args.tiers is not None else None
    kw = {} if tiers is None else {"tiers": tiers}
    with _progress(args) as bar:
        path = memoryformer_report(args.out, args.config, seq_len=args.seq_len,
                                   sweep_seq_len=args.sweep_seq_len,
                                   gather_rows=args.gather_rows, progress=bar, **kw)
        print(f"report: {path}")
    return 0


def cmd_export_topology(args) -> int:
    from dataflow.frontend import is_model_file, load_model
    from dataflow.scalesim import EXPORT_PASSES, export_gemm_topology
    from dataflow.simulate import _phase_model, dense_layers
    from dataflow.workload import extract

    method = args.method or "bdwp"
    pattern = None if method == "dense" else args.pattern
    trace = ()
    if is_model_file(args.model):
        own = load_model(args.model, input_shape=args.input_shape,
                         input_dtype=args.input_dtype, vocab=args.vocab)
        model, x, trace = own.module, own.example_input, own.trace_through
    else:
        kw = {"seq_len": args.seq_len} if args.seq_len else {}
        model, x, _, _ = _phase_model(args.model, args.phase, args.batch, None, kw)
    skip = dense_layers(model, _dense_layers(args), method, pattern,
                        own_model=is_model_file(args.model))
    wl = extract(model, x, method=method, pattern=pattern, skip=skip, name=args.model,
                 training=args.phase == "train", trace_through=trace)
    passes = EXPORT_PASSES if args.passes == "all" else (args.passes,)
    if args.phase != "train" and passes != ("fwd",):
        raise UsageError(f"--phase {args.phase} has a forward pass only: use --pass fwd")
    rows = export_gemm_topology(wl, args.out, passes)
    macs = sum(op.macs for op in wl.gemms() if op.pass_ in passes)
    print(f"{args.out}: {rows:,} GEMM rows ({', '.join(passes)}) of {args.model} "
          f"{method}{'' if pattern is None else ' ' + pattern}, {macs:,} MACs")
    return 0


def cmd_report_attmemo(args) -> int:
    from dataflow.memo import MemoStore
    from reports.attmemo_report import attmemo_report

    def ints(text, what):
        try:
            vals = tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise UsageError(f"--{what} takes comma-separated positive integers, not "
                             f"{text!r}") from None
        if not vals or min(vals) < 1:
            raise UsageError(f"--{what} takes comma-separated positive integers, not {text!r}")
        return vals

    tiers = tuple(x.strip() for x in args.tiers.split(",") if x.strip())
    seqs, batches = ints(args.seq_lens, "seq-lens"), ints(args.batches, "batches")
    with _progress(args) as bar:
        path = attmemo_report(args.out, args.config, seqs=seqs, batches=batches, tiers=tiers,
                              store=MemoStore(entries=args.entries),
                              experiment=args.experiment, progress=bar)
        print(f"report: {path}")
    return 0


def cmd_sweep(args) -> int:
    from pathlib import Path

    from reports.store import markdown_table, read_results
    from reports.sweep import load_spec, run_sweep

    if (args.spec is None) == (args.show is None):
        raise UsageError("sweep needs a SPEC.yaml to run or --show DB to print stored results")
    if args.show is not None:
        df = read_results(args.show, notes=lambda line: print(line, file=sys.stderr))
        text = markdown_table(df, f"Sweep results: {args.show}")
        if args.report:
            from reports.html import sweep_report

            path = sweep_report(df, Path(args.show).parent, f"Sweep results: {args.show}")
            print(f"report: {path} (and {path.with_suffix('.html').name}, with its figures)")
        else:
            print(text, end="")
        return 0
    if args.scheduler is not None and args.workers is not None:
        raise UsageError("--workers sizes the local cluster; it cannot be used with --scheduler")
    spec = load_spec(args.spec)
    # the per-point lines are the sweep's log (a line means stored): kept in a pipe too
    with _progress(args, log=True) as say:
        res = run_sweep(spec, args.db, scheduler=args.scheduler, workers=args.workers,
                        max_points=args.max_points, progress=say)
    print(f"{res.computed} point{'s' * (res.computed != 1)} computed ({res.failed} failed), "
          f"{res.skipped} already stored, {res.remaining} left; results: {res.db}")
    if args.report:
        keys = {p.keys for p in spec.points()}
        df = read_results(res.db)
        df = df[[k in keys for k in zip(df["config_key"], df["workload_key"], strict=True)]]
        from reports.html import sweep_report

        path = sweep_report(df, res.db.parent, f"Sweep {spec.name}")
        print(f"report: {path} (and {path.with_suffix('.html').name}, with its figures)")
    return 0


def _quiet_elaboration() -> None:
    """No Amaranth ``UnusedElaboratable`` warnings: a design that a check refuses half-built
    leaves its parts unused, and the user should see the one line that says why."""
    import warnings

    from amaranth.hdl import UnusedElaboratable

    warnings.filterwarnings("ignore", category=UnusedElaboratable)


def _lookup_hint(build, args):
    """``build()``, with a lookup engine the RTL cannot build named with the way around it."""
    try:
        return build()
    except ValueError as e:
        if args.no_lookup or "lookup." not in str(e):
            raise
        raise ValueError(f"{e}; --no-lookup builds the machine without the lookup engine") \
            from None


def cmd_rtl_verilog(args) -> int:
    from rtl.verilog import write_verilog

    _quiet_elaboration()
    cfg = _config(args.config)
    path = _lookup_hint(lambda: write_verilog(cfg, args.out, port=args.port,
                                              lookup=not args.no_lookup), args)
    print(f"wrote {path} ({args.port} memory port"
          f"{', no lookup engine' if args.no_lookup else ''}) and "
          f"{path.parent / 'manifest.json'}")
    return 0


def cmd_rtl_package(args) -> int:
    from rtl.package import VIVADO_NOTE, write_package

    _quiet_elaboration()
    cfg = _config(args.config)
    print(f"elaborating the {cfg.name} kernel (minutes for a large config)", file=sys.stderr,
          flush=True)
    paths = _lookup_hint(lambda: write_package(cfg, args.out, lookup=not args.no_lookup), args)
    print(f"wrote {', '.join(p.name for p in paths.values())} into {args.out}")
    print(VIVADO_NOTE)
    return 0


def cmd_rtl_synth(args) -> int:
    from rtl.synth import synth_report

    cfg = _config(args.config)
    sizes = args.sizes or (1, 2, 4)
    if args.out is None:
        from hwsim.paths import build_dir

        args.out = str(build_dir() / "synth")
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if say:
        say(f"synthesizing with Yosys (synth_xilinx -family xcup) into {args.out}; the first "
            "run on a machine compiles Yosys for a few minutes")
    path = synth_report(cfg, args.out, part=args.part, sizes=sizes,
                        accelerator=not args.no_accelerator, sore_lanes=args.sore_lanes,
                        vector_lanes=args.vector_lanes, lookup_lanes=args.lookup_lanes,
                        gather_lanes=args.gather_lanes, jobs=args.jobs, progress=say,
                        shell=False if args.no_shell else None)
    print(f"report: {path}")
    return 0


def cmd_rtl_cosim(args) -> int:
    from reports.fidelity import gemm_cosim

    cfg = _config(args.config)
    row = gemm_cosim(cfg, args.m, args.n, args.k, sim=args.sim, seed=args.seed,
                     build_root=args.build)
    print(json.dumps(row, indent=2))
    return 0 if row["values_equal"] and row["cycles_equal"] else 1


def cmd_experiment(args) -> int:
    from pathlib import Path

    from algorithms import experiments as ex

    if args.out is None:
        from hwsim.paths import runs_dir

        args.out = runs_dir() / "experiments"
    out = Path(args.out) / args.which
    out.mkdir(parents=True, exist_ok=True)
    if args.which == "nm":
        kw = {"seeds": tuple(range(args.seeds)), "epochs": args.epochs or 30}
        if args.quick:
            kw.update(seeds=(0,), epochs=args.epochs or 3, patterns=("2:8",))
        run = ex.run_nm_experiment
    elif args.which == "memoryformer":
        kw = {"steps": args.steps or 600}
        if args.quick:
            kw.update(steps=args.steps or 40, corpus_bytes=200_000, eval_batches=4)
        run = ex.run_memoryformer_experiment
    else:
        kw = {}
        if args.quick:
            kw.update(train_steps=40, memo_sequences=256, eval_sequences=32, embed_steps=40,
                      corpus_bytes=200_000)
        run = ex.run_attmemo_experiment
    with _progress(args) as bar:
        table = run(out, progress=bar, **kw)
        print(table.to_string(index=False))
        print(f"results: {out}")
    return 0


def cmd_demo(args) -> int:
    from reports.demo import figure_files, run_demo

    with _progress(args) as bar:
        path = run_demo(args.out, sim=args.sim, progress=bar or False)
        print(f"report: {path} (and {path.with_suffix('.html').name}, with its figures)")
        for fig in figure_files(path):
            print(f"figure: {fig}")
    return 0


# --- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="satmem", description="SAT N:M sparse training accelerator and big-memory "
                "lookup engine: models, simulator, RTL and reports.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("info", help="print a configuration and its derived values")
    s.add_argument("--config", default="tiny", help="preset name or YAML file (default tiny)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("simulate-gemm", help="cycles and utilisation of one GEMM")
    s.add_argument("m", type=_positive_int)
    s.add_argument("n", type=_positive_int)
    s.add_argument("k", type=_positive_int)
    s.add_argument("--config", default="tiny")
    s.add_argument("--dataflow", choices=("os", "ws"), default="ws")
    s.add_argument("--mode", choices=("timing", "functional"), default="timing")
    s.add_argument("--sparsity", default=None, help="N:M pattern of B along K, e.g. 2:8")
    s.add_argument("--mapping", choices=("default", "search"), default="default",
                   help="default: gemm_tiling's loop nest (what the SCALE-Sim comparison uses); "
                   "search: the mapping the compiler picks for a model's GEMM in --dataflow")
    s.add_argument("--trace", default=None, help="write a per-command trace here: CSV, or for "
                   "FILE.json the Chrome/Perfetto trace format (open in ui.perfetto.dev)")
    s.add_argument("--max-commands", type=_nonneg_int, default=None, help="refuse programs "
                   "of more commands (default 4,000,000: about 4 GB; 0: no limit, and no "
                   "extrapolation); timing mode extrapolates above 100,000 or this, whichever "
                   "is smaller")
    s.add_argument("--max-macs", type=_nonneg_int, default=None, help="--mode functional: "
                   "refuse more MACs (default 2e9; 0: no limit)")
    s.add_argument("--no-extrapolate", action="store_true", help="--mode timing: simulate "
                   "every command up to --max-commands (refused beyond) instead of "
                   "extrapolating the long loops from truncated programs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_simulate_gemm)

    s = sub.add_parser("simulate", help="a model's training step, prefill or decode step "
                       "(--model) or a SCALE-Sim topology (--topology), per layer")
    s.add_argument("--model", default=None, help="zoo model: resnet18, resnet50, vgg16, "
                   "vit_s16, pythia70m, memoryformer_tiny, memoryformer_small, "
                   "memoryformer_base; or your own: FILE.py:FACTORY (a function returning an "
                   "nn.Module, or (module, example_input)) or a torch.export program FILE.pt2")
    s.add_argument("--input-shape", default=None, metavar="SHAPE",
                   help="--model FILE: shape of a generated input, e.g. 8,3,32,32 (';' between "
                        "inputs); the leading dimension is the batch (default: the factory's "
                        "example input, or the .pt2 program's input shapes)")
    s.add_argument("--input-dtype", default=None, choices=("float", "long"),
                   help="--model FILE: the generated input's dtype (long: token ids; default "
                        "float)")
    s.add_argument("--vocab", type=_positive_int, default=None,
                   help="--model FILE, --input-dtype long: token ids in [0, VOCAB) (default: "
                        "the rows of the model's first nn.Embedding)")
    s.add_argument("--method", default=None, choices=("dense", "srste", "bdwp",
                                                      "transposable"),
                   help="default bdwp (dense for memoryformer_*)")
    s.add_argument("--pattern", default="2:8")
    s.add_argument("--batch", type=_positive_int, default=1)
    s.add_argument("--phase", default="train", choices=("train", "prefill", "decode"),
                   help="train: one training step (forward, backward, weight and table "
                        "updates); prefill: inference over the sequence; decode: one token "
                        "after a KV cache of --context tokens (language models only)")
    s.add_argument("--seq-len", type=_positive_int, default=None,
                   help="sequence of pythia70m and memoryformer_* (default 2048)")
    s.add_argument("--context", type=_nonneg_int, default=None,
                   help="--phase decode: cached tokens (default --seq-len)")
    s.add_argument("--dense-layers", default="default", metavar="POLICY",
                   help="layers kept dense: 'default' (a conv stem and the classifier), "
                        "'required' (only layers that cannot be N:M, e.g. an RGB stem), or "
                        "comma-separated layer names or globs ('' for none)")
    s.add_argument("--objective", choices=("cycles", "energy", "edp"), default="cycles")
    s.add_argument("--trace", default=None, metavar="FILE", help="--model: write the step's "
                   "per-command trace here: CSV, or for FILE.json the Chrome/Perfetto trace "
                   "format, one track per unit (open in ui.perfetto.dev)")
    s.add_argument("--no-interleave", action="store_true")
    s.add_argument("--no-pregenerate", action="store_true")
    s.add_argument("--no-offline-schedule", action="store_true")
    s.add_argument("--table-optimizer", choices=("sgd_momentum", "adam"), default="sgd_momentum",
                   help="optimizer of MemoryFormer's table rows in --phase train (default "
                        "sgd_momentum)")
    s.add_argument("--memo", default=None, metavar="HITRATE|TRACE",
                   help="AttMEMO: memoize the attention maps of an inference pass (bert_base, "
                        "pythia70m), at this hit rate for every layer or with the hit rates "
                        "of a trace CSV (columns layer, hit); implies --phase prefill")
    s.add_argument("--memo-tier", default="cxl", help="--memo: the map store's memory tier "
                   "(hbm2e, ddr4, ddr5, cxl, pmem, sram; default cxl)")
    s.add_argument("--memo-entries", type=_positive_int, default=1024,
                   help="--memo: maps stored per layer (default 1024)")
    s.add_argument("--memo-insert", action="store_true",
                   help="--memo: write each miss's map to the store")
    s.add_argument("--memo-selective", action="store_true",
                   help="--memo: memoize only the layers where the performance model "
                        "expects a saving at their hit rate")
    s.add_argument("--values", action="store_true", help="--model: run one training step "
                   "with values on hwsim's functional units (each GEMM's program on the array, "
                   "the vector engine's kernels, UPDATE) and compare the loss, every gradient "
                   "and every updated weight with PyTorch autograd")
    s.add_argument("--gemm", choices=("array", "fp16", "fp32"), default="array",
                   help="--values: the GEMMs on the array (default), or exact sums of fp16 or "
                        "fp32 operands, to see what the array's rounding contributes")
    s.add_argument("--max-macs", type=_nonneg_int, default=None, help="--values: refuse a "
                   "step of more GEMM MACs (default 2,000,000,000: minutes of the per-cycle "
                   "array; 0: no limit)")
    s.add_argument("--max-rows", type=_positive_int, default=60)
    s.add_argument("--quiet", action="store_true", help="--model: no progress bar (there is "
                   "none when stderr is not a terminal)")
    s.add_argument("--max-commands", type=_nonneg_int, default=None, help="refuse programs of "
                   "more commands (default 4,000,000: about 4 GB; 0: no limit)")
    s.add_argument("--topology", default=None, help="SCALE-Sim topology CSV (conv or GEMM)")
    s.add_argument("--scalesim-cfg", default=None, help="SCALE-Sim .cfg architecture file "
                   "(overrides array, buffers and bandwidth of --config)")
    s.add_argument("--config", default="vcu1525")
    s.add_argument("--dataflow", choices=("os", "ws"), default=None,
                   help="for --topology: os or ws (default: the --scalesim-cfg file's Dataflow, "
                        "else ws)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("scalesim", help="SCALE-Sim's command line: its .cfg and topology run "
                       "on satmem, its report CSVs, SCALE-Sim's cycles beside satmem's")
    s.add_argument("-c", required=True, metavar="CFG", help="SCALE-Sim .cfg file")
    s.add_argument("-t", default=None, metavar="TOPOLOGY", help="topology CSV (default: the "
                   ".cfg's [network_presets] TopologyCsvLoc)")
    s.add_argument("-p", default="results", metavar="LOGPATH", help="reports go to "
                   "LOGPATH/<run_name>/ (default ./results, as SCALE-Sim)")
    s.add_argument("-i", choices=("gemm", "conv"), default=None, help="the topology's format "
                   "(default: from its header)")
    s.add_argument("-l", default=None, metavar="LAYOUT", help="SCALE-Sim layout file (checked "
                   "to exist; custom layouts are not modelled)")
    s.add_argument("-s", choices=("Y", "N"), default="Y", help="SCALE-Sim's save-trace flag "
                   "(satmem writes no SCALE-Sim traces)")
    s.add_argument("--config", default="tiny", help="the machine's fields the .cfg does not set "
                   "(preset or YAML; default tiny, int8 like SCALE-Sim's one-byte words)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_scalesim)

    s = sub.add_parser("export-topology", help="a model's training step (or inference pass) as "
                       "SCALE-Sim GEMM topology CSV, backward passes included")
    s.add_argument("--model", required=True, help="zoo model, FILE.py:FACTORY or FILE.pt2 "
                   "(see simulate --model)")
    s.add_argument("--input-shape", default=None, metavar="SHAPE",
                   help="--model FILE: the input's shape, e.g. 8,3,32,32")
    s.add_argument("--input-dtype", default=None, choices=("float", "long"))
    s.add_argument("--vocab", type=_positive_int, default=None)
    s.add_argument("--out", required=True, metavar="FILE.csv")
    s.add_argument("--method", default=None, choices=("dense", "srste", "bdwp",
                                                      "transposable"), help="default bdwp")
    s.add_argument("--pattern", default="2:8")
    s.add_argument("--pass", dest="passes", default="all",
                   choices=("fwd", "bgrad", "wgrad", "all"))
    s.add_argument("--phase", default="train", choices=("train", "prefill"))
    s.add_argument("--batch", type=_positive_int, default=1)
    s.add_argument("--seq-len", type=_positive_int, default=None)
    s.add_argument("--dense-layers", default="default", metavar="POLICY",
                   help="as simulate's: default, required, or layer names")
    s.set_defaults(func=cmd_export_topology)

    s = sub.add_parser("sweep", help="design-space sweep: configs x workloads on Dask, results "
                       "in DuckDB (resumable)")
    s.add_argument("spec", nargs="?", default=None, help="sweep spec YAML (see "
                   "reports/sweeps/example.yaml)")
    s.add_argument("--db", default=None, help="results store (default "
                   "sweep-NAME/results.duckdb under the runs directory; see README, "
                   "'Where files go')")
    s.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler "
                   "(default: a local cluster)")
    s.add_argument("--workers", type=_nonneg_int, default=None, help="local cluster worker "
                   "processes (default: one per core); 0 runs in this process")
    s.add_argument("--max-points", type=_positive_int, default=None, help="stop after this "
                   "many points (a rerun continues)")
    s.add_argument("--show", default=None, metavar="DB", help="print the stored results of "
                   "a store as a Markdown table instead of running")
    s.add_argument("--report", action="store_true", help="write report.md next to the store")
    s.add_argument("--quiet", action="store_true", help="no progress bar or lines")
    s.set_defaults(func=cmd_sweep)

    rep = sub.add_parser("report", help="reports: the SAT reproduction, MemoryFormer on the "
                         "lookup engine")
    rsub2 = rep.add_subparsers(dest="report_command", metavar="REPORT", parser_class=_Parser)
    rsub2.required = True
    s = rsub2.add_parser("sat", help="training-step speedup over dense for the zoo")
    s.add_argument("--out", default=None, help="default: reports/sat (README, 'Where files "
                   "go')")
    s.add_argument("--config", default="vcu1525")
    s.add_argument("--batch", type=_positive_int, default=1)
    s.add_argument("--models", default=None, help="comma-separated zoo models (default all)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_report_sat)
    s = rsub2.add_parser("attmemo", help="AttMEMO on the machine: BERT-base with memoized "
                         "attention across tiers, hit rates, sequences and batches")
    s.add_argument("--out", default=None, help="default: reports/attmemo (README, 'Where files "
                   "go')")
    s.add_argument("--config", default="vcu1525")
    s.add_argument("--seq-lens", default="128,512", help="comma-separated (default 128,512)")
    s.add_argument("--batches", default="1,8", help="comma-separated (default 1,8)")
    s.add_argument("--tiers", default="hbm2e,ddr4,cxl,pmem")
    s.add_argument("--entries", type=_positive_int, default=1024, help="maps stored per layer")
    s.add_argument("--experiment", default=None, metavar="DIR", help="a `satmem experiment "
                   "attmemo` output directory: its hit rates beside the paper's")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_report_attmemo)
    s = rsub2.add_parser("memoryformer", help="MemoryFormer-tiny against Pythia-70M dense and "
                         "BDWP 2:8, a memory-tier sweep and gather bandwidth per tier")
    s.add_argument("--out", default=None, help="default: reports/memoryformer (README, "
                   "'Where files go')")
    s.add_argument("--config", default="vcu1525")
    s.add_argument("--seq-len", type=_positive_int, default=2048,
                   help="sequence of the training step and prefill, KV cache of the decode step "
                        "(default 2048)")
    s.add_argument("--sweep-seq-len", type=_positive_int, default=None,
                   help="sequence of the tier sweep (default --seq-len)")
    s.add_argument("--tiers", default=None, help="comma-separated tier presets of the sweep "
                   "(default sram,hbm2e,ddr4,ddr5,cxl,pmem; '' for none)")
    s.add_argument("--gather-rows", type=_positive_int, default=16384,
                   help="random rows per point of the gather-bandwidth curves (default 16384)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_report_memoryformer)

    rtl = sub.add_parser("rtl", help="RTL: Verilog generation, co-simulation")
    rsub = rtl.add_subparsers(dest="rtl_command", metavar="RTL_COMMAND", parser_class=_Parser)
    rsub.required = True
    s = rsub.add_parser("verilog", help="write the Verilog and a parameter manifest")
    s.add_argument("--config", default="tiny")
    s.add_argument("--out", required=True)
    s.add_argument("--port", choices=("simple", "axi4"), default="simple",
                   help="external memory port: rtl.dma's request/response channels (default) "
                        "or an AXI4 master (m_axi_*)")
    s.add_argument("--no-lookup", action="store_true",
                   help="leave the lookup engine (and its table-memory port) out: the SAT "
                        "accelerator alone, a smaller design")
    s.set_defaults(func=cmd_rtl_verilog)
    s = rsub.add_parser("synth", help="FPGA synthesis (Yosys) of the PE, arrays and top, "
                        "with VU9P utilisation")
    s.add_argument("--config", default="vcu1525")
    s.add_argument("--part", default="xcvu9p")
    s.add_argument("--out", default=None, help="default: synth/ under the build directory "
                   "(README, 'Where files go')")
    s.add_argument("--sizes", type=_positive_ints, default=None,
                   help="array sizes to sweep, e.g. 1,2,4")
    s.add_argument("--sore-lanes", type=_positive_ints, default=None,
                   help="SORE lane counts to synthesize (default 1,2,4 and the config's; '' "
                        "for none)")
    s.add_argument("--vector-lanes", type=_positive_ints, default=None,
                   help="vector-unit lane counts to synthesize (default: those of 1,2,4,8 the "
                        "config's DMA bus holds, 4 bytes a lane; '' for none)")
    s.add_argument("--lookup-lanes", type=_positive_ints, default=(),
                   help="lookup-engine lane counts: its hash and gather engines, each "
                        "synthesized apart at these counts, e.g. 1,2,4 (default '': none)")
    s.add_argument("--gather-lanes", type=_positive_ints, default=None,
                   help="the gather engine's lane counts instead of --lookup-lanes' (default: "
                        "those of --lookup-lanes whose accumulator Yosys maps)")
    s.add_argument("--jobs", type=_positive_int, default=None,
                   help="parallel Yosys runs (default: the CPU count)")
    s.add_argument("--no-accelerator", action="store_true", help="skip the accelerator top")
    s.add_argument("--no-shell", action="store_true",
                   help="skip the kernel shell's designs (control, fetcher, DRAM channel "
                        "logic, controller, DMA, unit muxes), synthesized by default for "
                        "configs whose full top is not")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=cmd_rtl_synth)
    s = rsub.add_parser("package", help="the Vitis RTL kernel: Verilog, kernel.xml, Vivado "
                        "packaging script, XDC, manifest")
    s.add_argument("--config", default="tiny")
    s.add_argument("--out", required=True)
    s.add_argument("--no-lookup", action="store_true",
                   help="leave the lookup engine (its master and the tables argument) out")
    s.set_defaults(func=cmd_rtl_package)
    s = rsub.add_parser("cosim", help="run one GEMM on the RTL and compare with hwsim")
    s.add_argument("m", type=_positive_int)
    s.add_argument("n", type=_positive_int)
    s.add_argument("k", type=_positive_int)
    s.add_argument("--config", default="tiny")
    s.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--build", default=None, help="simulator builds (default: the build "
                   "directory, README 'Where files go')")
    s.set_defaults(func=cmd_rtl_cosim)

    s = sub.add_parser("experiment", help="algorithm experiments on offline data "
                       "(N:M training, MemoryFormer, AttMEMO)")
    s.add_argument("which", choices=("nm", "memoryformer", "attmemo"))
    s.add_argument("--out", default=None, help="default: experiments/ under the runs "
                   "directory (README, 'Where files go')")
    s.add_argument("--quick", action="store_true", help="a small budget (a smoke run)")
    s.add_argument("--seeds", type=_positive_int, default=3, help="nm: seeds per setting")
    s.add_argument("--epochs", type=_positive_int, default=None, help="nm: training epochs")
    s.add_argument("--steps", type=_positive_int, default=None, help="memoryformer: steps")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_experiment)

    s = sub.add_parser("demo", help="the product in a minute: RTL fidelity, a BDWP 2:8 "
                       "training step against its bound, sparse GEMMs, energy, roofline, a "
                       "MemoryFormer layer; a Markdown and HTML report with figures")
    s.add_argument("--out", default=None, help="directory for the report (default: the runs "
                   "directory, README 'Where files go')")
    s.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_demo)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    from dataflow.scalesim import TopologyError
    from hwsim.config import ConfigError
    from hwsim.engine import ProgramError
    from hwsim.isa import IsaError
    from rtl.synth.run import SynthError

    # CompileError and UnmappableOpError are ValueErrors; a SynthError is one line naming the
    # design, Yosys's error and its log
    return (UsageError, ConfigError, ProgramError, IsaError, TopologyError, ValueError, OSError,
            NotImplementedError, SynthError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``satmem`` command; its exit status.

    ``argv`` None (the ``satmem`` program, whose process ends with the command), two start-up
    costs that were a third of a ``satmem simulate --topology`` of two layers (0.8 s) go:

    - the interpreter's garbage collections at exit, which traverse every object left (0.25 s
      with Numba loaded): unless DuckDB is loaded, every object is moved to the permanent
      generation first
      (``gc.freeze``); objects are still freed by their reference counts, only unreachable
      cycles are left to the operating system;
    - OpenBLAS's worker threads (NumPy's BLAS) busy-wait about 2^28 cycles after NumPy's
      import, 0.05 s of a core (on a busy 2-core machine, of the command's): they sleep at
      once unless ``OPENBLAS_THREAD_TIMEOUT`` is set (a BLAS call wakes them as it would
      after the timeout).
    """
    if argv is None:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # OpenBLAS's least
    parser = build_parser()
    debug = os.environ.get("SATMEM_DEBUG") == "1"
    try:
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except KeyboardInterrupt as e:  # a sweep's says how many points are stored
        print(f"satmem: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as e:
        if debug or not isinstance(e, _user_errors()):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"satmem: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        # not with DuckDB loaded: its nanobind bindings count the objects an exit collection
        # did not free and print "nanobind: leaked N instances!" (a sweep's Ctrl-C showed it)
        if argv is None and "duckdb" not in sys.modules:
            import gc

            gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
