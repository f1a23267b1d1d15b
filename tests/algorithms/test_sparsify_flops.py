"""sparsify() and training_macs()."""

import re

import pytest
import torch
from torch import nn

from algorithms import SparseConv2d, SparseLinear, ideal_speedup, sparsify, training_macs
from algorithms.flops import pass_fractions


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 6 * 6, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def test_sparsify_swaps_layers_keeps_weights_and_leaves_original_alone():
    torch.manual_seed(0)
    model = small_cnn()
    sp = sparsify(model, "2:8", "bdwp", skip=("0", "7"))
    assert type(sp[0]) is nn.Conv2d and type(sp[7]) is nn.Linear
    assert isinstance(sp[2], SparseConv2d) and isinstance(sp[5], SparseLinear)
    assert (sp[2].n, sp[2].m, sp[2].method) == (2, 8, "bdwp")
    assert torch.equal(sp[2].weight, model[2].weight)
    assert type(model[2]) is nn.Conv2d  # not in place by default
    x = torch.randn(3, 1, 8, 8)
    expected = nn.functional.linear(
        model[6](
            nn.functional.linear(
                model[4](
                    model[3](
                        nn.functional.conv2d(
                            model[1](model[0](x)), sp[2].sparse_weight(), model[2].bias
                        )
                    )
                ),
                sp[5].sparse_weight(),
                model[5].bias,
            )
        ),
        model[7].weight,
        model[7].bias,
    )
    torch.testing.assert_close(sp(x), expected)


def test_sparsify_inplace_and_glob_skip():
    model = small_cnn()
    out = sparsify(model, "2:4", "srste", skip=("[07]",), inplace=True)
    assert out is model and isinstance(model[2], SparseConv2d) and type(model[0]) is nn.Conv2d


def test_sparsify_errors_name_the_layer_and_change_nothing():
    model = small_cnn()
    with pytest.raises(
        ValueError,
        match=re.escape(
            "sparsify: layer '0': SparseConv2d: in-channel size 1 of weight shape (16, 1, 3, 3) "
            "is not divisible by m=8 (pattern 2:8, method 'bdwp'); add '0' to skip"
        ),
    ):
        sparsify(model, "2:8", "bdwp", inplace=True)
    assert type(model[2]) is nn.Conv2d
    with pytest.raises(ValueError, match=re.escape("sparsify: skip entry 'fc' matches no")):
        sparsify(model, "2:8", skip=("fc",))
    with pytest.raises(ValueError, match=re.escape("not '2by8'")):
        sparsify(model, "2by8")


def test_pass_fractions_table():
    assert pass_fractions("bdwp", "2:8") == {"fwd": 0.25, "bgrad": 0.25, "wgrad": 1}
    assert pass_fractions("srste", "2:4") == {"fwd": 0.5, "bgrad": 1, "wgrad": 1}
    assert pass_fractions("transposable", "1:8") == {"fwd": 0.125, "bgrad": 0.125, "wgrad": 1}
    assert pass_fractions("dense", "2:8") == {"fwd": 1, "bgrad": 1, "wgrad": 1}


def test_training_macs_linear_explicit_counts_and_ideal_bound():
    model = nn.Sequential(nn.Linear(64, 32))
    table = training_macs(model, torch.randn(4, 5, 64), "bdwp", "2:8")
    assert list(table.columns) == [
        "layer",
        "kind",
        "pass",
        "method",
        "pattern",
        "dense_macs",
        "macs",
        "fraction",
    ]
    assert table["pass"].tolist() == ["fwd", "bgrad", "wgrad"]
    dense = 4 * 5 * 64 * 32
    assert table["dense_macs"].tolist() == [dense] * 3
    assert table["macs"].tolist() == [dense // 4, dense // 4, dense]
    assert ideal_speedup(table) == pytest.approx(2.0)  # 3 / (1/4 + 1/4 + 1)
    srste = training_macs(model, torch.randn(4, 5, 64), "srste", "2:8")
    assert ideal_speedup(srste) == pytest.approx(3 / (0.25 + 1 + 1))


def test_training_macs_conv_counts_and_sparsified_model():
    torch.manual_seed(1)
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8)
    sp = sparsify(model, "2:4", "bdwp", skip=("0", "7"))
    table = training_macs(sp, x)
    fwd = table[table["pass"] == "fwd"].set_index("layer")
    assert fwd.loc["0", "dense_macs"] == 2 * 8 * 8 * 16 * 1 * 9
    assert fwd.loc["2", "dense_macs"] == 2 * 6 * 6 * 32 * 16 * 9
    assert fwd.loc["5", "dense_macs"] == 2 * 1152 * 64
    assert fwd.loc["2", "macs"] == 2 * 6 * 6 * 32 * 16 * 9 // 2
    assert fwd.loc["0", "method"] == "dense" and fwd.loc["2", "pattern"] == "2:4"
    # what-if mode on the dense model gives the same table
    whatif = training_macs(model, x, "bdwp", "2:4", skip=("0", "7"))
    assert whatif["macs"].tolist() == table["macs"].tolist()
    assert sp.training  # training mode restored


def test_training_macs_errors():
    with pytest.raises(
        ValueError,
        match=re.escape("training_macs: layer '0': in-channel size 1 is not divisible by m=8"),
    ):
        training_macs(small_cnn(), torch.randn(1, 1, 8, 8), "bdwp", "2:8")
    with pytest.raises(ValueError, match=re.escape("training_macs: method 'bdwp' needs a pattern")):
        training_macs(small_cnn(), torch.randn(1, 1, 8, 8), "bdwp")
