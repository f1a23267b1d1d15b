"""dataflow.workload: extraction of training-step and inference workloads."""

import time
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as nnf
from torch import nn

from algorithms import sparsify, training_macs
from algorithms.transformer import TransformerConfig, TransformerLM
from dataflow.workload import Op, UnmappableOpError, Workload, default_skip, extract, required_skip
from dataflow.zoo import get_model

METHODS = ("dense", "srste", "bdwp", "transposable")


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 64),
        nn.ReLU(),
        nn.Linear(64, 16),
    )


def small_mlp():
    return nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 8))


def tiny_lm(device="cpu"):
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, max_seq_len=16)
    with torch.device(device):
        return TransformerLM(cfg), torch.randint(0, 64, (2, 16))


def gemm_macs_by_layer(workload):
    """(layer, pass) -> (dense, sparse) MACs of the Linear/Conv2d GEMMs."""
    out = defaultdict(lambda: [0, 0])
    for op in workload.gemms():
        if op.op in ("linear", "conv2d"):
            out[(op.layer, op.pass_)][0] += op.dense_macs
            out[(op.layer, op.pass_)][1] += op.macs
    return {key: tuple(v) for key, v in out.items()}


def flops_by_layer(model, x, method, pattern, skip=()):
    table = training_macs(model, x, method, pattern, skip)
    grouped = table.groupby(["layer", "pass"])[["dense_macs", "macs"]].sum()
    return {key: (int(r.dense_macs), int(r.macs)) for key, r in grouped.iterrows()}


CASES = {
    "cnn": lambda: (small_cnn(), torch.randn(2, 3, 12, 12), ("0", "9")),
    "mlp": lambda: (small_mlp(), torch.randn(5, 3, 32), ()),
    "lm-meta": lambda: (*tiny_lm("meta"), ("head",)),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_gemm_macs_per_layer_and_pass_equal_algorithms_training_macs(case, method):
    model, x, skip = CASES[case]()
    pattern = None if method == "dense" else "2:8"
    w = extract(model, x, method=method, pattern=pattern, skip=skip)
    assert gemm_macs_by_layer(w) == flops_by_layer(model, x, method, pattern, skip)


def test_resnet18_meta_macs_equal_training_macs_with_default_skip():
    model, x = get_model("resnet18", device="meta")
    skip = default_skip(model)
    assert skip == ("conv1", "fc")
    w = extract(model, x, method="bdwp", pattern="2:8", skip=skip)
    assert gemm_macs_by_layer(w) == flops_by_layer(model, x, "bdwp", "2:8", skip)
    assert w.macs(dense=True)["fwd"] == 1_814_073_344  # ResNet-18's 1.81 GMACs at 224x224


@pytest.mark.parametrize("name, method, pattern, expected", [
    ("resnet18", "bdwp", "2:8", ("conv1",)),  # 3 input channels
    ("vit_s16", "bdwp", "2:8", ("patch_embed.proj",)),
    ("pythia70m", "bdwp", "2:8", ()),  # the 512 x 50,304 head included
    ("resnet18", "dense", None, ()),
])
def test_required_skip_names_only_the_layers_that_cannot_be_nm(name, method, pattern, expected):
    model, x = get_model(name, device="meta", **({"seq_len": 64} if name == "pythia70m" else {}))
    skip = required_skip(model, method, pattern)
    assert skip == expected
    if skip:  # without skipping the stem, extraction refuses
        with pytest.raises(ValueError, match="not divisible"):
            extract(model, x, method=method, pattern=pattern)
    if method != "dense":
        w = extract(model, x, method=method, pattern=pattern, skip=skip)
        assert gemm_macs_by_layer(w) == flops_by_layer(model, x, method, pattern, skip)


def test_required_skip_catches_grouped_convolutions_and_small_out_features():
    model = nn.Sequential(nn.Conv2d(16, 16, 3, groups=4), nn.Flatten(), nn.Linear(16, 12))
    # bdwp also groups the out-features (12 % 8 != 0); srste only the in-features
    assert required_skip(model, "bdwp", "2:8") == ("0", "2")
    assert required_skip(model, "srste", "2:8") == ("0",)
    assert required_skip(model, "srste", "2:4") == ("0",)


def test_sparsified_model_as_is_matches_training_macs_as_is():
    model = sparsify(small_cnn(), "2:4", "srste", skip=("0", "9"))
    x = torch.randn(2, 3, 12, 12)
    w = extract(model, x, method=None)
    assert gemm_macs_by_layer(w) == flops_by_layer(model, x, None, None)
    tags = {(op.layer, op.pass_): op.pattern for op in w.gemms()}
    assert tags[("3", "fwd")] == "2:4" and tags[("3", "bgrad")] == ""
    assert tags[("0", "fwd")] == ""


@pytest.mark.parametrize(
    "method, fwd, bgrad",
    [("dense", "", ""), ("srste", "1:4", ""), ("bdwp", "1:4", "1:4"),
     ("transposable", "1:4", "1:4")],
)
def test_sparsity_tags_per_method_wgrad_always_dense(method, fwd, bgrad):
    w = extract(small_mlp(), torch.randn(4, 32), method=method,
                pattern=None if method == "dense" else "1:4")
    layer = {op.pass_: op for op in w.gemms() if op.layer == "2"}
    assert (layer["fwd"].pattern, layer["bgrad"].pattern, layer["wgrad"].pattern) == (
        fwd, bgrad, "")
    for op in w.gemms():
        assert op.sparse_operand == ("B" if op.sparsity else None)
    assert w.method == method and w.pattern == (None if method == "dense" else "1:4")


def test_conv_im2col_shapes_fwd_bgrad_wgrad_and_col2im():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=True))
    w = extract(model, torch.randn(4, 8, 10, 10), method="bdwp", pattern="2:8")
    ops = {op.name: op for op in w}
    p = 4 * 5 * 5  # batch * H_out * W_out
    assert (ops["0.fwd"].m, ops["0.fwd"].n, ops["0.fwd"].k) == (p, 16, 8 * 9)
    assert (ops["0.bgrad"].m, ops["0.bgrad"].n, ops["0.bgrad"].k) == (p, 8 * 9, 16)
    assert (ops["0.wgrad"].m, ops["0.wgrad"].n, ops["0.wgrad"].k) == (16, 8 * 9, p)
    assert ops["0.fwd"].sparsity == (2, 8) and ops["0.bgrad"].sparsity == (2, 8)
    assert ops["0.bgrad.col2im"].elements == p * 8 * 9  # 3x3 stride 2: patches overlap
    assert ops["0.wgrad.bias"].elements == p * 16


def test_grouped_conv_repeats_per_group_and_nonoverlapping_conv_has_no_col2im():
    model = nn.Sequential(nn.Conv2d(8, 16, 2, stride=2, groups=4, bias=False))
    w = extract(model, torch.randn(1, 8, 6, 6))
    fwd = w.gemms()[0]
    assert (fwd.m, fwd.n, fwd.k, fwd.repeat) == (9, 4, 2 * 4, 4)
    assert not any(op.op == "col2im" for op in w)
    with pytest.raises(ValueError, match=r"layer '0': grouped convolution \(groups=4\)"):
        extract(model, torch.randn(1, 8, 6, 6), method="bdwp", pattern="1:2")


def test_attention_qk_pv_per_head_and_two_backward_gemms_each():
    model, x = tiny_lm()
    w = extract(model, x)
    attn = [op for op in w.gemms() if op.layer == "blocks.0.attn" and op.op == "matmul"]
    fwd = [op for op in attn if op.pass_ == "fwd"]
    bwd = [op for op in attn if op.pass_ == "bgrad"]
    # batch 2 x 4 heads; S=16, d_h=8
    assert [(o.m, o.n, o.k, o.repeat) for o in fwd] == [(16, 16, 8, 8), (16, 8, 16, 8)]
    assert len(bwd) == 4 and all(o.repeat == 8 for o in bwd)
    assert sum(o.dense_macs for o in bwd) == 2 * sum(o.dense_macs for o in fwd)
    vec = {op.op for op in w if op.kind == "vector" and op.layer == "blocks.0.attn"}
    assert {"softmax", "masked_fill"} <= vec


def test_sdpa_expands_to_the_same_gemms_as_explicit_attention():
    class Attn(nn.Module):
        def __init__(self, fused):
            super().__init__()
            self.fused, self.qkv = fused, nn.Linear(16, 48)

        def forward(self, x):
            q, k, v = self.qkv(x).view(2, 6, 3, 4, 4).permute(2, 0, 3, 1, 4)
            if self.fused:
                return nnf.scaled_dot_product_attention(q, k, v)
            return (q @ k.transpose(-1, -2) / 2).softmax(-1) @ v

    x = torch.randn(2, 6, 16)
    fused, explicit = extract(Attn(True), x), extract(Attn(False), x)
    assert fused.macs() == explicit.macs()
    assert {op.op for op in fused.gemms()} >= {"attn_qk", "attn_pv", "attn_dq", "attn_dk"}


def test_parameter_operand_of_matmul_gets_wgrad_and_an_update():
    class Proj(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 4))
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(x @ self.w)

    w = extract(Proj(), torch.randn(3, 5, 8))
    ops = {op.name: op for op in w}
    assert (ops["matmul.wgrad.dB"].m, ops["matmul.wgrad.dB"].n, ops["matmul.wgrad.dB"].k) == (
        8, 4, 15)
    fwd = ops["matmul.fwd"]
    assert (fwd.m, fwd.n, fwd.k, fwd.repeat) == (15, 4, 8, 1)  # all rows in one GEMM
    assert ops["matmul.bgrad.dA"].pass_ == "bgrad"
    assert ops["act.fwd"].elements == 3 * 5 * 4 and ops["w.update"].elements == 32


def test_training_order_updates_and_unique_names():
    model, x = small_cnn(), torch.randn(2, 3, 12, 12)
    w = extract(model, x)
    passes = [op.pass_ for op in w]
    assert passes[0] == "fwd" and passes[-1] == "update"
    last_fwd = max(i for i, p in enumerate(passes) if p == "fwd")
    assert all(p != "fwd" for p in passes[last_fwd + 1:])
    assert w.ops[last_fwd].op == "loss"
    assert len({op.name for op in w}) == len(w)
    updates = [op for op in w if op.kind == "update"]
    assert len(updates) == len(list(model.parameters()))
    assert sum(op.elements for op in updates) == sum(p.numel() for p in model.parameters())
    # backward runs layers in reverse: the classifier's GEMMs come first
    assert [op.layer for op in w.gemms() if op.pass_ != "fwd"][:2] == ["9", "9"]
    assert model.training  # mode restored


def test_inference_is_forward_only():
    model = small_cnn().eval()
    w = extract(model, torch.randn(2, 3, 12, 12), training=False, method="bdwp",
                pattern="2:8", skip=("0", "9"))
    assert {op.pass_ for op in w} == {"fwd"} and not w.training
    assert w.macs()["bgrad"] == 0 and not model.training
    table = training_macs(model, torch.randn(2, 3, 12, 12), "bdwp", "2:8", ("0", "9"))
    assert w.macs()["fwd"] == table[table["pass"] == "fwd"]["macs"].sum()


def test_frozen_model_keeps_every_op_but_updates_only_trainable_parameters():
    model = small_cnn()
    x = torch.randn(2, 3, 12, 12)
    full = extract(model, x)
    model[0].requires_grad_(False)
    partial = extract(model, x)
    assert [op.name for op in partial if op.kind != "update"] == [
        op.name for op in full if op.kind != "update"]
    assert {op.name for op in full} - {op.name for op in partial} == {"0.weight.update",
                                                                     "0.bias.update"}
    model.requires_grad_(False)
    inference = extract(model, x, training=False)
    assert [op.name for op in inference] == [op.name for op in full if op.pass_ == "fwd"][:-1]
    assert not any(p.requires_grad for p in model.parameters())  # flags restored


def test_vector_elements_relu_norm_pool():
    w = extract(small_cnn(), torch.randn(2, 3, 12, 12), training=False)
    ops = {op.name: op for op in w}
    assert ops["2.fwd"].op == "relu" and ops["2.fwd"].elements == 2 * 16 * 12 * 12
    assert ops["1.fwd"].op == "batch_norm" and ops["1.fwd"].elements == 2 * 16 * 12 * 12
    assert ops["5.fwd"].op == "max_pool2d" and ops["5.fwd"].elements == 2 * 32 * 2 * 2 * 4


def test_unmappable_modules_and_calls_name_path_and_type():
    class Fancy(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.scale

    class Mixer(nn.Module):
        def forward(self, x):
            return torch.einsum("bi,bj->bij", x, x)

    deep = nn.Sequential(nn.Identity(), nn.Sequential(nn.Identity(), nn.Conv3d(1, 2, 1)))
    with pytest.raises(UnmappableOpError, match=r"module '1.1' \(Conv3d\): only Conv2d"):
        extract(deep, torch.randn(1, 1, 2, 2, 2))
    with pytest.raises(UnmappableOpError, match=r"module '1' \(Fancy\).*leaf module"):
        extract(nn.Sequential(nn.Linear(4, 4), Fancy()), torch.randn(2, 4))
    w = extract(nn.Sequential(nn.Linear(4, 4), Fancy()), torch.randn(2, 4),
                trace_through=(Fancy,))
    assert [op.op for op in w if op.layer == "1" and op.pass_ == "fwd"] == ["mul"]
    with pytest.raises(UnmappableOpError, match=r"torch.einsum called in module '1'"):
        extract(nn.Sequential(nn.Linear(4, 4), Mixer()), torch.randn(2, 4))


def test_bad_arguments_are_refused_before_running():
    model, x = small_mlp(), torch.randn(2, 32)
    with pytest.raises(ValueError, match="method must be one of"):
        extract(model, x, method="magic")
    with pytest.raises(ValueError, match="needs a pattern"):
        extract(model, x, method="bdwp")
    with pytest.raises(ValueError, match="pattern must be 'N:M'"):
        extract(model, x, method="bdwp", pattern="8:2")
    with pytest.raises(ValueError, match="skip entry 'fc' matches no"):
        extract(model, x, method="bdwp", pattern="2:8", skip=("fc",))
    with pytest.raises(ValueError, match=r"layer '4': out-channel size 8 .* add '4' to skip"):
        extract(model, x, method="bdwp", pattern="2:16")


def test_op_validation_and_dataframe():
    with pytest.raises(ValueError, match="kind must be one of"):
        Op("x", "", "conv", "fwd", "conv2d")
    with pytest.raises(ValueError, match="GEMM dimensions must be positive"):
        Op("x", "", "gemm", "fwd", "linear", m=0, n=1, k=1)
    w = extract(small_mlp(), torch.randn(2, 32), method="bdwp", pattern="2:8")
    assert isinstance(w, Workload)
    df = w.to_dataframe()
    assert len(df) == len(w) and {"pass", "pattern", "macs", "m", "n", "k"} <= set(df.columns)
    assert df.groupby("pass")["macs"].sum()["fwd"] == w.macs()["fwd"]
    assert w.ideal_speedup() == pytest.approx(3 / (1 / 4 + 1 / 4 + 1))


def test_resnet50_meta_extraction_is_fast():
    model, x = get_model("resnet50", device="meta")
    t0 = time.perf_counter()
    w = extract(model, x, method="bdwp", pattern="2:8", skip=default_skip(model))
    assert time.perf_counter() - t0 < 10
    assert w.macs(dense=True)["fwd"] == 4_089_184_256  # the usual 4.1 GMACs
    assert len([op for op in w.gemms() if op.op == "conv2d" and op.pass_ == "fwd"]) == 53


# sha256 prefixes of the op fields that existed before lookups, recorded before adding them
UNCHANGED = [
    ("resnet18", {}, dict(method="bdwp", pattern="2:8"), "default", 246, "3a7c487b1342fe03"),
    ("resnet50", {}, dict(method="dense"), None, 623, "d57177d0f90672f1"),
    ("vgg16", {"image_size": 64}, dict(method="srste", pattern="2:4"), "default", 144,
     "44bf568e6fbfa49e"),
    ("vit_s16", {}, dict(method="bdwp", pattern="2:8"), "required", 599, "feb5e496a2ca664f"),
    ("pythia70m", {"seq_len": 64}, dict(method="transposable", pattern="1:8"), None, 422,
     "2c6e880e86db4eaf"),
    ("pythia70m", {"seq_len": 64}, dict(method="dense", training=False), None, 135,
     "a92d76dffc97e9bc"),
]


@pytest.mark.parametrize("name, kw, options, skip, count, digest", UNCHANGED)
def test_sat_zoo_workloads_are_unchanged_by_the_lookup_ops(name, kw, options, skip, count,
                                                            digest):
    import hashlib

    model, x = get_model(name, batch=2, device="meta", **kw)
    options = dict(options)
    if skip == "default":
        options["skip"] = default_skip(model)
    elif skip == "required":
        options["skip"] = required_skip(model, options["method"], options["pattern"])
    w = extract(model, x, **options)
    fields = ("name", "layer", "kind", "pass_", "op", "m", "n", "k", "elements", "repeat",
              "sparsity", "sparse_operand", "description")
    h = hashlib.sha256()
    for op in w.ops:
        h.update(repr(tuple(getattr(op, f) for f in fields)).encode())
    h.update(repr((w.layout_calls, w.constant_calls, w.training, w.method, w.pattern,
                   w.skip)).encode())
    assert (len(w), h.hexdigest()[:16]) == (count, digest)
    assert not w.lookups() and w.lookup_totals()["entries"] == 0
    assert all(op.tokens == op.chunks == op.rows == 0 and op.table == op.hash_op == ""
               for op in w)


def test_dataframe_carries_the_lookup_fields():
    from algorithms.memoryformer import MemoryFormerConfig, MemoryFormerLM

    config = MemoryFormerConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2,
                                max_seq_len=8, tau=4)
    w = extract(MemoryFormerLM(config), torch.randint(0, 32, (1, 8)))
    df = w.to_dataframe()
    lookups = df[df["kind"] == "lookup"]
    assert len(lookups) == len(w.lookups()) == 3 * 2 + 5 * 4  # hashes: fwd, bgrad
    gather = lookups[(lookups["op"] == "gather") & (lookups["layer"] == "blocks.0.v")].iloc[0]
    assert (gather.tokens, gather.chunks, gather.tau, gather.width, gather.table_rows,
            gather.rows, gather.table, gather.weight, gather.hash_op) == (
        8, 4, 4, 16, 64, 32, "blocks.0.v.tables", "paper", "blocks.0.q.fwd.hash")
    assert df[df["kind"] != "lookup"]["table"].eq("").all()
