"""The offline schedule: true dependencies only, overlap where the data allows, the vector
engine's costs (dataflow.vector_ops, hwsim.units.vector.update_cycles), the critical path."""

import numpy as np
import pytest
import torch
from torch import nn

from dataflow import CompileOptions, compile, extract, simulate_program, simulate_workload
from dataflow.simulate import PATH_PARTS, critical_path
from dataflow.vector_ops import kernel, pass_period
from hwsim import isa
from hwsim.config import preset
from hwsim.program import COL
from hwsim.units.vector import update_cycles


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)


def res_cnn():
    return nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         Block(16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 8))


class Attention(nn.Module):
    def __init__(self, d=32, heads=2):
        super().__init__()
        self.heads = heads
        self.ln = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.fc1, self.act, self.fc2 = nn.Linear(d, 64), nn.GELU(), nn.Linear(64, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln(x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(self.act(self.fc1(x)))


def workloads():
    torch.manual_seed(0)
    yield extract(res_cnn(), torch.randn(2, 8, 8, 8), method="bdwp", pattern="2:8")
    yield extract(Attention(), torch.randn(2, 16, 32), method="bdwp", pattern="2:8")


def _producer_end(prog, st, dep, last_row):
    item, op = dep
    row = prog.last_store[op.name] if item.kind == "gemm" else last_row[id(item)]
    return st.schedule.end[row]


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("pregenerate", [False, True])
def test_offline_schedule_honours_every_plan_dependency(interleave, pregenerate):
    config = preset("vcu1525")
    opts = CompileOptions(interleave=interleave, pregenerate=pregenerate)
    for wl in workloads():
        prog = compile(wl, config, opts)
        st = simulate_program(prog)
        first, last_row, first_load = {}, {}, {}
        for r, k in enumerate(prog.item_of.tolist()):
            it = prog.items[k]
            first.setdefault(id(it), r)
            last_row[id(it)] = r
            if prog.table[r, 0] == isa.Opcode.LOAD:
                first_load.setdefault(id(it), r)
        for it in prog.items:
            for dep in it.deps:
                end = _producer_end(prog, st, dep, last_row)
                if it.stream_from is not None and dep is it.stream_from:
                    # drain-fused: its last pass runs after the GEMM's last tile is stored
                    assert st.schedule.start[last_row[id(it)]] > end, it.name
                    continue
                row = first_load[id(it)] if it.kind == "gemm" else first[id(it)]
                assert st.schedule.start[row] > end, (it.name, dep[0].name)


def test_weight_gradient_gemm_overlaps_the_backward_vector_chain():
    config = preset("vcu1525")
    wl = next(workloads())
    prog = compile(wl, config, CompileOptions(interleave=False))
    st = simulate_program(prog)
    items = prog.items
    wgrad = [r for r in range(len(prog.table)) if prog.table[r, 0] == isa.Opcode.GEMM
             and items[prog.item_of[r]].pass_ == "wgrad"]
    chain = [r for r in range(len(prog.table)) if prog.table[r, 0] == isa.Opcode.UPDATE
             and items[prog.item_of[r]].chain and items[prog.item_of[r]].pass_ != "fwd"]
    start, end = st.schedule.start, st.schedule.end
    overlap = sum(max(0, min(end[a], end[b]) - max(start[a], start[b]) + 1)
                  for a in wgrad for b in chain)
    assert overlap > 0


def test_vector_op_after_a_gemm_runs_on_its_stored_tiles():
    config = preset("vcu1525")
    wl = extract(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8)),
                 torch.randn(2048, 64))
    prog = compile(wl, config)
    st = simulate_program(prog)
    k, relu = next((k, it) for k, it in enumerate(prog.items) if it.name == "1.fwd")
    assert relu.stream_from is not None
    rows = np.nonzero(prog.item_of == k)[0]
    assert len(rows) > 1 and all(prog.table[r, 1] for r in rows)  # each waits on a STORE
    producer_end = st.schedule.end[prog.last_store[relu.stream_from[1].name]]
    assert st.schedule.start[rows[0]] < producer_end < st.schedule.start[rows[-1]]
    assert prog.table[rows, COL["count"]].sum() == 2048 * 64


def test_optimizer_update_costs_the_vector_units_update_cycles():
    config = preset("vcu1525")
    wl = next(workloads())
    prog = compile(wl, config)
    st = simulate_program(prog)
    upd = (prog.table[:, 0] == isa.Opcode.UPDATE) & (prog.table[:, COL["vperiod"]] == 0)
    assert upd.any()
    for r in np.nonzero(upd)[0]:
        count = int(prog.table[r, COL["count"]])
        formula = update_cycles(count, config.vector.lanes, 1)
        # or streaming w, g, v in and w, v, the fp16 copy out at the DRAM's peak
        stream = -(-count * 22 // int(config.dram_bytes_per_cycle)) + \
            config.dram_latency_cycles + 1
        assert st.schedule.duration[r] == max(formula, stream)
    n = sum(op.elements for op in wl.ops if op.kind == "update")
    assert prog.table[upd, COL["count"]].sum() == n


def test_norm_activation_and_residual_fuse_into_vector_passes():
    config = preset("vcu1525")
    prog = compile(next(workloads()), config)
    by_name = {it.name: it for it in prog.items}
    bn_relu = by_name["3.bn1.fwd + 3.relu.fwd"]
    assert [o.op for o in bn_relu.ops] == ["batch_norm", "relu"]
    k = prog.items.index(bn_relu)
    periods = prog.table[prog.item_of == k, COL["vperiod"]]
    assert set(periods.tolist()) == {1}  # statistics, then apply + ReLU: one read each
    res = next(it for it in prog.items if it.ops[0].name == "3.bn2.fwd")
    assert [o.op for o in res.ops] == ["batch_norm", "add", "relu"]
    k = prog.items.index(res)
    assert prog.table[prog.item_of == k, COL["vperiod"]][-1] == 2  # apply + residual + ReLU
    assert pass_period(kernel("batch_norm", "fwd").passes[1]) == 1


def test_critical_path_adds_up_to_the_step():
    config = preset("vcu1525")
    for wl in workloads():
        prog = compile(wl, config)
        st = simulate_program(prog)
        parts = critical_path(prog.table, st, config.queue_depth)
        assert set(parts) == set(PATH_PARTS)
        assert sum(parts.values()) == st.cycles
        assert parts["gemm_sparse"] > 0 and parts["gemm_dense"] > 0
    _, _, totals = simulate_workload(wl, config, CompileOptions(offline_schedule=False))
    assert sum(totals[f"path_{k}"] for k in PATH_PARTS) == totals["cycles"]


def test_stride1_same_conv_backward_is_a_transposed_convolution():
    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, bias=False))
    w = extract(model, torch.randn(2, 16, 6, 6), method="bdwp", pattern="2:8")
    ops = {op.name: op for op in w}
    p = 2 * 6 * 6
    assert (ops["0.bgrad"].m, ops["0.bgrad"].n, ops["0.bgrad"].k) == (p, 16, 32 * 9)
    assert ops["0.bgrad"].macs == ops["0.fwd"].macs and ops["0.bgrad"].sparsity == (2, 8)
    assert not any(op.op == "col2im" for op in w)
