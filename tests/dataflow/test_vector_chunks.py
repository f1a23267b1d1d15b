"""Chunked vector passes: a GEMM's loads wait only for the images of a vector kernel they read.

The compiler cuts the last pass of a chain vector kernel that GEMMs read along their batch axis
into chunks of whole images (:meth:`dataflow.compiler._Program._chunk_plan`); these tests check
on hwsim's schedule that every load of the consumer starts after the chunk holding the images
its step reads, that the array does start before the kernel's last chunk, and that the chunks
cost what the one pass cost plus a pipeline fill each.
"""

import numpy as np
import pytest
import torch
from torch import nn

import hwsim
from dataflow import CompileOptions, compile, extract, simulate_program
from dataflow.compiler import _step_chunk, batch_units
from dataflow.lower.emitter import Alloc
from dataflow.lower.gemm import gemm_blocks, gemm_tensors
from dataflow.lower.vector import vector_steps
from dataflow.mapping import OpShape
from dataflow.plan import plan
from dataflow.workload import Op, Workload
from hwsim import isa
from hwsim.config import preset
from hwsim.units.vector import pass_cycles

BATCH = 4


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * 32 * 32, 10))


@pytest.fixture(scope="module")
def workload():
    return extract(cnn(), torch.randn(BATCH, 8, 32, 32), method="bdwp", pattern="2:8",
                   skip=("0", "7"))


def test_batch_units_is_the_batch(workload):
    assert batch_units(workload) == BATCH


def test_step_chunk_axes_and_repetitions():
    fwd = Op("c.fwd", "c", "gemm", "fwd", "conv2d", m=400, n=8, k=8)
    assert _step_chunk(fwd, (0, 100, 0, 8), 0, 4) == 0
    assert _step_chunk(fwd, (0, 101, 0, 8), 0, 4) == 1
    assert _step_chunk(fwd, (300, 400, 0, 8), 0, 4) == 3
    wgrad = Op("c.wgrad", "c", "gemm", "wgrad", "conv2d", m=8, n=8, k=400)
    assert _step_chunk(wgrad, (0, 8, 0, 200), 0, 4) == 1  # the batch is its reduction axis
    pv = Op("a.pv", "a", "gemm", "fwd", "attn_pv", m=7, n=4, k=7, repeat=16)
    assert [_step_chunk(pv, (0, 7, 0, 7), r, 4) for r in (0, 3, 4, 15)] == [0, 0, 1, 3]


def test_chunked_pass_keeps_its_cost(workload):
    config = preset("vcu1525")
    it = next(i for i in plan(workload, CompileOptions()) if i.name.startswith("1.fwd"))
    order = {id(op): i for i, op in enumerate(workload.ops)}
    one = vector_steps(it, config, False, {}, order)
    four = vector_steps(it, config, False, {}, order, chunks=BATCH)
    assert [r[6] for r in four[-BATCH:]] == list(range(BATCH))
    assert {r[0] for r in four[-BATCH:]} == {it.ops[0].elements // BATCH}
    assert one[:-1] == four[:-BATCH]

    def cyc(rows):
        t = np.array([r[:5] for r in rows], np.int64)
        return int(pass_cycles(t[:, 0], t[:, 1], t[:, 2], t[:, 4], config).sum())

    extra = cyc(four) - cyc(one)
    assert 0 <= extra <= BATCH * 10  # one pipeline fill per chunk, the same entries


def test_consumer_loads_wait_for_the_images_they_read(workload):
    config = preset("vcu1525")
    prog = compile(workload, config)
    base = simulate_program(compile(workload, config, CompileOptions(chunk_vector=False)))
    st = simulate_program(prog)
    assert st.cycles <= base.cycles
    sch = st.schedule
    tab = prog.table
    item_of = np.asarray(prog.item_of)
    names = [it.name for it in prog.items]
    checked = 0
    for vec_name, gemm_name in (("1.fwd + 2.fwd", "3.fwd"), ("4.fwd + 5.fwd", "7.fwd")):
        kv, kg = names.index(vec_name), names.index(gemm_name)
        vrows = np.nonzero(item_of == kv)[0]
        chunk_rows = vrows[-BATCH:]  # the last pass, one row per image
        elems = prog.items[kv].ops[0].elements
        assert (tab[chunk_rows, 0] == isa.Opcode.UPDATE).all()
        op = prog.items[kg].ops[0]
        mp = prog.mappings[op.name]
        shape = OpShape(op.m, op.n, op.k, op.sparsity)
        steps = [s for b in gemm_blocks(shape, mp, config,
                                        gemm_tensors(shape, mp.dataflow, config, Alloc(), True))
                 for s in b]
        loads = [r for r in np.nonzero(item_of == kg)[0] if tab[r, 0] == isa.Opcode.LOAD]
        assert len(loads) == sum(len(s[0]) for s in steps)
        per_image = op.m // BATCH if op.pass_ != "wgrad" else op.k // BATCH
        i = 0
        for s in steps:
            if not s[0]:
                continue
            m0, m1, k0, k1 = s[10]
            image = (m1 - 1) // per_image
            assert sch.start[loads[i]] > sch.end[chunk_rows[image]], (gemm_name, s[10])
            i += len(s[0])
            checked += 1
        if gemm_name == "3.fwd":  # a conv: its first rows are the first image's
            # the array starts before the vector engine finishes the kernel's last pass
            assert sch.start[loads[0]] < sch.end[chunk_rows[-2]]
        assert elems % BATCH == 0
    assert checked > 2 * BATCH


def test_whole_kernel_wait_without_chunks(workload):
    config = preset("vcu1525")
    prog = compile(workload, config, CompileOptions(chunk_vector=False))
    sch = simulate_program(prog).schedule
    item_of = np.asarray(prog.item_of)
    names = [it.name for it in prog.items]
    kv, kg = names.index("1.fwd + 2.fwd"), names.index("3.fwd")
    last = np.nonzero(item_of == kv)[0][-1]
    first = np.nonzero(item_of == kg)[0][0]
    assert sch.start[first] > sch.end[last]


def _backward_workload():
    ops = []
    dims = [(24, 20), (20, 28), (28, 16)]  # (in, out) per layer
    t = 40
    for i, (fi, fo) in enumerate(dims):
        ops.append(Op(f"l{i}.fwd", f"l{i}", "gemm", "fwd", "linear", m=t, n=fo, k=fi))
    for i in reversed(range(len(dims))):
        fi, fo = dims[i]
        ops.append(Op(f"l{i}.bgrad", f"l{i}", "gemm", "bgrad", "linear", m=t, n=fi, k=fo))
        ops.append(Op(f"l{i}.wgrad", f"l{i}", "gemm", "wgrad", "linear", m=fo, n=fi, k=t))
    return Workload(tuple(ops), "mlp3", "dense", None, True)


def test_deferred_weight_gradients_keep_values_and_whole_tiles():
    """Deferred weight-gradient tiles move after later chain GEMMs (whole tiles, in order):
    hwsim accepts the program (buffer races, semaphores) and every output equals numpy."""
    config = preset("tiny")
    wl = _backward_workload()
    opts = CompileOptions(vector_ops=False)
    prog = compile(wl, config, opts)
    ref = compile(wl, config, opts.replace(defer_wgrad=False))
    gemm = prog.table[:, 0] == isa.Opcode.GEMM
    order = [prog.items[i].name for i in np.asarray(prog.item_of)[gemm]]
    ref_order = [ref.items[i].name for i in np.asarray(ref.item_of)[ref.table[:, 0]
                                                                   == isa.Opcode.GEMM]]
    assert sorted(order) == sorted(ref_order) and order != ref_order  # some tiles moved
    rng = np.random.default_rng(3)
    vals = {}
    for op in wl.gemms():
        a_ref, b_ref = prog.tensors[f"{op.name}.A"], prog.tensors[f"{op.name}.B"]
        vals[f"{op.name}.A"] = rng.integers(-128, 128, a_ref.shape)
        vals[f"{op.name}.B"] = rng.integers(-128, 128, b_ref.shape)
    prog.inputs = tuple(vals)
    prog.outputs = tuple(f"{op.name}.C" for op in wl.gemms())
    res = hwsim.run(prog, config, "functional", inputs=vals)
    for op in wl.gemms():
        np.testing.assert_array_equal(res.outputs[f"{op.name}.C"],
                                      vals[f"{op.name}.A"] @ vals[f"{op.name}.B"])
    assert hwsim.run(prog, config, "timing").stats.cycles == simulate_program(prog).cycles
