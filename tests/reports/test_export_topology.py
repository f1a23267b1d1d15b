"""satmem export-topology: a whole training step as SCALE-Sim GEMM topologies, read back by the
SCALE-Sim reader, its MACs equal to an independent count."""

from __future__ import annotations

import pytest

from algorithms.flops import training_macs
from dataflow.scalesim import read_topology
from dataflow.workload import default_skip
from dataflow.zoo import get_model
from reports.cli import main


def test_resnet18_training_step_round_trips(tmp_path, capsys):
    out = tmp_path / "r18.csv"
    assert main(["export-topology", "--model", "resnet18", "--out", str(out)]) == 0
    layers = read_topology(out)
    # every conv and the classifier, three passes each
    assert len(layers) == 21 * 3
    by_pass = {p: [la for la in layers if la.name.endswith("." + p)]
               for p in ("fwd", "bgrad", "wgrad")}
    assert all(len(v) == 21 for v in by_pass.values())
    # BDWP 2:8: N:M in fwd and bgrad of every layer but the stem and the classifier
    assert {la.name for la in by_pass["fwd"] if la.sparsity is None} == {"conv1.fwd", "fc.fwd"}
    assert all(la.sparsity is None for la in by_pass["wgrad"])
    assert all(la.sparsity == (2, 8) for la in by_pass["bgrad"]
               if la.name not in ("conv1.bgrad", "fc.bgrad"))
    # dense MACs per pass equal algorithms.flops.training_macs (hooks on the real layers)
    model, x = get_model("resnet18", device="cpu", image_size=224)
    ref = training_macs(model, x, method="bdwp", pattern="2:8", skip=default_skip(model))
    for p, rows in by_pass.items():
        assert sum(la.macs() for la in rows) == ref[ref["pass"] == p]["dense_macs"].sum()
    assert "63 GEMM rows" in capsys.readouterr().out


def test_repeated_gemms_are_one_row_each_and_passes_filter(tmp_path):
    out = tmp_path / "vit.csv"
    assert main(["export-topology", "--model", "bert_base", "--phase", "prefill", "--pass",
                 "fwd", "--method", "dense", "--seq-len", "32", "--batch", "2",
                 "--out", str(out)]) == 0
    layers = read_topology(out)
    qk = [la for la in layers if la.name.startswith("encoder.layer.0.attention.self.matmul.fwd#")]
    assert len(qk) == 2 * 12 and {la.gemm_shape() for la in qk} == {(32, 32, 64)}
    assert all(la.sparsity is None for la in layers)


def test_a_model_from_a_file(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from torch import nn\n\ndef make():\n"
                   "    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))\n")
    out = tmp_path / "m.csv"
    assert main(["export-topology", "--model", f"{src}:make", "--input-shape", "4,64",
                 "--out", str(out)]) == 0
    shapes = {la.name: (la.gemm_shape(), la.sparsity) for la in read_topology(out)}
    assert shapes["0.fwd"] == ((4, 128, 64), (2, 8))
    assert shapes["0.bgrad"] == ((4, 64, 128), (2, 8))
    assert shapes["0.wgrad"] == ((128, 64, 4), None)


@pytest.mark.parametrize("argv, message", [
    (["--model", "nosuch"], "unknown model"),
    (["--model", "bert_base", "--phase", "prefill", "--pass", "wgrad"], "use --pass fwd"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    assert main(["export-topology", *argv, "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
