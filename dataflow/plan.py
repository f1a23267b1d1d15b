"""The compiler's plan: a workload's ops as ordered items with their true dependencies.

An :class:`Item` is one schedulable unit: a GEMM op (or, with ``interleave``, two independent
backward GEMMs of a layer whose tiles alternate), a vector-engine kernel (one op, plus the unary
pointwise ops fused into it), an optimizer update, a SORE prune, or a lookup-engine op (a hash,
gather, their gradients, a scatter or a table's row update: never fused). Items are in a topological
order (**plan order**); each lists what it waits for as ``(item, op)`` pairs, ``op`` the GEMM op
whose last output is needed (a group's members finish at different times) or None for a whole
vector or prune item.

Dependencies, as the data flows:

- the **chain** is the critical path: forward ops in order, the loss, then per layer the
  backward-data GEMM and the vector ops on ``dX`` (col2im, activation and norm backward); each
  chain item waits for the previous one (a norm's ``dγ, dβ`` reductions are on the chain, before
  its ``dX`` pass that uses them);
- a layer's **weight-gradient** GEMM waits only for that layer's ``dY`` (what its first backward
  item waits for), so the array runs it while the vector engine works on the chain;
- bias gradients, embedding scatter-adds and **optimizer updates** are side vector work: an
  update waits for its layer's weight-gradient ops; a pre-generation prune waits for its update;
  an online prune has no input dependency (it reads the current weight) and its GEMM waits for
  it;
- a vector item that directly consumes a GEMM (the chain predecessor is that GEMM) records it in
  ``stream_from``: its first pass may run on the GEMM's output tiles as they are stored.

Fusion (see :mod:`dataflow.vector_ops`). Forward: a unary pointwise op joins the vector kernel
before it (same pass and element count), or else the next one; a binary elementwise op (a
residual ``add``) joins the kernel before it as one more read stream (BN-apply + add + ReLU is
one pass), or, right after a GEMM, the next kernel's first pass as one more read stream and
the sum's write (add + layer-norm statistics is one pass). Backward: a ReLU's backward
directly before a norm's backward (the ReLU followed the norm) joins it: its mask is
recomputed from the norm's input, which the norm's passes read anyway; a residual ``add``'s
backward (the sum of the two gradients where the residual forks) directly after a ReLU's
backward joins that pass as one more read stream, and so does the norm's ``dγ, dβ``
reduction right after them (it sums over that pass's output and reads the norm's input).
Other backward vector ops are not fused; they overlap the weight-gradient GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .optimizations import CompileOptions
from .vector_ops import BINARY, POINTWISE
from .workload import Op, Workload

__all__ = ["Item", "plan"]

_NORMS = frozenset(("batch_norm", "layer_norm", "group_norm", "rms_norm", "norm"))


@dataclass(eq=False)
class Item:
    """One schedulable unit of the program: a GEMM group, a vector kernel, an update or a prune.

    Attributes
    ----------
    kind : {"gemm", "vector", "prune", "lookup"}
    ops : list of Op
        GEMM ops (two when interleaved; the first is the chain's); for a vector item the op
        whose kernel runs, then the pointwise ops fused into it.
    name, layer, pass_ : str
    mapping : str
        The mappings of its GEMM ops, for reports.
    deps : list of (Item, Op or None)
        What it waits for (module docstring).
    chain : bool
        On the critical chain (False: weight gradients, bias gradients, updates, prunes).
    prune : tuple or None
        ``(K, N, n, m)`` of a weight to prune.
    stream_from : (Item, Op) or None
        The GEMM whose output a vector item's first pass consumes directly.
    """

    kind: str
    ops: list
    name: str
    layer: str
    pass_: str
    mapping: str = ""
    deps: list = field(default_factory=list)
    chain: bool = True
    prune: tuple | None = None
    stream_from: tuple | None = None

    @property
    def fused(self) -> list:
        """The pointwise ops fused into a vector item (after its kernel op)."""
        return self.ops[1:] if self.kind == "vector" else []


def _reorder_norm_reductions(ops: list[Op]) -> list[Op]:
    """A norm's backward lists ``dX`` then ``dγ, dβ``; the reductions come first."""
    out = list(ops)
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        if (a.kind == b.kind == "vector" and a.pass_ == "bgrad" and b.pass_ == "wgrad"
                and a.layer == b.layer and a.op == b.op and a.op in _NORMS):
            out[i], out[i + 1] = b, a
    return out


def _groups(main: list[Op], interleave: bool) -> list[list[Op]]:
    """GEMM groups (interleaved backward pairs of a layer) and single ops, in order."""
    bwd = ("bgrad", "wgrad")
    groups: list[list[Op]] = []
    i = 0
    while i < len(main):
        op = main[i]
        if interleave and op.kind == "gemm" and op.pass_ in bwd:
            j = i + 1
            between = []
            while j < len(main) and main[j].kind == "vector" and main[j].op == "col2im" \
                    and main[j].layer == op.layer:
                between.append(main[j])
                j += 1
            if j < len(main) and main[j].kind == "gemm" and main[j].layer == op.layer \
                    and main[j].pass_ in bwd:
                groups.append([op, main[j]])
                groups.extend([v] for v in between)
                i = j + 1
                continue
        groups.append([op])
        i += 1
    return groups


def _fuse_vector_ops(groups: list[list[Op]]) -> list[list[Op]]:
    """Fuse elementwise ops into adjacent vector kernels (module docstring)."""

    def host_ok(g: list[Op], op: Op) -> bool:
        h = g[0]
        return h.kind == "vector" and h.pass_ == op.pass_ and h.elements == op.elements

    out: list[list[Op]] = []
    pending: list[Op] = []  # forward pointwise ops waiting for the next kernel
    relu_bwd: Op | None = None  # a ReLU's backward waiting for the norm backward after it
    for g in groups:
        op = g[0]
        single = len(g) == 1 and op.kind == "vector"
        if relu_bwd is not None:
            if single and op.op in _NORMS and op.pass_ in ("wgrad", "bgrad") \
                    and op.elements == relu_bwd.elements:
                g = [op, relu_bwd]
            else:
                out.append([relu_bwd])
            relu_bwd = None
        if single and op.pass_ == "bgrad" and op.op == "relu":
            relu_bwd = op
            continue
        if single and op.pass_ == "bgrad" and op.op == "add" and out \
                and out[-1][0].op == "relu" and out[-1][0].pass_ == "bgrad" \
                and out[-1][0].elements == op.elements and len(out[-1]) == 1:
            out[-1].append(op)  # the residual's gradient sum, one more read of the ReLU pass
            continue
        if single and op.pass_ == "wgrad" and op.op in _NORMS and out \
                and len(out[-1]) == 2 and out[-1][0].op == "relu" \
                and out[-1][1].op == "add" and out[-1][0].pass_ == "bgrad" \
                and out[-1][0].elements == op.elements:
            out[-1].append(op)  # the norm's dγ, dβ sums over that pass's output
            continue
        if single and op.pass_ == "fwd" and op.op in POINTWISE:
            if not pending and out and host_ok(out[-1], op):
                out[-1].append(op)
                continue
            if pending and pending[0].elements != op.elements:
                out.append(pending)
                pending = []
            pending.append(op)
            continue
        if single and op.pass_ == "fwd" and op.op in BINARY and not pending and out \
                and host_ok(out[-1], op):
            out[-1].append(op)
            continue
        if single and op.pass_ == "fwd" and op.op in BINARY and not pending and out \
                and out[-1][0].kind == "gemm":
            pending.append(op)  # after a GEMM: it joins the next kernel's first pass
            continue
        if pending and single and host_ok(g, pending[0]):
            out.append(list(g) + pending)
        else:
            if pending:
                out.append(pending)
            out.append(list(g))
        pending = []
    if relu_bwd is not None:
        out.append([relu_bwd])
    if pending:
        out.append(pending)
    return out


def plan(workload: Workload, options: CompileOptions) -> list[Item]:
    """Order the ops of ``workload`` into items with their dependencies (module docstring)."""
    offline = options.offline_schedule
    main = [op for op in workload.ops if op.kind != "update"]
    updates = [op for op in workload.ops if op.kind == "update"]
    if not options.vector_ops or options.fuse_elementwise:
        main = [op for op in main if op.kind in ("gemm", "lookup")]
    if not options.vector_ops:
        updates = []
    main = _reorder_norm_reductions(main)
    groups = _fuse_vector_ops(_groups(main, options.interleave))
    items: list[Item] = []
    last_chain: tuple | None = None  # (item, op) the next chain item waits for
    first_bwd_dep: dict[str, tuple | None] = {}
    wgrad_deps: dict[str, list] = {}
    for g in groups:
        op0 = g[0]
        kind = op0.kind if op0.kind in ("gemm", "lookup") else "vector"
        passes = {o.pass_ for o in g}
        name = op0.name if len(g) == 1 else " + ".join(o.name for o in g)
        it = Item(kind, list(g), name, op0.layer, "/".join(sorted(passes)))
        side = passes == {"wgrad"} and not (kind == "vector" and op0.op in _NORMS)
        if side:
            dep = first_bwd_dep.get(op0.layer, last_chain)
            it.chain = False
        else:
            dep = last_chain
            if passes & {"bgrad", "wgrad"}:
                first_bwd_dep.setdefault(op0.layer, dep)
            last_chain = (it, op0 if kind == "gemm" else None)
        if dep is not None:
            it.deps.append(dep)
            if kind == "vector" and dep[0].kind == "gemm" and not side:
                it.stream_from = dep
        if kind == "gemm":
            for o in g:
                if o.pass_ == "wgrad":
                    wgrad_deps.setdefault(o.layer, []).append((it, o))
        items.append(it)
    if not options.vector_ops:
        return items
    return _add_prunes_and_updates(workload, items, updates, wgrad_deps, options, offline)


def _add_prunes_and_updates(workload, items, updates, wgrad_deps, options, offline):
    sparse_w: dict[str, dict[str, tuple]] = {}  # layer -> pass -> (K, N, n, m)
    for op in workload.gemms():
        if op.sparsity is not None and op.pass_ in ("fwd", "bgrad"):
            sparse_w.setdefault(op.layer, {})[op.pass_] = (op.k, op.n) + tuple(op.sparsity)
    order: list[Item] = []
    if not options.pregenerate:
        # online: a PRUNE right before (offline schedule: one GEMM item before) each GEMM
        # item that reads a sparse weight
        gemm_pos = [k for k, it in enumerate(items) if it.kind == "gemm"]
        before: dict[int, list[Item]] = {}
        for gi, k in enumerate(gemm_pos):
            for op in items[k].ops:
                if op.sparsity is not None:
                    p = Item("prune", [], f"{op.name}.prune", op.layer, op.pass_, chain=False,
                             prune=(op.k, op.n) + tuple(op.sparsity))
                    items[k].deps.append((p, None))
                    at = gemm_pos[gi - 1] if offline and gi > 0 else k
                    before.setdefault(at, []).append(p)
        for k, it in enumerate(items):
            order.extend(before.get(k, []))
            order.append(it)
    else:
        order = list(items)

    def update_items(op: Op) -> list[Item]:
        deps = list(wgrad_deps.get(op.layer, [])) if offline else []
        u = Item("vector", [op], op.name, op.layer, "update", deps=deps, chain=False)
        out = [u]
        if options.pregenerate and op.name == f"{op.layer}.weight.update" \
                and op.layer in sparse_w:
            for pass_, shape in sorted(sparse_w[op.layer].items()):
                out.append(Item("prune", [], f"{op.layer}.{pass_}.pregen", op.layer, "update",
                                deps=[(u, None)], chain=False, prune=shape))
        return out

    if not offline:
        for op in updates:
            order.extend(update_items(op))
        return order
    # offline: each update goes in after the last of its layer's weight-gradient items
    pos = {id(it): k for k, it in enumerate(order)}
    pending: dict[int, list[Op]] = {}
    for op in updates:
        ws = wgrad_deps.get(op.layer)
        k = max(pos[id(it)] for it, _ in ws) + 1 if ws else len(order)
        pending.setdefault(k, []).append(op)
    final: list[Item] = []
    for k in range(len(order) + 1):
        for op in pending.get(k, []):
            final.extend(update_items(op))
        if k < len(order):
            final.append(order[k])
    return final
