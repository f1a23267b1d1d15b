"""SR-STE / BDWP / transposable training layers against their explicit formulas."""

import re

import pytest
import torch
import torch.nn.functional as nnf
from torch import nn

from algorithms.bdwp import SparseConv2d, SparseLinear, masks_for, nm_conv2d, nm_linear
from algorithms.nm import nm_mask, transposable_mask

DECAY = 1e-2  # larger than the default so the decay term is visible in the comparison


def _linear_grads(layer, x):
    x = x.clone().requires_grad_(True)
    y = layer(x)
    dy = torch.randn_like(y, dtype=torch.float64)
    y.backward(dy)
    return y, dy, x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("method", ["srste", "bdwp", "transposable"])
@pytest.mark.parametrize("pattern", ["2:4", "2:8", "1:8"])
def test_sparse_linear_matches_explicit_formulas(method, pattern):
    torch.manual_seed(0)
    n, m = map(int, pattern.split(":"))
    layer = SparseLinear(16, 24, pattern=pattern, method=method, decay=DECAY, dtype=torch.float64)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    W = layer.weight.detach().clone()
    y, dy, dx, dw, db = _linear_grads(layer, x)
    if method == "transposable":
        mf = mb = transposable_mask(W, n, m)
    else:
        mf = nm_mask(W, n, m, dim=1)
        mb = nm_mask(W, n, m, dim=0) if method == "bdwp" else mf
    torch.testing.assert_close(y, x @ (W * mf).T + layer.bias.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(dx, dy @ (W * mb), rtol=0, atol=1e-12)
    dense_dw = dy.reshape(-1, 24).T @ x.reshape(-1, 16)
    torch.testing.assert_close(dw, dense_dw + DECAY * (1 - mf.double()) * W, rtol=0, atol=1e-12)
    torch.testing.assert_close(db, dy.sum((0, 1)), rtol=0, atol=1e-12)


def test_bdwp_backward_mask_is_nm_along_out_features_and_differs_from_forward():
    torch.manual_seed(1)
    layer = SparseLinear(16, 16, pattern="2:8", method="bdwp")
    mf, mb = layer.masks()
    assert (mf.reshape(16, 2, 8).sum(-1) == 2).all()
    assert (mb.t().reshape(16, 2, 8).sum(-1) == 2).all()
    assert not torch.equal(mf, mb)


def test_dense_method_is_plain_linear():
    torch.manual_seed(2)
    layer = SparseLinear(8, 8, pattern="2:4", method="dense", dtype=torch.float64)
    ref = nn.Linear(8, 8, dtype=torch.float64)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(3, 8, dtype=torch.float64)
    layer(x).sum().backward()
    ref(x).sum().backward()
    assert torch.equal(layer.weight.grad, ref.weight.grad)


def test_nm_linear_gradcheck_when_backward_mask_equals_forward_mask():
    # With M_b = M_f and no decay the input and bias gradients are the true gradients.
    torch.manual_seed(3)
    W = torch.randn(8, 8, dtype=torch.float64)
    mask = nm_mask(W, 2, 4)
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b: nm_linear(x, W, b, mask, mask, 0.0), (x, b))


def test_nm_conv2d_gradcheck_when_backward_mask_equals_forward_mask():
    torch.manual_seed(4)
    W = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    mask = nm_mask(W, 2, 4, dim=1)
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)

    def f(x, b):
        return nm_conv2d(x, W, b, mask, mask, 0.0, stride=2, padding=1, dilation=1)

    assert torch.autograd.gradcheck(f, (x, b))


@pytest.mark.parametrize("method", ["srste", "bdwp", "transposable"])
def test_sparse_conv2d_matches_explicit_formulas(method):
    torch.manual_seed(5)
    conv = SparseConv2d(
        8,
        16,
        3,
        stride=1,
        padding=1,
        pattern="2:4",
        method=method,
        decay=DECAY,
        dtype=torch.float64,
    )
    W = conv.weight.detach().clone()
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    if method == "transposable":
        mf = mb = transposable_mask(W.permute(2, 3, 0, 1), 2, 4).permute(2, 3, 0, 1)
        assert (mf.reshape(4, 4, 8, 3, 3).sum(1) == 2).all()  # N:M along C_out too
    else:
        mf = nm_mask(W, 2, 4, dim=1)
        mb = nm_mask(W, 2, 4, dim=0) if method == "bdwp" else mf
    assert (mf.reshape(16, 2, 4, 3, 3).sum(2) == 2).all()  # groups along C_in
    ref_y = nnf.conv2d(x.detach(), W * mf, conv.bias.detach(), padding=1)
    torch.testing.assert_close(y, ref_y, rtol=0, atol=1e-12)
    # reference dX: plain autograd of a convolution that uses W ⊙ M_b
    xr = x.detach().clone().requires_grad_(True)
    nnf.conv2d(xr, W * mb, None, padding=1).backward(dy)
    torch.testing.assert_close(x.grad, xr.grad, rtol=0, atol=1e-12)
    Wr = W.clone().requires_grad_(True)
    nnf.conv2d(x.detach(), Wr, None, padding=1).backward(dy)
    expected_dw = Wr.grad + DECAY * (1 - mf.double()) * W
    torch.testing.assert_close(conv.weight.grad, expected_dw, rtol=0, atol=1e-12)
    torch.testing.assert_close(conv.bias.grad, dy.sum((0, 2, 3)), rtol=0, atol=1e-12)


def test_bdwp_conv_backward_mask_groups_along_c_out():
    torch.manual_seed(6)
    _, mb = masks_for(torch.randn(16, 8, 3, 3), 2, 8, "bdwp")
    assert (mb.reshape(2, 8, 8, 3, 3).sum(1) == 2).all()


def test_sparse_layer_errors_are_pinned():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "method must be one of 'dense', 'srste', 'bdwp', 'transposable', not 'topk'"
        ),
    ):
        SparseLinear(8, 8, pattern="2:4", method="topk")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "SparseLinear: out-channel size 10 of weight shape (10, 16) is not divisible by m=8 "
            "(pattern 2:8, method 'bdwp')"
        ),
    ):
        SparseLinear(16, 10, pattern="2:8", method="bdwp")
    SparseLinear(16, 10, pattern="2:8", method="srste")  # srste only needs in-features
    with pytest.raises(ValueError, match=re.escape("not '2/8'")):
        SparseConv2d(8, 8, 3, pattern="2/8")
    with pytest.raises(ValueError, match=re.escape("SparseConv2d: grouped or 'zeros'-padded")):
        SparseConv2d.from_dense(nn.Conv2d(8, 8, 3, groups=2), "2:4", "bdwp")


def test_from_dense_keeps_weights_and_sparse_weight_is_masked():
    torch.manual_seed(7)
    lin = nn.Linear(16, 8)
    sp = SparseLinear.from_dense(lin, "2:8", "bdwp")
    assert torch.equal(sp.weight, lin.weight) and torch.equal(sp.bias, lin.bias)
    assert sp.weight.data_ptr() != lin.weight.data_ptr()
    assert torch.equal(sp.sparse_weight(), lin.weight.detach() * nm_mask(lin.weight, 2, 8))
    assert "pattern='2:8', method='bdwp'" in repr(sp)


def test_srste_decay_pulls_pruned_weights_to_zero():
    # With zero data gradient, SGD on the decay term alone shrinks only pruned weights.
    torch.manual_seed(8)
    layer = SparseLinear(8, 8, pattern="2:4", method="srste", decay=0.5, bias=False)
    w0 = layer.weight.detach().clone()
    mf, _ = layer.masks()
    layer(torch.zeros(1, 8)).sum().backward()
    with torch.no_grad():
        layer.weight -= layer.weight.grad
    torch.testing.assert_close(layer.weight.detach(), torch.where(mf, w0, 0.5 * w0))
