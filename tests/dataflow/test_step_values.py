"""Whole training steps with values on hwsim (dataflow.execute) against PyTorch autograd.

Three small real models: ResNet-18 at 32x32 (batch 8: at batch 2 layer4's batch norm
normalises two values and the step is too ill-conditioned to compare anything), a 2-layer
ViT and a 2-layer GPT, dense and BDWP 2:8 with only the required layers dense, on vcu1525.

What each check isolates:

- ``gemm="fp32"`` (every op the machine's except the GEMMs, which are exact on fp32 operands):
  the vector kernels, the convolution lowering, SDPA, the loss and UPDATE equal fp32 autograd
  to a few fp32 roundings (normwise 1e-4);
- ``gemm="array"`` (the compiled GEMM programs on hwsim's array, fp16 operands): the
  transformers equal fp32 autograd within 4·2^-11 normwise (fp16's unit roundoff, twice for
  the two operands, twice again for slack); ResNet-18's batch-norm parameter gradients are
  sums that cancel, and fp16 operands alone move them by up to ~20% (``gemm="fp16"``: exact
  sums of the same fp16 operands), so there the machine's error is held to that of exact-sum
  fp16 GEMMs, tensor by tensor;
- the GEMMs executed are the compiler's: their MACs per pass equal the workload's
  (:func:`dataflow.extract`), and the sparse path ran exactly the workload's sparse GEMMs.
"""

from __future__ import annotations

import copy

import pytest
import torch

from algorithms import sparsify
from dataflow.execute import NotOnMachineError, compare, reference_step, run_step
from dataflow.workload import extract, required_skip
from dataflow.zoo.gpt import GPT, GPTConfig
from dataflow.zoo.resnet import resnet18
from dataflow.zoo.vit import VisionTransformer

FP16_U = 2.0 ** -11


def _model(name: str, method: str):
    torch.manual_seed(0)
    if name == "resnet18":
        m, x, y = resnet18(10), torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    elif name == "vit2":
        m = VisionTransformer(32, 8, 64, 2, 4, 2, 16)
        x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 16, (4,))
    else:
        m = GPT(GPTConfig(vocab_size=128, d_model=64, n_layers=2, n_heads=4))
        x, y = torch.randint(0, 128, (4, 16)), torch.randint(0, 128, (4, 16))
    pattern = None
    if method == "bdwp":
        m = sparsify(m, "2:8", "bdwp", skip=required_skip(m, "bdwp", "2:8"))
        pattern = "2:8"
    return m.train(), x, y, pattern


def _stem_bgrad(wl, x) -> int:
    """MACs of the first layer's data gradient when the input is an image: the workload lists
    it (as ``algorithms.flops`` counts), autograd computes no gradient of the input."""
    if not x.is_floating_point():
        return 0
    first = wl.gemms()[0].layer
    return sum(o.dense_macs for o in wl.gemms() if o.layer == first and o.pass_ == "bgrad")


def _steps(name, method, gemm):
    m, x, y, pattern = _model(name, method)
    ref = reference_step(copy.deepcopy(m), x, y)
    got = run_step(copy.deepcopy(m), x, y, "vcu1525", pattern=pattern, gemm=gemm)
    return m, x, y, got, ref


@pytest.mark.parametrize("name,method", [("resnet18", "dense"), ("vit2", "bdwp"),
                                         ("gpt2", "dense")])
def test_every_non_gemm_op_equals_autograd_to_fp32_roundings(name, method):
    _, _, _, got, ref = _steps(name, method, "fp32")
    err = compare(got, ref)
    assert err["loss"] <= 1e-5 and err["grads"] <= 1e-4 and err["weights"] <= 1e-4, err
    assert set(got.grads) == {n for n, p in _model(name, method)[0].named_parameters()}


@pytest.mark.parametrize("name", ["vit2", "gpt2"])
@pytest.mark.parametrize("method", ["dense", "bdwp"])
def test_transformer_step_on_the_machine_equals_autograd(name, method):
    m, x, _, got, ref = _steps(name, method, "array")
    err = compare(got, ref)
    assert err["loss"] <= FP16_U and err["grads"] <= 4 * FP16_U, err
    assert err["weights"] <= 4 * FP16_U, err
    wl = extract(m, x, method=None, pattern="2:8" if method == "bdwp" else None)
    dense = wl.macs(dense=True)
    assert got.ops["macs_fwd"] == dense["fwd"]
    assert got.ops["macs_bwd"] == dense["bgrad"] + dense["wgrad"] - _stem_bgrad(wl, x)
    assert got.ops["sparse_macs"] == sum(o.dense_macs for o in wl.gemms() if o.sparsity)
    assert (got.ops["sparse_macs"] > 0) == (method == "bdwp")
    assert got.ops["array_cycles"] > 0 and got.ops["vector:update"] == len(got.weights)


@pytest.mark.parametrize("method", ["bdwp", pytest.param("dense", marks=pytest.mark.slow)])
def test_resnet18_step_on_the_machine_is_as_close_as_fp16_operands_allow(method):
    m, x, y, got, ref = _steps("resnet18", method, "array")
    fp16 = run_step(copy.deepcopy(m), x, y, "vcu1525",
                    pattern="2:8" if method == "bdwp" else None, gemm="fp16")
    err, err16 = compare(got, ref), compare(fp16, ref)
    assert err["loss"] <= 4 * FP16_U, err["loss"]
    for key in err:
        if ":" in key:  # per tensor: no worse than exact-sum fp16 GEMMs, plus fp16 rounding
            assert err[key] <= 1.25 * err16[key] + FP16_U, (key, err[key], err16[key])
    wl = extract(m, x, method=None, pattern="2:8" if method == "bdwp" else None)
    dense = wl.macs(dense=True)
    assert got.ops["macs_fwd"] == dense["fwd"]
    assert got.ops["macs_bwd"] == dense["bgrad"] + dense["wgrad"] - _stem_bgrad(wl, x)
    assert got.ops["sparse_macs"] == sum(o.dense_macs for o in wl.gemms() if o.sparsity)


def test_an_op_without_a_unit_is_named():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.SiLU(), torch.nn.Linear(8, 4))
    with pytest.raises(NotOnMachineError, match="silu"):
        run_step(model, torch.randn(4, 8), torch.tensor([0, 1, 2, 3]), gemm="fp32")


def test_int8_config_is_refused():
    with pytest.raises(ValueError, match="needs fp16"):
        run_step(torch.nn.Linear(8, 4), torch.randn(2, 8), torch.tensor([0, 1]), "tiny")


class _Attention(torch.nn.Module):
    """``nn.MultiheadAttention``, then a causal SDPA over its output, then a classifier."""

    def __init__(self):
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(32, 4, batch_first=True)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        y, _ = self.mha(x, x, x, need_weights=False)
        q = y.view(2, 8, 4, 8).transpose(1, 2)
        z = torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
        return self.fc(z.transpose(1, 2).reshape(2, 8, 32))


class _DepthwiseCnn(torch.nn.Module):
    """A conv, a depthwise conv, ReLU, 2x2 average pooling and a classifier."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        h = torch.nn.functional.avg_pool2d(torch.relu(self.dw(self.conv(x))), 2)
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("make,x,y", [
    (_Attention, (2, 8, 32), (2, 8)),
    (_DepthwiseCnn, (2, 3, 8, 8), (2,)),
])
def test_attention_modules_grouped_convs_and_average_pooling_run_with_values(make, x, y):
    torch.manual_seed(1)
    model = make().train()
    x, y = torch.randn(*x), torch.randint(0, 10, y)
    ref = reference_step(copy.deepcopy(model), x, y)
    exact = compare(run_step(copy.deepcopy(model), x, y, gemm="fp32"), ref)
    assert exact["grads"] <= 1e-5 and exact["weights"] <= 1e-5, exact
    got = run_step(copy.deepcopy(model), x, y)
    err = compare(got, ref)
    assert err["loss"] <= FP16_U and err["grads"] <= 4 * FP16_U, err
