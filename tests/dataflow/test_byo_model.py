"""Your own model in: models from a file (``file.py:factory``) and from ``torch.export``
programs (``.pt2``), simulated end to end; the ops a user's model calls (MultiheadAttention,
einsum, sdpa, depthwise convolutions, embeddings, norms) against counts made here by hand."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

import dataflow
from dataflow import (
    ModelFileError,
    UnmappableOpError,
    extract,
    load_model,
    required_skip,
    simulate_model,
    simulate_workload,
)
from hwsim.config import preset

# The models a user would write, as a file of factories (written to tmp_path by the tests).
MODELS = '''
import torch
from torch import nn
import torch.nn.functional as F

T_BATCH, SEQ, VOCAB, DIM, HEADS, FF = 2, 8, 100, 32, 4, 64


def mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def cnn():
    """A stem, a depthwise-separable block, a classifier; with its example input."""
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),   # depthwise
        nn.Conv2d(16, 32, 1), nn.ReLU(),                          # pointwise
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    return model, torch.randn(2, 3, 16, 16)


class MhaLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM)
        self.ln1 = nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.ln2 = nn.LayerNorm(DIM)
        self.ff1 = nn.Linear(DIM, FF)
        self.ff2 = nn.Linear(FF, DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        h = self.ln1(x)
        x = x + self.attn(h, h, h)[0]
        x = x + self.ff2(F.gelu(self.ff1(self.ln2(x))))
        return self.head(x)


def mha_lm():
    return MhaLM()


class EinsumLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM)
        self.ln = nn.LayerNorm(DIM)
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.w_o = nn.Parameter(torch.randn(DIM, DIM) * 0.02)
        self.w1 = nn.Parameter(torch.randn(DIM, FF) * 0.02)
        self.w2 = nn.Parameter(torch.randn(FF, DIM) * 0.02)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, ids):
        x = self.emb(ids)
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln(x)).view(b, s, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4)
        att = torch.einsum("bhqd,bhkd->bhqk", q, k).softmax(-1)
        o = torch.einsum("...ij,...jk", att, v).transpose(1, 2).reshape(b, s, d)
        x = x + torch.einsum("bsd,de->bse", o, self.w_o)
        y = torch.einsum("ij,jk->ik", x.reshape(b * s, d), self.w1).relu()
        y = torch.einsum("bij,bjk->bik", y.unsqueeze(0), self.w2.unsqueeze(0))
        return self.head(x + y.view(b, s, d))


def einsum_lm():
    return EinsumLM(), torch.randint(0, VOCAB, (T_BATCH, SEQ))


def outer():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            y = self.fc(x)
            return torch.einsum("bi,bj->bij", y, y)
    return Outer(), torch.randn(4, 8)


def not_a_module():
    return "mlp"
'''

B, S, V, D, H, FF = 2, 8, 100, 32, 4, 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The models file, and its module (to build the models the tests export)."""
    path = tmp_path_factory.mktemp("byo") / "models.py"
    path.write_text(MODELS)
    spec = importlib.util.spec_from_file_location("byo_test_models", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["byo_test_models"] = mod
    spec.loader.exec_module(mod)
    yield path, mod
    sys.modules.pop("byo_test_models", None)


def export(tmp_path, model, x, name):
    """``torch.export`` the model at input ``x`` and save it, as a user would."""
    path = tmp_path / f"{name}.pt2"
    torch.export.save(torch.export.export(model, (x,)), path)
    return path


# --- hand counts ---------------------------------------------------------------------------
# A training step of a layer with a weight is forward, backward-data and weight-gradient GEMMs
# of the forward's MACs each (Linear rows x in x out; Conv2d output pixels x C_out/g x C_in/g
# x kh·kw x g); an attention product between activations has a forward GEMM and two
# gradient GEMMs of its MACs. N:M layers (BDWP) do n/m of the forward and backward-data MACs.

def train_macs(layers, products=(), sparse=(), nm=(2, 8)):
    """``layers``: {name: forward MACs} of weight layers; ``products``: forward MACs of
    activation x activation GEMMs; ``sparse``: the layers that are N:M."""
    total = 0
    for name, f in layers.items():
        total += (2 * f * nm[0] // nm[1] if name in sparse else 2 * f) + f
    return total + 3 * sum(products)


def mlp_layers(t=16):
    return {"0": t * 64 * 128, "2": t * 128 * 128, "4": t * 128 * 10}


def cnn_layers():
    p = 2 * 16 * 16  # output pixels of every conv (stride 1, same padding)
    return {"0": p * 16 * 3 * 9, "3": p * 16 * 1 * 9, "5": p * 32 * 16 * 1, "9": 2 * 32 * 10}


def lm_attention():
    return [B * H * S * S * (D // H)] * 2  # QKᵀ and PV


def mha_layers():
    t = B * S
    return {"attn.in_proj": t * 3 * D * D, "attn.out_proj": t * D * D, "ff1": t * D * FF,
            "ff2": t * FF * D, "head": t * D * V}


def einsum_layers():
    t = B * S
    return {"qkv": t * 3 * D * D, "w_o": t * D * D, "w1": t * D * FF, "w2": t * FF * D,
            "head": t * D * V}


# --- end to end: from a file and from torch.export ------------------------------------------

def test_mlp_from_file_training_step_macs_equal_hand_count(models):
    path, _ = models
    res = simulate_model(f"{path}:mlp", "dense", input_shape="16,64", compare_dense=False)
    assert res.model == "models.py:mlp" and res.batch == 16 and res.phase == "train"
    assert res.totals["macs"] == train_macs(mlp_layers()) == 3 * 16 * (64 * 128 + 128 * 128
                                                                       + 128 * 10)
    assert res.totals["cycles"] > 0 and res.totals["energy_pj"] > 0
    # BDWP 2:8: the classifier (the last layer) stays dense by default
    sp = simulate_model(f"{path}:mlp", "bdwp", "2:8", input_shape="16,64")
    assert sp.dense_layers == ("4",)
    assert sp.totals["macs"] == train_macs(mlp_layers(), sparse={"0", "2"})
    assert sp.dense_cycles == res.totals["cycles"] and sp.speedup > 1


def test_depthwise_cnn_from_file_and_from_pt2_macs_equal_hand_count(models, tmp_path):
    path, mod = models
    res = simulate_model(f"{path}:cnn", "bdwp", "2:8")
    # default skip for your own model: the stem and classifier, and what cannot be N:M
    assert set(res.dense_layers) == {"0", "9", "3"}
    assert res.totals["macs"] == train_macs(cnn_layers(), sparse={"5"})
    model, x = mod.cnn()
    pt2 = export(tmp_path, model, x, "cnn")
    res2 = simulate_model(pt2, "bdwp", "2:8")
    assert res2.model == "cnn.pt2" and res2.batch == 2
    assert set(res2.dense_layers) == {"0", "9", "3"}
    assert res2.totals["macs"] == res.totals["macs"]
    assert res2.totals["cycles"] == res.totals["cycles"]


def test_pt2_rebuilds_the_model_layers_so_its_workload_is_the_eager_one(models, tmp_path):
    _, mod = models
    model, x = mod.cnn()
    loaded = load_model(export(tmp_path, model, x, "cnn"))
    kinds = {n: type(m).__name__ for n, m in loaded.module.named_modules() if n}
    assert kinds == {"0": "Conv2d", "1": "BatchNorm2d", "2": "_Scope", "3": "Conv2d",
                     "4": "_Scope", "5": "Conv2d", "6": "_Scope", "7": "_Scope",
                     "8": "_Scope", "9": "Linear"}
    assert loaded.module.get_submodule("3").groups == 16
    assert loaded.example_input[0].shape == (2, 3, 16, 16)
    cols = ["name", "layer", "kind", "pass", "op", "m", "n", "k", "repeat", "pattern"]
    kw = dict(method="bdwp", pattern="2:8", skip=("0", "3", "9"))
    eager = extract(model, x, **kw).to_dataframe()[cols]
    exported = extract(loaded.module, loaded.example_input, trace_through=loaded.trace_through,
                       **kw).to_dataframe()[cols]
    gemms = eager["kind"] == "gemm"
    assert exported[exported["kind"] == "gemm"].values.tolist() == eager[gemms].values.tolist()
    assert len(exported) == len(eager)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's own, in run_decompositions
def test_decomposed_pt2_linear_and_convolution_are_layers_again(tmp_path):
    """``run_decompositions()`` turns Linear into ``addmm(b, x, permute(W))`` and Conv2d into
    ``aten.convolution``: rebuilt as layers, N:M applies as to the model itself."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, groups=8), nn.Flatten(), nn.Linear(8 * 6 * 6, 16),
                          nn.LayerNorm(16), nn.Linear(16, 8, bias=False))
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "decomposed.pt2"
    torch.export.save(torch.export.export(model, (x,)).run_decompositions(), path)
    loaded = load_model(path)
    kinds = {n: type(m).__name__ for n, m in loaded.module.named_modules()}
    assert (kinds["0"], kinds["3"], kinds["5"], kinds["7"]) == ("Conv2d", "Conv2d", "Linear",
                                                                "Linear")
    kw = dict(method="bdwp", pattern="2:8", skip=("0", "3"))
    eager = extract(model, x, **kw)
    exported = extract(loaded.module, loaded.example_input,
                       trace_through=loaded.trace_through, **kw)
    cols = ["name", "pass", "op", "m", "n", "k", "repeat", "elements", "pattern"]
    assert sorted(map(tuple, exported.to_dataframe()[cols].values)) == sorted(
        map(tuple, eager.to_dataframe()[cols].values))
    p = 2 * 8 * 8
    fwd = p * 8 * 27 + 2 * 36 * 8 * 9 + 2 * 288 * 16 + 2 * 16 * 8
    assert eager.macs()["wgrad"] == fwd  # the weight gradients are dense
    assert exported.macs()["fwd"] == p * 8 * 27 + 2 * 36 * 8 * 9 + (2 * 288 * 16 + 2 * 16 * 8) // 4


@pytest.mark.parametrize("route", ["file", "pt2"])
def test_multihead_attention_lm_training_and_prefill(models, tmp_path, route):
    path, mod = models
    if route == "file":
        spec, kw = f"{path}:mha_lm", dict(input_shape=f"{B},{S}", input_dtype="long")
    else:
        spec, kw = export(tmp_path, mod.mha_lm(), torch.randint(0, V, (B, S)), "mha"), {}
    res = simulate_model(spec, "dense", compare_dense=False, **kw)
    assert res.totals["macs"] == train_macs(mha_layers(), lm_attention())
    assert res.seq_len == S and res.batch == B
    pre = simulate_model(spec, "dense", phase="prefill", compare_dense=False, **kw)
    assert pre.totals["macs"] == sum(mha_layers().values()) + sum(lm_attention())
    assert pre.what == f"prefill of {S} tokens"
    # out_proj is an nn.Linear: N:M under BDWP; the packed in-projection is not
    sp = simulate_model(spec, "bdwp", "2:8", compare_dense=False, **kw)
    assert sp.dense_layers == ("head",)
    assert sp.totals["macs"] == train_macs(mha_layers(), lm_attention(),
                                           sparse={"attn.out_proj", "ff1", "ff2"})


@pytest.mark.parametrize("route", ["file", "pt2"])
def test_einsum_lm_training_step_macs_equal_hand_count(models, tmp_path, route):
    path, mod = models
    spec = f"{path}:einsum_lm" if route == "file" else export(tmp_path, *mod.einsum_lm(), "ein")
    res = simulate_model(spec, "bdwp", "2:8")
    assert res.dense_layers == ("head",)
    assert res.totals["macs"] == train_macs(einsum_layers(), lm_attention(), sparse={"qkv"})
    assert res.totals["macs"] < train_macs(einsum_layers(), lm_attention())
    pre = simulate_model(spec, "dense", phase="prefill", compare_dense=False)
    assert pre.totals["macs"] == sum(einsum_layers().values()) + sum(lm_attention())


# --- the ops one by one ------------------------------------------------------------------------

@pytest.mark.parametrize(("eq", "shapes", "gemm"), [
    ("bij,bjk->bik", [(3, 5, 7), (3, 7, 4)], (5, 4, 7, 3)),
    ("bhqd,bhkd->bhqk", [(2, 4, 6, 8), (2, 4, 10, 8)], (6, 10, 8, 8)),
    ("...ij,...jk", [(2, 3, 5, 7), (2, 3, 7, 4)], (5, 4, 7, 6)),
    ("...ij,jk", [(2, 3, 5, 7), (7, 4)], (30, 4, 7, 1)),  # one GEMM over all rows, as @
    ("ij,jk", [(5, 7), (7, 4)], (5, 4, 7, 1)),
    ("ij,kj->ik", [(5, 7), (4, 7)], (5, 4, 7, 1)),  # x·Wᵀ
    ("bij,jk->bik", [(3, 5, 7), (7, 4)], (15, 4, 7, 1)),
])
def test_einsum_patterns_are_gemms_with_matmul_gradients(eq, shapes, gemm):
    class Einsum(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Identity()  # not a leaf: its own calls are named by the call

        def forward(self, a, b):
            return torch.einsum(eq, self.inner(a), b)

    a, b = (torch.randn(s) for s in shapes)
    wl = extract(Einsum(), (a, b))
    ops = {op.name: op for op in wl.gemms()}
    assert set(ops) == {"einsum.fwd", "einsum.bgrad.dA", "einsum.bgrad.dB"}
    fwd, da, db = ops["einsum.fwd"], ops["einsum.bgrad.dA"], ops["einsum.bgrad.dB"]
    m, n, k, r = gemm
    assert (fwd.op, fwd.m, fwd.n, fwd.k, fwd.repeat) == ("einsum", m, n, k, r)
    assert fwd.macs == math.prod(torch.einsum(eq, a, b).shape) * k
    assert da.macs == db.macs == m * n * k * r
    assert (da.m, da.n) == (m, k) and (db.m, db.n) == (k, n)  # dA = dC·Bᵀ, dB = Aᵀ·dC


def test_einsum_with_a_parameter_has_a_weight_gradient():
    class Proj(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 4))

        def forward(self, x):
            return torch.einsum("bsd,de->bse", x, self.w) + x @ self.w.t().t()

    with pytest.raises(UnmappableOpError, match=r"\(Proj\): an unknown leaf module"):
        extract(Proj(), torch.randn(2, 3, 6))
    wl = extract(nn.Sequential(Proj()), torch.randn(2, 3, 6), trace_through=(Proj,))
    passes = [(op.name, op.pass_, op.m, op.n, op.k) for op in wl.gemms()]
    assert ("0.wgrad.dB", "wgrad", 6, 4, 6) in passes  # the einsum, named by its leaf
    # a view of a parameter (W.t().t()) is still the weight: its gradient is wgrad
    assert ("0#2.wgrad.dB", "wgrad", 6, 4, 6) in passes
    # simulate_model traces through your own leaf modules with parameters
    res = simulate_model(Proj(), "dense", example_input=torch.randn(2, 3, 6),
                         compare_dense=False)
    assert res.totals["macs"] == 2 * 3 * (2 * 3 * 6 * 4)  # two products, x3 for a step


@pytest.mark.parametrize(("eq", "why"), [
    ("bi,bj->bij", "contracts no index"),
    ("ii,ij->j", "repeats an index"),
    ("ij,jk,kl->il", "3 operands"),
    ("ij,jk->k", "sums index i within one operand"),
])
def test_einsum_that_is_not_a_gemm_names_the_op_and_what_to_do(eq, why):
    class Bad(nn.Module):
        def forward(self, *xs):
            return torch.einsum(eq, *xs)

    xs = [torch.randn(4, 4) for _ in eq.split("->")[0].split(",")]
    with pytest.raises(UnmappableOpError, match=f"torch.einsum called in module '<root>'.*{why}"):
        extract(Bad(), tuple(xs))


def test_multihead_attention_ops_and_its_out_proj_layer():
    mha = nn.MultiheadAttention(16, 4, batch_first=True, dropout=0.1)
    x, mem = torch.randn(3, 5, 16), torch.randn(3, 7, 16)

    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x, mem):
            return self.mha(x, mem, mem, need_weights=False)[0]

    wl = extract(Cross(), (x, mem), method="bdwp", pattern="2:8")
    ops = {op.name: op for op in wl}
    assert (ops["mha.in_proj.fwd.q"].m, ops["mha.in_proj.fwd.q"].n) == (15, 16)
    assert (ops["mha.in_proj.fwd.kv"].m, ops["mha.in_proj.fwd.kv"].n) == (21, 32)
    qk = ops["mha.attn.fwd.qk"]
    assert (qk.m, qk.n, qk.k, qk.repeat) == (5, 7, 4, 12)
    assert ops["mha.attn.fwd.dropout"].elements == 12 * 5 * 7
    assert "mha.attn.fwd.weights" not in ops  # need_weights=False
    out = ops["mha.out_proj.fwd"]
    assert out.layer == "mha.out_proj" and out.pattern == "2:8" and out.m == 15
    assert ops["mha.in_proj.fwd.q"].sparsity is None
    assert ops["mha.in_proj.wgrad.kv"].pass_ == "wgrad"


def test_sdpa_grouped_conv_embedding_and_norms_map():
    class Mix(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.table = nn.Parameter(torch.randn(50, 16))
            self.conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)
            self.gamma = nn.Parameter(torch.ones(16))

        def forward(self, ids, img):
            x = self.emb(ids) + nn.functional.embedding(ids, self.table)
            x = nn.functional.layer_norm(x, (16,), self.gamma)
            q = x.view(2, 6, 2, 8).transpose(1, 2)
            a = nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
            return a.sum() + self.conv(img).sum()

    wl = extract(Mix(), (torch.randint(0, 50, (2, 6)), torch.randn(2, 4, 5, 5)))
    ops = {op.name: op for op in wl}
    assert ops["embedding.fwd"].elements == ops["embedding.wgrad"].elements == 2 * 6 * 16
    assert ops["layer_norm.wgrad"].pass_ == "wgrad"
    qk = ops["sdpa.fwd.qk"]
    assert (qk.m, qk.n, qk.k, qk.repeat) == (6, 6, 8, 4)
    conv = ops["conv.fwd"]
    assert (conv.m, conv.n, conv.k, conv.repeat) == (2 * 25, 4, 2 * 9, 2)
    assert conv.macs == 2 * 25 * 8 * 2 * 9  # pixels x C_out x C_in/g x kk
    assert required_skip(Mix(), "bdwp", "2:8") == ("conv",)


# --- the Python API ------------------------------------------------------------------------

def test_api_takes_a_module_a_preset_name_and_exports_the_helpers(models):
    _, mod = models
    model = mod.mlp()
    res = simulate_model(model, "dense", config="tiny", example_input=torch.randn(4, 64),
                         compare_dense=False)
    assert res.model == "Sequential" and res.config == "tiny"
    assert res.totals["macs"] == train_macs(mlp_layers(4))
    wl = extract(model, torch.randn(4, 64))
    prog, df, totals = simulate_workload(wl, "tiny")  # a preset name, not only a config
    assert totals["cycles"] == res.totals["cycles"]
    for name in ("required_skip", "default_skip", "extract", "load_model", "get_model",
                 "model_names", "expected_rows", "simulate_workload", "ModelFileError",
                 "run_step", "check_step"):
        assert name in dataflow.__all__ and getattr(dataflow, name) is not None
    # every entry point that takes a config takes a preset name too, with the same result
    cfg = preset("tiny")
    prog = dataflow.compile(wl, "tiny")
    assert dataflow.simulate_program(prog, "tiny").cycles == totals["cycles"]
    assert dataflow.simulate_program(dataflow.compile(wl, cfg)).cycles == totals["cycles"]
    shape = dataflow.OpShape(64, 48, 96, (2, 8))
    mp = dataflow.search(shape, "tiny")
    assert mp == dataflow.search(shape, cfg)
    assert dataflow.estimate(shape, mp, "tiny") == dataflow.estimate(shape, mp, cfg)
    assert dataflow.gemm_tiling(64, 48, 96, "tiny") == dataflow.gemm_tiling(64, 48, 96, cfg)
    assert np.array_equal(dataflow.compile_gemm(64, 48, 96, "tiny").table,
                          dataflow.compile_gemm(64, 48, 96, cfg).table)


def test_api_refuses_bad_models_and_inputs_in_one_line(models, tmp_path):
    path, _ = models
    cases = [
        (f"{tmp_path}/missing.py:mlp", {}, "does not exist"),
        (f"{path}:nope", {}, "has no function 'nope'; its functions and classes are"),
        (f"{path}:not_a_module", {}, r"returned str, not an nn.Module"),
        (str(path), {}, "name the function that builds the model"),
        (f"{path}:mlp", {}, "no example input: give its shape"),
        (f"{path}:mlp", {"input_shape": "16,x"}, "comma-separated positive integers"),
        (f"{path}:mlp", {"input_shape": "16,64", "input_dtype": "long"}, "need a vocabulary"),
        (f"{path}:mlp", {"input_shape": "16,32"}, r"failed on an input of shape \(16, 32\)"),
        (f"{tmp_path}/none.pt2", {}, "does not exist"),
    ]
    for spec, kw, needle in cases:
        with pytest.raises(ValueError, match=needle):
            simulate_model(spec, **kw)
    bad = tmp_path / "bad.pt2"
    bad.write_text("not a program")
    with pytest.raises(ModelFileError, match="cannot read .* as a torch.export program"):
        simulate_model(bad)
    with pytest.raises(UnmappableOpError, match="einsum.*contracts no index"):
        simulate_model(f"{path}:outer", "dense")
    with pytest.raises(ValueError, match="phase must be 'train' or 'prefill'"):
        simulate_model(f"{path}:cnn", phase="decode")
    with pytest.raises(ValueError, match="batch=4 is for zoo models"):
        simulate_model(f"{path}:cnn", batch=4)
    with pytest.raises(ValueError, match="input_shape: for your own model"):
        simulate_model("resnet18", input_shape="1,3,224,224")
