"""``satmem simulate --model FILE.py:FACTORY`` and ``--model FILE.pt2``: your own model through
the CLI, its MACs against a hand count; bad input gives one line and exit status 2."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reports.cli import main

MODELS = '''
import torch
from torch import nn


def mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
                         nn.Conv2d(16, 32, 1), nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


class Lm(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(64, 32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.head = nn.Linear(32, 64)

    def forward(self, ids):
        x = self.emb(ids)
        return self.head(x + self.attn(x, x, x, need_weights=False)[0])


def lm():
    return Lm()


def conv1d():
    return nn.Sequential(nn.Conv1d(4, 8, 3), nn.ReLU()), torch.randn(2, 4, 16)


def broken():
    raise RuntimeError("no weights here")


def not_a_module():
    return 42
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "mymodels.py"
    path.write_text(MODELS)
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def simulate_json(capsys, *argv):
    code, out, err = run(capsys, "simulate", *argv, "--json")
    assert code == 0 and err == "", err
    return json.loads(out)


def test_mlp_file_dense_training_step_macs_equal_hand_count(models, capsys):
    data = simulate_json(capsys, "--model", f"{models}:mlp", "--input-shape", "16,64",
                         "--method", "dense", "--config", "tiny")
    fwd = 16 * 64 * 128 + 16 * 128 * 10
    assert data["model"] == "mymodels.py:mlp" and data["phase"] == "train"
    assert data["totals"]["macs"] == 3 * fwd  # forward, backward-data, weight gradient
    passes = {row["pass"]: row["macs"] for row in data["per_pass"]}
    assert passes["fwd"] == fwd
    assert data["speedup"] == 1.0


def test_cnn_file_bdwp_keeps_stem_depthwise_and_classifier_dense(models, capsys):
    data = simulate_json(capsys, "--model", f"{models}:cnn", "--input-shape", "2,3,8,8")
    p = 2 * 8 * 8
    stem, dw, pw, fc = p * 16 * 27, p * 16 * 9, p * 32 * 16, 2 * 32 * 64 * 10
    sparse_pw = 2 * pw * 2 // 8 + pw  # fwd and bgrad at 2:8, wgrad dense
    assert data["totals"]["macs"] == 3 * (stem + dw + fc) + sparse_pw
    # one small layer is sparse: the MACs bound is modest, and the measured speedup is
    # whatever the machine makes of it (prunes included), not asserted here
    assert data["method"] == "bdwp" and data["speedup"] > 0
    assert data["ideal_speedup"] == pytest.approx(3 * (stem + dw + fc + pw)
                                                  / data["totals"]["macs"])


def test_pt2_from_torch_export_training_and_prefill(models, tmp_path, capsys):
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    path = tmp_path / "mlp.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(8, 64),)), path)
    fwd = 8 * 64 * 128 + 8 * 128 * 10
    data = simulate_json(capsys, "--model", str(path), "--method", "dense")
    assert data["model"] == "mlp.pt2" and data["totals"]["macs"] == 3 * fwd
    data = simulate_json(capsys, "--model", str(path), "--method", "dense", "--phase", "prefill")
    assert data["phase"] == "prefill" and data["totals"]["macs"] == fwd
    # a text run prints the summary line and the per-layer table
    code, out, _ = run(capsys, "simulate", "--model", str(path), "--phase", "prefill")
    assert code == 0 and out.startswith("mlp.pt2 bdwp 2:8 prefill on vcu1525 batch 8")


def test_token_ids_with_vocab_through_multihead_attention(models, capsys):
    data = simulate_json(capsys, "--model", f"{models}:lm", "--input-shape", "2,8",
                         "--input-dtype", "long", "--vocab", "64", "--method", "dense",
                         "--phase", "prefill")
    t, d = 16, 32
    fwd = t * 3 * d * d + 2 * (2 * 4 * 8 * 8 * 8) + t * d * d + t * d * 64
    assert data["totals"]["macs"] == fwd and data["seq_len"] == 8


@pytest.mark.parametrize(("argv", "needle"), [
    (["--model", "{dir}/nothere.py:mlp", "--input-shape", "1,64"], "does not exist"),
    (["--model", "{models}:nope"], "has no function 'nope'"),
    (["--model", "{models}:not_a_module"], "returned int, not an nn.Module"),
    (["--model", "{models}:broken"],
     r"calling mymodels.py:broken\(\) failed: RuntimeError: no weights here"),
    (["--model", "{models}:mlp"], "no example input: give its shape"),
    (["--model", "{models}:mlp", "--input-shape", "1,32"], "failed on an input of shape"),
    (["--model", "{models}:mlp", "--input-shape", "a,b"], "comma-separated positive"),
    (["--model", "{models}:mlp", "--input-shape", "1,64", "--input-dtype", "long"],
     "need a vocabulary bound: give --vocab N"),
    (["--model", "{models}:conv1d"], "cannot map torch.conv1d called in module '0': .*use "
                                     r"nn.Conv2d with a \(1, k\) kernel"),
    (["--model", "{models}:mlp", "--input-shape", "1,64", "--phase", "decode"],
     "runs --phase train or prefill"),
    (["--model", "{models}:mlp", "--input-shape", "1,64", "--batch", "4"],
     "--batch: for zoo models"),
    (["--model", "resnet18", "--input-shape", "1,3,32,32"], "--input-shape: for a model from"),
    (["--model", "{dir}/prog.pt2"], "does not exist"),
    (["--model", "{dir}/junk.pt2"], "cannot read .* as a torch.export program"),
])
def test_bad_model_input_is_one_line_and_exit_2(models, tmp_path, capsys, argv, needle):
    import re

    (tmp_path / "junk.pt2").write_text("not a zip")
    argv = [a.format(models=models, dir=tmp_path) for a in argv]
    code, out, err = run(capsys, "simulate", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("satmem: error: ")
    assert re.search(needle, err), err
