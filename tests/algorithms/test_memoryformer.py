"""MemoryFormer memory layers, blocks and FLOP counts."""

import math
import re

import pytest
import torch

from algorithms.memoryformer import (
    MemoryBlock,
    MemoryFormerBlock,
    MemoryFormerConfig,
    MemoryFormerLM,
    MemoryLayer,
    block_flops,
    gather_accumulate,
)


def naive_memory_layer(layer, x):
    """Per-token, per-chunk loop straight from the paper's formulas."""
    out = torch.zeros(x.shape[0], layer.out_features, dtype=x.dtype)
    t = layer.temperature
    for n in range(x.shape[0]):
        for k in range(layer.num_tables):
            z = x[n, k * layer.tau : (k + 1) * layer.tau]
            index = 0
            for bit in z:
                index = index * 2 + (1 if float(bit) >= 0 else 0)
            p = 1.0
            for zj in z:
                p *= 1.0 / (1.0 + math.exp(-2 * abs(float(zj)) / t))
            if layer.weight_kind == "official":
                p *= float(z.abs().sum())
            out[n] += p * layer.tables[k, index].detach()
        out[n] += layer.bias.detach()
    return out


def dense_formula(layer, x):
    """Plain autograd version: one-hot rows times tables, weights from the closed form."""
    z = x.reshape(x.shape[0], layer.num_tables, layer.tau)
    bits = (z >= 0).double()
    index = (bits * 2.0 ** torch.arange(layer.tau - 1, -1, -1)).sum(-1).long()
    onehot = torch.nn.functional.one_hot(index, 2**layer.tau).double()
    p = torch.sigmoid(2 * z.abs() / layer.temperature).prod(-1)
    if layer.weight_kind == "official":
        p = p * z.abs().sum(-1)
    return torch.einsum("nk,nkr,krh->nh", p, onehot, layer.tables) + layer.bias


@pytest.mark.parametrize("weight", ["paper", "official"])
def test_memory_layer_matches_naive_per_token_loop(weight):
    torch.manual_seed(0)
    layer = MemoryLayer(12, 5, tau=4, temperature=0.7, weight=weight).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(7, 12, dtype=torch.float64)
    x[0, :4] = 0.0  # sign(0) = +1
    torch.testing.assert_close(layer(x), naive_memory_layer(layer, x), rtol=1e-12, atol=1e-12)


def test_hash_bit_order_is_msb_first_and_zero_counts_positive():
    layer = MemoryLayer(4, 1, tau=4)
    idx, _ = layer.hash(torch.tensor([[1.0, -1.0, -2.0, 0.0]]))
    assert idx.tolist() == [[0b1001]]


@pytest.mark.parametrize("weight", ["paper", "official"])
def test_memory_layer_gradients_equal_autograd_of_dense_formula(weight):
    torch.manual_seed(1)
    layer = MemoryLayer(12, 6, tau=4, temperature=1.3, weight=weight).double()
    x = torch.randn(9, 12, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(9, 6, dtype=torch.float64)
    layer(x).backward(dy)
    got = (x.grad.clone(), layer.tables.grad.clone(), layer.bias.grad.clone())
    x.grad = None
    layer.zero_grad()
    dense_formula(layer, x).backward(dy)
    for a, b in zip(got, (x.grad, layer.tables.grad, layer.bias.grad), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_table_gradient_is_p_times_dy_at_hashed_rows_only():
    torch.manual_seed(2)
    layer = MemoryLayer(8, 3, tau=4).double()
    x = torch.randn(1, 8, dtype=torch.float64)
    dy = torch.randn(1, 3, dtype=torch.float64)
    layer(x).backward(dy)
    idx, p = layer.hash(x)
    grad = layer.tables.grad
    for k in range(2):
        expected = torch.zeros(16, 3, dtype=torch.float64)
        expected[idx[0, k]] = p[0, k] * dy[0]
        torch.testing.assert_close(grad[k], expected, rtol=1e-12, atol=0)
    assert int((grad.abs().sum(-1) > 0).sum()) == 2


def test_gather_accumulate_gradcheck():
    torch.manual_seed(3)
    w = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 4, (5, 3))
    tables = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, t: gather_accumulate(w, idx, t), (w, tables))


def test_bucket_counts_sum_to_tokens_times_tables():
    layer = MemoryLayer(16, 4, tau=8)
    counts = layer.bucket_counts(torch.randn(3, 10, 16))
    assert counts.shape == (2, 256) and counts.sum(1).tolist() == [30, 30]


def test_memory_block_widths_and_blocks_run_backward():
    block = MemoryBlock(32, tau=8)
    assert (block.up.out_features, block.down.tau, block.down.num_tables) == (40, 10, 4)
    config = MemoryFormerConfig(d_model=32, n_layers=2, n_heads=4, max_seq_len=16, tau=8)
    lm = MemoryFormerLM(config)
    idx = torch.randint(0, 256, (2, 16))
    logits = lm(idx)
    assert logits.shape == (2, 16, 256)
    logits.sum().backward()
    q = lm.blocks[0].q
    assert q.tables.grad is not None and lm.blocks[0].k.tables.grad.abs().sum() > 0
    dense = [n for n, m in lm.named_modules() if isinstance(m, torch.nn.Linear)]
    assert dense == ["head"]


def test_memoryformer_block_is_causal():
    torch.manual_seed(4)
    block = MemoryFormerBlock(MemoryFormerConfig(d_model=16, n_heads=2, tau=4))
    x = torch.randn(1, 6, 16)
    x2 = x.clone()
    x2[0, 4:] = torch.randn(2, 16)
    torch.testing.assert_close(block(x)[0, :4], block(x2)[0, :4])


def test_block_flops_formulas_and_paper_approximation():
    config = MemoryFormerConfig.preset("tiny")
    s, d, k = 2048, 512, 64
    f = block_flops(config, s)
    assert f["dense"]["total"] == 2 * s * s * d + 12 * s * d * d
    assert f["memoryformer"]["total"] == 2 * s * s * d + 5 * k * s * d + 2 * s * k * k
    paper = 2 * s * s * d + 6 * k * s * d
    assert abs(f["memoryformer"]["total"] / paper - 1) < 0.05


def test_presets_and_config_errors():
    assert MemoryFormerConfig.preset("small").num_tables == 96
    assert MemoryFormerConfig.preset("base").d_model == 1024
    with pytest.raises(
        ValueError, match=re.escape("preset must be one of 'tiny', 'small', 'base'")
    ):
        MemoryFormerConfig.preset("huge")
    with pytest.raises(
        ValueError, match=re.escape("in_features must be a multiple of tau=8, not 12")
    ):
        MemoryLayer(12, 4)
    with pytest.raises(
        ValueError, match=re.escape("weight must be 'paper' or 'official', not 'x'")
    ):
        MemoryLayer(8, 4, weight="x")
    with pytest.raises(ValueError, match=re.escape("tau must divide d_model=20, not 8")):
        MemoryFormerConfig(d_model=20, n_heads=2)
