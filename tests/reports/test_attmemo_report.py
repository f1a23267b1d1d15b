"""satmem simulate --memo and satmem report attmemo."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from reports.attmemo_report import attmemo_report
from reports.cli import main


def test_simulate_memo_json(capsys):
    assert main(["simulate", "--model", "bert_base", "--memo", "1.0", "--seq-len", "64",
                 "--batch", "2", "--memo-tier", "ddr4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tier"] == "ddr4" and out["seq_len"] == 64 and len(out["layers"]) == 12
    assert all(row["hits"] == 2 and row["memoized"] for row in out["layers"])
    total = sum(row["saving"] for row in out["layers"])
    # the layers' savings are the whole pass's (other layers run as before), within 1e-4 of
    # the pass: chunked vector passes let a memoized layer's neighbours overlap it a little
    # differently (340 cycles of 12.1 M here)
    assert abs(total - (out["plain"]["cycles"] - out["memo"]["cycles"])) <= \
        1e-4 * out["plain"]["cycles"]
    assert out["saving"] == pytest.approx(1 - out["memo"]["cycles"] / out["plain"]["cycles"])


def test_simulate_memo_selective_memoizes_nothing_that_does_not_pay(capsys):
    # sequence 64, one sequence: the search costs more than the attention at any hit rate
    assert main(["simulate", "--model", "bert_base", "--memo", "1.0", "--seq-len", "64",
                 "--memo-selective", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not any(row["memoized"] for row in out["layers"])
    assert out["memo"]["cycles"] == out["plain"]["cycles"]
    assert all(row["break_even"] > 1 for row in out["layers"])


@pytest.mark.parametrize("argv, message", [
    (["--model", "bert_base", "--memo", "0.5", "--seq-len", "512", "--memo-tier", "hbm2e"],
     "tier 'hbm2e' holds 16 GiB"),
    (["--model", "resnet18", "--memo", "0.5"], "no self-attention to memoize"),
    (["--model", "bert_base", "--memo", "often"], "hit rate in [0, 1] or a trace CSV"),
    (["--model", "bert_base", "--memo", "1.5"], "in [0, 1]"),
    (["--model", "pythia70m", "--memo", "0.5", "--phase", "decode"], "--phase prefill"),
    (["--model", "bert_base", "--memo", "0.5", "--memo-tier", "tape"], "memo tier must be"),
    (["--model", "bert_base", "--phase", "decode"], "has only phases 'train', 'prefill'"),
])
def test_memo_errors_are_one_line(argv, message, capsys):
    assert main(["simulate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_report_attmemo(tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    pd.DataFrame({"threshold": [0.9, 0.99], "hit_rate": [0.6, 0.2], "val_loss": [2.0, 1.9],
                  "loss_change": [0.1, 0.01]}).to_csv(exp / "attmemo_results.csv", index=False)
    path = attmemo_report(tmp_path / "r", seqs=(64, 256), batches=(2,),
                          tiers=("hbm2e", "pmem"), n_layers=1, experiment=exp)
    text = path.read_text()
    grid = pd.read_csv(tmp_path / "r" / "attmemo_grid.csv")
    assert len(grid) == 4 and grid.fits.all()
    for _, r in grid.iterrows():
        # the break-even is where the line through the all-miss and all-hit passes meets plain
        assert r.sim_break_even == pytest.approx((r.miss - r.plain) / (r.miss - r.hit))
        assert r.hit < r.miss  # a hit is cheaper than a miss
    assert (tmp_path / "r" / "attmemo_latency.png").stat().st_size > 1000
    assert "22% average" in text and "## Break-even hit rate" in text and "## Energy" in text
    # the experiment's hit rates, with what they buy on the machine (hbm2e, the first tier)
    row = grid[(grid.seq == 256) & (grid.tier == "hbm2e")].iloc[0]
    saving = 1 - (0.6 * row.hit + 0.4 * row.miss) / row.plain
    line = next(ln for ln in text.splitlines() if ln.startswith("|        0.9 "))
    assert "|        0.6 |" in line and f"{saving:+.1%}" in line
