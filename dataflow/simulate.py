"""``simulate_model``: one training step, prefill or decode step of a zoo model (or a
training step or inference pass of your own, :mod:`dataflow.frontend`) on a config, against
dense.

Phases (:data:`PHASES`): ``train`` is one training step (forward, loss, backward, optimizer
updates; for MemoryFormer the sparse table updates); ``prefill`` an inference pass over the
sequence; ``decode`` one new token whose attention reads a KV cache of ``context`` positions
(MemoryFormer's :class:`dataflow.zoo.memoryformer.CachedMemoryFormerLM`; for ``pythia70m`` the
same change to its attention, made here). Prefill and decode are for the language models
(:func:`model_phases`). Lookup commands (HASH, GATHER, SCATTER) run on the lookup engine over
the config's memory tiers; their bytes and energy are reported per tier (``tier_<name>``).

Cycles, traffic and energy come from :func:`hwsim.run` on the compiled program's command table
(the unit models' closed forms and the decoupled controller; energy from :mod:`hwsim.energy`).
The vector engine's elementwise passes are compiler estimates (:mod:`dataflow.vector_ops`);
every other command is timed by the closed forms the RTL is checked against. Per-op cycles
are attributed by completion: an op is charged the cycles between the latest completion of the
ops before it (in program order) and its own last completion, so the per-op cycles sum to the
step's cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from hwsim import isa
from hwsim.buffers import elem_bytes_of
from hwsim.config import AcceleratorConfig, load_config
from hwsim.engine import Stats
from hwsim.program import COL
from hwsim.units import REGISTRY, Accounting

from .compiler import CompiledProgram, compile, simulate_program
from .optimizations import CompileOptions
from .workload import Workload, default_skip, extract, required_skip
from .zoo import get_model, model_names
from .zoo.gpt import Attention, GPTConfig, _rotate

__all__ = ["PATH_PARTS", "PHASES", "ModelResult", "critical_path", "model_phases",
           "simulate_model", "simulate_workload"]

PATH_PARTS = ("gemm_dense", "gemm_sparse", "vector", "update", "dma_in", "dma_out", "sore",
              "lookup", "control")
"""Parts of a step's critical path (:func:`critical_path`)."""
_UNIT_OF = np.zeros(max(int(o) for o in isa.Opcode) + 1, np.int64)
for _op in isa.Opcode:
    _UNIT_OF[int(_op)] = int(isa.command_class(_op).UNIT)


def critical_path(table: np.ndarray, st: Stats, queue_depth: int,
                  trace: list | None = None) -> dict[str, int]:
    """The step's cycles split by what its critical path ran: a walk back from the last command
    through whatever bound each start (the token it waited for, the previous command of its
    unit, or the controller accepting it: each accept cycle is ``control``).

    Returns the cycles per :data:`PATH_PARTS` entry (GEMMs dense and sparse, vector passes,
    optimizer updates, DMA in and out, SORE, the lookup engine's HASH, GATHER and SCATTER, the
    controller); they sum to ``st.cycles``.
    ``trace``, when given, receives the commands on the path (last first).
    """
    n = len(table)
    out = dict.fromkeys(PATH_PARTS, 0)
    if n == 0:
        return out
    op = table[:, 0]
    unit = _UNIT_OF[op]
    sch = st.schedule
    start, end, acc, tok = sch.start, sch.end, sch.accept, sch.token
    prev_same = np.full(n, -1, np.int64)
    qslot = np.full(n, -1, np.int64)
    for u in np.unique(unit):
        idx = np.nonzero(unit == u)[0]
        prev_same[idx[1:]] = idx[:-1]
        if len(idx) > queue_depth:
            qslot[idx[queue_depth:]] = idx[:-queue_depth]
    wait, signal = table[:, 1], table[:, 2]
    prods = [np.nonzero((signal >> s) & 1)[0] for s in range(8)]
    cons = [np.nonzero((wait >> s) & 1)[0] for s in range(8)]
    prefix_last = np.maximum.accumulate(np.where(end == np.maximum.accumulate(end),
                                                 np.arange(n), 0))
    cat = np.where(op == isa.Opcode.GEMM,
                   np.where(table[:, COL["sparse"]] != 0, 1, 0),
                   np.select([op == isa.Opcode.UPDATE, op == isa.Opcode.LOAD,
                              op == isa.Opcode.STORE, op == isa.Opcode.PRUNE,
                              unit == isa.Unit.LOOKUP],
                             [np.where(table[:, COL["vperiod"]] == 0, 3, 2), 4, 5, 6, 7], 8))
    c = int(np.argmax(end))
    t = int(end[c]) + 1
    state = "end"
    while True:
        if state == "end":
            out[PATH_PARTS[cat[c]]] += t - int(start[c])
            if trace is not None:
                trace.append(c)
            t = int(start[c])
            state = "start"
            continue
        if t <= 0:
            break
        if state == "start":
            nxt = -1
            if tok[c] == t:
                w = int(wait[c])
                for s in range(8):
                    if (w >> s) & 1:
                        k = int(np.searchsorted(cons[s], c))
                        p = int(prods[s][k])
                        if end[p] + 1 == t:
                            nxt = p
                            break
            if nxt < 0 and prev_same[c] >= 0 and end[prev_same[c]] + 1 == t:
                nxt = int(prev_same[c])
            if nxt < 0 and unit[c] == isa.Unit.CONTROL and c > 0 \
                    and end[prefix_last[c - 1]] + 1 == t:
                nxt = int(prefix_last[c - 1])
            if nxt >= 0:
                c, state = nxt, "end"
                continue
            if acc[c] + 1 == t:
                out["control"] += 1
                t = int(acc[c])
                state = "accept"
                continue
            out["control"] += t  # not explained by the rules above
            break
        # state == "accept": what held the controller until it accepted command c
        q = int(qslot[c])
        if q >= 0 and start[q] + 1 == t:
            out["control"] += 1
            c, t, state = q, int(start[q]), "start"
        elif c > 0 and acc[c - 1] + 1 == t:
            out["control"] += 1
            c, t = c - 1, t - 1
        elif c > 0 and unit[c - 1] == isa.Unit.CONTROL and end[c - 1] + 1 == t:
            c, state = c - 1, "end"
        else:
            out["control"] += t
            break
    return out


@dataclass
class ModelResult:
    """What :func:`simulate_model` measured.

    Attributes
    ----------
    model, method, pattern, config : str
    batch : int
    ops : pandas.DataFrame
        One row per item (GEMM group, vector op, prune, lookup op): ``name, layer, pass, kind,
        mapping, commands, cycles, array_busy, macs, utilisation, dram_bytes, tier_bytes``
        (``tier_bytes``: bytes the lookup engine moved to and from its memory tiers).
    per_layer, per_pass : pandas.DataFrame
        ``ops`` summed by layer and by pass.
    totals : dict
        ``cycles, seconds, macs, utilisation, dram_read, dram_write, dram_other, dram_total,
        sram_read, sram_write``, ``tier_<name>_read`` and ``tier_<name>_write`` for each
        lookup tier the run used, ``energy_pj`` and ``energy_<component>_pj`` (one component
        ``tier_<name>`` per tier used), ``busy_<unit>``, ``path_<part>`` (:data:`PATH_PARTS`),
        ``commands``.
    dense_cycles : int or None
        The same model and phase with method ``dense`` (None when it was not run).
    ideal_speedup : float
        ``Workload.ideal_speedup()`` (dense over sparse GEMM MACs; 1.0 without GEMMs).
    dense_layers : tuple of str
        The ``skip`` entries the workload was extracted with (layers kept dense).
    phase : str
        A :data:`PHASES` entry.
    seq_len : int or None
        Tokens the pass runs (language models; 1 for a decode step).
    context : int
        Cached positions a decode step attends to (0 otherwise).
    """

    model: str
    method: str
    pattern: str | None
    config: str
    batch: int
    ops: pd.DataFrame
    per_layer: pd.DataFrame
    per_pass: pd.DataFrame
    totals: dict = field(default_factory=dict)
    dense_cycles: int | None = None
    ideal_speedup: float = 1.0
    dense_layers: tuple[str, ...] = ()
    phase: str = "train"
    seq_len: int | None = None
    context: int = 0

    @property
    def speedup(self) -> float | None:
        """Dense cycles over these cycles."""
        if self.dense_cycles is None:
            return None
        return self.dense_cycles / self.totals["cycles"]

    @property
    def what(self) -> str:
        """The step in words: ``training step``, ``prefill of 2048 tokens``, ``decode of one
        token after 2048 cached``."""
        if self.phase == "decode":
            return f"decode of one token after {self.context:,} cached"
        seq = "" if self.seq_len is None else f" of {self.seq_len:,} tokens"
        return ("training step" if self.phase == "train" else "prefill") + seq

    def summary(self) -> str:
        t = self.totals
        sp = "" if self.speedup is None or self.method == "dense" else (
            f", speedup over dense {self.speedup:.3f}x (ideal {self.ideal_speedup:.3f}x)")
        tiers = sum(v for k, v in t.items() if k.startswith("tier_"))
        look = f", lookup tiers {tiers / 1e6:.1f} MB" if tiers else ""
        head = " ".join(x for x in (self.model, self.method, self.pattern, self.what) if x)
        return (f"{head} on {self.config} batch {self.batch}: {t['cycles']:,} cycles "
                f"({t['seconds'] * 1e3:.3f} ms), "
                f"utilisation {t['utilisation']:.1%}, DRAM {t['dram_total'] / 1e6:.1f} MB"
                f"{look}, energy {t['energy_pj'] / 1e9:.3f} mJ{sp}")


def _tier_bytes(table: np.ndarray, item_of: np.ndarray, n_items: int,
                config: AcceleratorConfig) -> np.ndarray:
    """Tier bytes (read and written) of each item's lookup commands, by the lookup unit's own
    accounting (:meth:`hwsim.units.UnitModel.account`), so they sum to the run's
    ``tier_*`` bytes."""
    out = np.zeros(n_items, np.int64)
    unit = _UNIT_OF[table[:, 0]]
    idx = np.nonzero((unit == isa.Unit.LOOKUP) & (item_of >= 0))[0]
    if len(idx) == 0:
        return out
    model = REGISTRY[isa.Opcode.GATHER]
    bounds = np.flatnonzero(np.diff(item_of[idx])) + 1
    for part in np.split(idx, bounds):
        acc = Accounting()
        model.account(table[part], None, config, acc)
        out[item_of[part[0]]] += sum(v for k, v in acc.bytes.items() if k.startswith("tier_"))
    return out


def simulate_workload(workload: Workload, config: AcceleratorConfig | str,
                      options: CompileOptions | None = None
                      ) -> tuple[CompiledProgram, pd.DataFrame, dict]:
    """Compile and time one workload on ``config`` (a config, preset name or YAML path);
    returns ``(program, per-item table, totals)``."""
    config = load_config(config)
    prog = compile(workload, config, options)
    st = simulate_program(prog, config)
    items = prog.items
    n_items = len(items)
    op = prog.table[:, 0]
    it = prog.item_of
    valid = it >= 0
    finish = np.full(n_items, -1, np.int64)
    np.maximum.at(finish, it[valid], st.schedule.end[valid])
    charged = np.zeros(n_items, np.int64)
    running = -1
    for k in range(n_items):
        if finish[k] > running:
            charged[k] = finish[k] - running
            running = finish[k]
    array = op == isa.Opcode.GEMM
    busy = np.bincount(it[array & valid], st.schedule.duration[array & valid], n_items)
    macs = np.bincount(it[valid], prog.useful_macs[valid], n_items)
    ncmd = np.bincount(it[valid], minlength=n_items)
    nbytes = prog.table[:, COL["rows"]] * prog.table[:, COL["elems"]]
    ebuf = elem_bytes_of(prog.table[:, COL["buf"]], config)
    dma = (op == isa.Opcode.LOAD) | (op == isa.Opcode.STORE)
    traffic = np.bincount(it[dma & valid], (nbytes * ebuf)[dma & valid], n_items)
    tier = _tier_bytes(prog.table, it, n_items, config)
    pes = config.array.pes
    rows = []
    for k, item in enumerate(items):
        rows.append((item.name, item.layer, item.pass_, item.kind, item.mapping, int(ncmd[k]),
                     int(charged[k]), int(busy[k]), int(macs[k]),
                     macs[k] / (charged[k] * pes) if charged[k] else 0.0, int(traffic[k]),
                     int(tier[k])))
    df = pd.DataFrame(rows, columns=["name", "layer", "pass", "kind", "mapping", "commands",
                                     "cycles", "array_busy", "macs", "utilisation",
                                     "dram_bytes", "tier_bytes"])
    seconds = st.cycles / (config.clock_mhz * 1e6)
    other = st.bytes["dram_other"]
    dram_total = st.bytes["dram_read"] + st.bytes["dram_write"] + other
    totals = {
        "cycles": st.cycles, "seconds": seconds, "macs": int(prog.useful_macs.sum()),
        "utilisation": float(prog.useful_macs.sum()) / (st.cycles * pes) if st.cycles else 0.0,
        **{k: int(v) for k, v in st.bytes.items()}, "dram_total": dram_total,
        "energy_pj": st.energy_total_pj,
        **{f"energy_{k}_pj": v for k, v in st.energy_pj.items()},
        **{f"busy_{k}": v for k, v in st.busy.items()},
        "commands": len(prog),
        **{f"path_{k}": v for k, v in critical_path(prog.table, st, config.queue_depth).items()},
        "busy_update": int(st.schedule.duration[(op == isa.Opcode.UPDATE)
                                       & (prog.table[:, COL["vperiod"]] == 0)].sum()),
    }
    return prog, df, totals


def _group(df: pd.DataFrame, key: str) -> pd.DataFrame:
    g = df.groupby(key, sort=False)[["cycles", "array_busy", "macs", "dram_bytes", "tier_bytes",
                                     "commands"]].sum()
    return g.reset_index()


# --- phases: training step, prefill, decode -----------------------------------------------------

PHASES = ("train", "prefill", "decode")
"""What :func:`simulate_model` runs: one training step (forward, backward, updates; table
updates for MemoryFormer), an inference pass over the sequence, one token after a KV cache."""
_LANGUAGE = ("pythia70m",)  # SAT-family models with prefill and decode (and the lookup family)


def model_phases(model_name: str) -> tuple[str, ...]:
    """The :data:`PHASES` that :func:`simulate_model` runs for zoo model ``model_name``: all of
    them for the language models (``pythia70m`` and the MemoryFormer family), ``("train",)``
    for the vision models.

    Raises
    ------
    ValueError
        For a name :func:`dataflow.zoo.model_names` does not list.
    """
    if model_name not in model_names("all"):
        raise ValueError(f"unknown model {model_name!r}; known models are "
                         f"{', '.join(model_names('all'))}")
    if model_name in _LANGUAGE or model_name in model_names("lookup"):
        return PHASES
    if model_name in model_names("attmemo"):
        return ("train", "prefill")  # an encoder: one inference pass, no decode
    return ("train",)


class _CachedAttention(Attention):
    """Pythia's attention for ``S`` new tokens after ``context`` cached positions (zeros of the
    cache's shape: a workload depends on shapes only), as :mod:`dataflow.zoo.memoryformer`'s
    cached block does for MemoryFormer. Rotary angles are those of positions ``context`` on."""

    def __init__(self, config: GPTConfig, context: int) -> None:
        super().__init__(config)
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        c = self.context
        qkv = self.query_key_value(x).view(b, s, self.heads, 3 * (d // self.heads))
        q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)
        if self.rotary:
            cos, sin = self._cos_sin(c + s, x.device)
            cos, sin, r = cos[c:], sin[c:], self.rotary
            q = torch.cat((_rotate(q[..., :r], cos, sin), q[..., r:]), dim=-1)
            k = torch.cat((_rotate(k[..., :r], cos, sin), k[..., r:]), dim=-1)
        cache = torch.zeros(b, self.heads, c, d // self.heads, device=x.device, dtype=x.dtype)
        k, v = torch.cat((cache, k), dim=2), torch.cat((cache, v), dim=2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        future = torch.ones(s, c + s, dtype=torch.bool, device=x.device).triu(c + 1)
        probs = scores.masked_fill(future, float("-inf")).softmax(-1)
        return self.dense((probs @ v).transpose(1, 2).reshape(b, s, d))


def _phase_model(model_name: str, phase: str, batch: int, context: int | None, model_kw: dict):
    """``(model, example input, seq_len, context)`` of ``phase``; a decode step is one new token
    (``seq_len`` 1) after ``context`` cached positions (default: the sequence length)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(map(repr, PHASES))}, not {phase!r}")
    if phase not in model_phases(model_name):
        have = model_phases(model_name)
        raise ValueError(f"phase {phase!r} is for the language models (pythia70m, "
                         f"memoryformer_*); model {model_name!r} has only phase"
                         f"{'s' if len(have) > 1 else ''} {', '.join(map(repr, have))}")
    if context is not None and phase != "decode":
        raise ValueError(f"context is for phase 'decode', not {phase!r}")
    kw = dict(model_kw)
    lookup = model_name in model_names("lookup")
    if phase != "decode":
        if lookup and "max_seq_len" not in kw and isinstance(kw.get("seq_len"), int):
            kw["max_seq_len"] = max(2048, kw["seq_len"])  # position table for the sequence
        model, x = get_model(model_name, batch=batch, device="meta", **kw)
        return model, x, (x.shape[1] if x.dim() == 2 else None), 0
    seq = kw.pop("seq_len", 2048)
    context = seq if context is None else context
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ValueError(f"context must be a non-negative integer, not {context!r}")
    if model_name == "pythia70m":
        model, x = get_model(model_name, batch=batch, device="meta", seq_len=1, **kw)
        with torch.device("meta"):
            for layer in model.layers:
                layer.attention = _CachedAttention(model.config, context)
        return model, x, 1, context
    limit = max(2048, context + 1) if "max_seq_len" not in kw else kw.pop("max_seq_len")
    model, x = get_model(model_name, batch=batch, device="meta", seq_len=1, context=context,
                         max_seq_len=limit, **kw)
    return model, x, 1, context


def dense_layers(model, skip, method: str, pattern, *, own_model: bool = False
                 ) -> tuple[str, ...]:
    """The layers kept dense under policy ``skip``: ``"default"`` (:func:`default_skip`, plus,
    for a model not from the zoo, what cannot be N:M at ``pattern``, e.g. a depthwise conv),
    ``"required"`` (:func:`required_skip`) or the names themselves."""
    if skip == "default":
        sk = default_skip(model)
        if own_model and method != "dense":
            sk += tuple(n for n in required_skip(model, method, pattern) if n not in sk)
        return sk
    if skip == "required":
        return required_skip(model, method, pattern) if method != "dense" else ()
    return tuple(skip)


def simulate_model(model_name, method: str | None = None, pattern: str | None = "2:8",
                   config: AcceleratorConfig | str = "vcu1525", batch: int = 1,
                   options: CompileOptions | None = None, *, skip: str | tuple = "default",
                   compare_dense: bool = True, phase: str = "train", context: int | None = None,
                   example_input=None, input_shape=None, input_dtype=None,
                   vocab: int | None = None, **model_kw) -> ModelResult:
    """One training step, prefill or decode step of a zoo model, or a training step or
    inference pass of your own model: per-op, per-layer, per-pass results.

    Parameters
    ----------
    model_name : str, Path, nn.Module, ExportedProgram or (nn.Module, example_input)
        A :func:`dataflow.zoo.model_names` entry (family ``"all"``), or your model:
        ``"file.py:factory"`` (a function returning an ``nn.Module`` or ``(module,
        example_input)``), a ``torch.export`` program file ``"program.pt2"``, a module or an
        exported program (:func:`dataflow.frontend.load_model`).
    method : {"dense", "srste", "bdwp", "transposable"} or None
        None: ``"bdwp"`` for the SAT family, ``"dense"`` for MemoryFormer (whose only GEMM
        layer with weights is the classifier, which ``skip="default"`` keeps dense).
    pattern : str or None
        ``"N:M"``; ignored for ``dense``.
    config : AcceleratorConfig or str
        A config, preset name or YAML path.
    batch : int
    options : CompileOptions, optional
    skip : "default", "required" or tuple of str
        Layers kept dense: ``"default"`` is :func:`dataflow.workload.default_skip` (a conv
        stem and the classifier), ``"required"`` :func:`dataflow.workload.required_skip` (only
        the layers that cannot be N:M at ``pattern``).
    compare_dense : bool
        Also simulate method ``dense`` (same phase) for the speedup.
    phase : {"train", "prefill", "decode"}
        ``train``: one training step (forward, loss, backward, weight and table updates);
        ``prefill``: an inference pass over ``seq_len`` tokens; ``decode``: one new token
        attending to ``context`` cached positions (KV cache), inference. Prefill and decode are
        for the language models (:func:`model_phases`).
    context : int, optional
        Decode only: cached positions, default ``seq_len`` (2048 unless given). Unless
        ``max_seq_len`` is given, MemoryFormer's position table grows to the positions the
        phase needs (``seq_len``, or ``context + 1``) when they exceed 2048.
    example_input, input_shape, input_dtype, vocab
        Your model's batch (:func:`dataflow.frontend.load_model`): an example input, or the
        shape (``"8,3,32,32"``), dtype (``"float"``, ``"long"``) and token-id bound of a
        generated one. The batch is the input's leading dimension (``batch`` is for zoo
        models). With ``skip="default"`` your model also keeps dense the layers that cannot
        be N:M (:func:`dataflow.workload.required_skip`: a depthwise convolution, an RGB
        stem).
    **model_kw
        Passed to :func:`dataflow.zoo.get_model` (e.g. ``seq_len=512``).

    Raises
    ------
    dataflow.compiler.CompileError
        The pattern is not supported by the config (checked before extraction).
    ValueError
        An unknown model or phase, a phase the model does not have, ``context`` outside
        decode, or a bad model option; for your model also a file, factory or input that
        cannot be used (:class:`dataflow.frontend.ModelFileError`), or a failing forward pass.
    UnmappableOpError
        Your model calls an op with no lowering (the message names it and what to write).
    """
    cfg = load_config(config)
    options = options or CompileOptions()
    zoo = isinstance(model_name, str) and model_name in model_names("all")
    if method is None:
        method = "dense" if zoo and model_name in model_names("lookup") else "bdwp"
    if method != "dense":
        from .compiler import CompileError

        if pattern is None:
            raise CompileError(f"method {method!r} needs a pattern such as '2:8'")
        if not cfg.supports_pattern(pattern):
            raise CompileError(f"pattern {pattern} is not supported by config {cfg.name!r} "
                               f"(supported: {cfg.array.patterns})")
    trace: tuple[type, ...] = ()
    if zoo:
        given = [k for k, v in (("example_input", example_input), ("input_shape", input_shape),
                                ("input_dtype", input_dtype), ("vocab", vocab)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: for your own model, not zoo model "
                             f"{model_name!r} (which takes batch and seq_len)")
        model, x, seq, ctx = _phase_model(model_name, phase, batch, context, model_kw)
        name = model_name
    else:
        own = _own_model(model_name, phase, batch, context, model_kw,
                         dict(example_input=example_input, input_shape=input_shape,
                              input_dtype=input_dtype, vocab=vocab))
        model, x, name, trace, batch = (own.module, own.example_input, own.name,
                                        own.trace_through, own.batch)
        first = x[0]
        seq = first.shape[1] if first.dim() == 2 and not first.is_floating_point() else None
        ctx = 0
    training = phase == "train"
    sk = dense_layers(model, skip, method, pattern, own_model=not zoo)

    def workload(meth):
        try:
            return extract(model, x, method=meth, pattern=None if meth == "dense" else pattern,
                           skip=sk, name=name, training=training, trace_through=trace)
        except RuntimeError as e:  # your model's forward pass on the input it was given
            if zoo:
                raise
            shapes = ", ".join(str(tuple(t.shape)) for t in x if torch.is_tensor(t))
            raise ValueError(f"model {name} failed on an input of shape {shapes}: "
                             f"{str(e).splitlines()[0]} (check the input shape)") from e

    wl = workload(method)
    _, df, totals = simulate_workload(wl, cfg, options)
    dense = None
    if compare_dense:
        if method == "dense":
            dense = totals["cycles"]
        else:
            dense = simulate_workload(workload("dense"), cfg, options)[2]["cycles"]
    ideal = wl.ideal_speedup() if wl.gemms() else 1.0
    return ModelResult(name, method, None if method == "dense" else pattern, cfg.name,
                       batch, df, _group(df, "layer"), _group(df, "pass"), totals, dense,
                       ideal, sk, phase, seq, ctx)


def _own_model(spec, phase: str, batch: int, context, model_kw: dict, inputs: dict):
    """A user's model (:func:`dataflow.frontend.load_model`) for ``phase``, or why not."""
    from .frontend import is_model_file, load_model

    if isinstance(spec, str) and not is_model_file(spec):
        raise ValueError(f"unknown model {spec!r}; known models are "
                         f"{', '.join(model_names('all'))}, or give your own as "
                         f"FILE.py:FACTORY or a torch.export program FILE.pt2")
    if phase not in ("train", "prefill"):
        raise ValueError(f"phase must be 'train' or 'prefill' for your own model, not "
                         f"{phase!r} (a decode step needs a KV cache: model one as a module "
                         f"whose input is the new token and whose attention reads the cache)")
    if context is not None:
        raise ValueError("context is for the decode step of the zoo's language models")
    if batch != 1:
        raise ValueError(f"batch={batch} is for zoo models: your model's batch is the leading "
                         f"dimension of its input (input_shape, --input-shape)")
    if model_kw:
        raise ValueError(f"{', '.join(sorted(model_kw))}: options of zoo models, not of "
                         f"your own (its input shape is input_shape)")
    return load_model(spec, **inputs)
