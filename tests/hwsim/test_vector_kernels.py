"""The vector engine's kernels with values (hwsim.units.vector_kernels) against float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from scipy.special import erf

from hwsim.units import vector_kernels as vk

U32 = 2.0 ** -24
RNG = np.random.default_rng(3)


def _ulps(got, exact):
    ref32 = exact.astype(np.float32)
    return np.max(np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(ref32)))


def test_exp_log_erf_within_their_pinned_errors():
    x = np.linspace(-87, 88.7, 400_001).astype(np.float32)
    assert _ulps(vk.hw_exp(x), np.exp(x.astype(np.float64))) <= vk.EXP_ULPS
    y = np.exp(np.linspace(-80, 80, 400_001)).astype(np.float32)
    assert _ulps(vk.hw_log(y), np.log(y.astype(np.float64))) <= vk.LOG_ULPS
    z = np.linspace(-6, 6, 400_001).astype(np.float32)
    assert np.max(np.abs(vk.hw_erf(z) - erf(z.astype(np.float64)))) <= vk.ERF_ABS
    special = vk.hw_exp(np.array([-np.inf, np.inf, 0, 100, -200, np.nan], np.float32))
    assert special[:5].tolist() == [0.0, np.inf, 1.0, np.inf, 0.0] and np.isnan(special[5])
    assert vk.hw_log(np.array([0, 1], np.float32)).tolist() == [-np.inf, 0.0]


def test_lane_sum_is_per_lane_then_lane_order():
    x = RNG.standard_normal((3, 37)).astype(np.float32) * np.float32(1e4)
    lanes = 4
    want = np.zeros(3, np.float32)
    for r in range(3):
        acc = [np.float32(0)] * lanes
        for i in range(37):
            acc[i % lanes] = np.float32(acc[i % lanes] + x[r, i])
        tot = np.float32(0)
        for a in acc:
            tot = np.float32(tot + a)
        want[r] = tot
    got = vk.lane_sum(x, lanes)
    assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist()
    # several axes are one stream in C order
    y = RNG.standard_normal((2, 3, 5)).astype(np.float32)
    assert np.array_equal(vk.lane_sum(y, 4, axis=(0, 2)), vk.lane_sum(y.transpose(1, 0, 2)
                                                                       .reshape(3, 10), 4))


def _close(got, exact, rel):
    exact = np.asarray(exact, np.float64)
    err = np.linalg.norm(np.asarray(got, np.float64) - exact) / np.linalg.norm(exact)
    assert err <= rel, err


def test_softmax_log_softmax_and_the_loss_against_float64():
    x = torch.randn(6, 50, dtype=torch.float64) * 4
    x[0, 3] = -torch.inf  # a masked logit
    x32 = x.float().numpy()
    p = vk.softmax(x32, -1, 8)
    _close(p, torch.softmax(x, -1), 8 * U32)
    assert p[0, 3] == 0
    dy = torch.randn(6, 50, dtype=torch.float64)
    pt = torch.softmax(x, -1)
    _close(vk.softmax_backward(dy.float().numpy(), p, -1, 8),
           pt * (dy - (dy * pt).sum(-1, keepdim=True)), 16 * U32)
    z = torch.randn(6, 50, dtype=torch.float64) * 4
    lp = vk.log_softmax(z.float().numpy(), -1, 8)
    _close(lp, torch.log_softmax(z, -1), 8 * U32)
    t = np.array([1, 0, 49, 7, 7, 3])
    assert abs(vk.nll_loss(lp, t, 8) - float(nnf.nll_loss(torch.log_softmax(z, -1),
                                                            torch.from_numpy(t)))) <= 1e-6
    g = vk.nll_loss_backward(1.0, lp.shape, t)
    assert g[np.arange(6), t].tolist() == [np.float32(-1 / 6)] * 6 and (g != 0).sum() == 6


def test_norms_forward_and_backward_against_float64():
    x = torch.randn(8, 6, 5, 5, dtype=torch.float64) * 3 + 1
    w = torch.randn(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    y, mean, rstd, rm, rv = vk.batch_norm(x.float().numpy(), w.float().numpy(),
                                          b.float().numpy(), np.zeros(6, np.float32),
                                          np.ones(6, np.float32), 0.1, 1e-5, 16)
    xr = x.clone().requires_grad_()
    wr, br = w.clone().requires_grad_(), b.clone().requires_grad_()
    rmt, rvt = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    yt = nnf.batch_norm(xr, rmt, rvt, wr, br, True, 0.1, 1e-5)
    _close(y, yt.detach(), 64 * U32)
    _close(rm, rmt, 16 * U32)
    _close(rv, rvt, 16 * U32)
    dy = torch.randn_like(x)
    yt.backward(dy)
    dx, dg, db = vk.batch_norm_backward(dy.float().numpy(), x.float().numpy(),
                                        w.float().numpy(), mean, rstd, 16)
    _close(dx, xr.grad, 256 * U32)
    _close(dg, wr.grad, 64 * U32)
    _close(db, br.grad, 64 * U32)

    h = torch.randn(4, 7, 32, dtype=torch.float64)
    g = torch.randn(32, dtype=torch.float64)
    c = torch.randn(32, dtype=torch.float64)
    yl, ml, rl = vk.layer_norm(h.float().numpy(), 32, g.float().numpy(), c.float().numpy(),
                               1e-6, 16)
    assert ml.shape == (4, 7, 1) and rl.shape == (4, 7, 1)
    hr, gr, cr = (t.clone().requires_grad_() for t in (h, g, c))
    yt = nnf.layer_norm(hr, (32,), gr, cr, 1e-6)
    _close(yl, yt.detach(), 64 * U32)
    dy = torch.randn_like(h)
    yt.backward(dy)
    dx, dg, db = vk.layer_norm_backward(dy.float().numpy(), h.float().numpy(), ml, rl,
                                        g.float().numpy(), 32, 16)
    _close(dx.reshape(h.shape), hr.grad, 256 * U32)
    _close(dg, gr.grad, 64 * U32)
    _close(db, cr.grad, 64 * U32)


def test_gelu_and_its_gradient_against_float64():
    x = torch.linspace(-8, 8, 10_001, dtype=torch.float64)
    xr = x.clone().requires_grad_()
    y = nnf.gelu(xr)
    assert np.max(np.abs(vk.gelu(x.float().numpy()) - y.detach().numpy())) <= 8 * vk.ERF_ABS
    y.sum().backward()
    got = vk.gelu_backward(np.ones(x.shape, np.float32), x.float().numpy())
    assert np.max(np.abs(got - xr.grad.numpy())) <= 8 * vk.ERF_ABS


@pytest.mark.parametrize("stride,padding,dilation", [((2, 2), (1, 1), (1, 1)),
                                                     ((1, 1), (0, 0), (2, 2))])
def test_col2im_equals_fold_and_scatter_adds_in_source_order(stride, padding, dilation):
    n, c, h, w, k = 2, 3, 7, 6, 3
    oh = (h + 2 * padding[0] - dilation[0] * (k - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (k - 1) - 1) // stride[1] + 1
    dcols = torch.randn(n * oh * ow, k * k * c, dtype=torch.float64)
    got = vk.col2im(dcols.float().numpy(), (n, c, h, w), (k, k), stride, padding, dilation)
    # torch's fold takes (N, C·kh·kw, L) with C outermost
    f = dcols.reshape(n, oh * ow, k, k, c).permute(0, 4, 2, 3, 1).reshape(n, c * k * k, -1)
    want = nnf.fold(f, (h, w), (k, k), dilation=dilation, padding=padding, stride=stride)
    _close(got, want, 4 * U32)
    # repeated indices add in order: 1e8 + 1 - 1e8 is 0 in fp32, -1e8 + 1e8 + 1 is 1
    assert vk.scatter_add(1, [0, 0, 0], np.array([1e8, 1, -1e8], np.float32))[0] == 0
    assert vk.scatter_add(1, [0, 0, 0], np.array([1e8, -1e8, 1], np.float32))[0] == 1


def test_embedding_backward_adds_rows_of_repeated_tokens():
    dy = RNG.standard_normal((5, 4)).astype(np.float32)
    idx = np.array([2, 0, 2, 3, 2])
    got = vk.embedding_backward(dy, idx, 6)
    assert np.array_equal(got[2], (dy[0] + dy[2]) + dy[4])
    assert np.array_equal(got[1], np.zeros(4, np.float32)) and np.array_equal(got[3], dy[3])
