"""``satmem simulate --model M --values``: a training step with values on hwsim beside autograd
from the command line; a step beyond the MAC budget is refused in one line."""

from __future__ import annotations

import json

import pytest

from reports.cli import main

MODEL = '''
import torch
from torch import nn


def mlp():
    return (nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 16)),
            torch.randn(16, 32))


def silu():
    return nn.Sequential(nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 8)), torch.randn(4, 8)
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODEL)
    return path


def test_values_json_within_the_bound_and_sparse_macs_counted(models, capsys):
    code = main(["simulate", "--model", f"{models}:mlp", "--values", "--dense-layers", "",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["gemm"] == "array" and out["method"] == "bdwp"
    err = out["errors"]
    assert err["loss"] <= 2.0 ** -11 and err["grads"] <= 4 * 2.0 ** -11
    assert err["weights"] <= 4 * 2.0 ** -11
    assert {k for k in err if k.startswith("grad:")} == {
        "grad:0.weight", "grad:0.bias", "grad:2.weight", "grad:2.bias", "grad:3.weight",
        "grad:3.bias"}
    # both Linear layers sparse: fwd of both, bgrad of the second (the input needs no gradient)
    assert out["ops"]["sparse_macs"] == 16 * 64 * 32 + 16 * 16 * 64 + 16 * 64 * 16
    assert out["ops"]["macs_fwd"] == 16 * 64 * 32 + 16 * 16 * 64


def test_values_text_lists_the_largest_errors(models, capsys):
    code = main(["simulate", "--model", f"{models}:mlp", "--values", "--method", "dense",
                 "--gemm", "fp32", "--max-rows", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "training step with values on vcu1525 (GEMMs: fp32)" in out
    rows = [line for line in out.splitlines() if line.startswith("  grad:")
            or line.startswith("  weight:")]
    assert len(rows) == 3 and all(float(r.split()[-1]) < 1e-5 for r in rows)


@pytest.mark.parametrize("argv,message", [
    (["--model", "resnet18"], "a training step with values does 5.44 G MACs"),
    (["--model", "{models}:silu"], "aten.silu.default has no unit on the machine"),
    (["--model", "resnet18", "--phase", "prefill"], "--values runs a training step"),
])
def test_values_bad_input_is_one_line(models, capsys, argv, message):
    argv = [a.format(models=models) for a in argv]
    code = main(["simulate", *argv, "--values"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
