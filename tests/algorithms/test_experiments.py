"""The experiments: fast smoke runs with tiny budgets, and full runs marked slow."""

import math

import pytest

from algorithms.experiments import (
    run_attmemo_experiment,
    run_memoryformer_experiment,
    run_nm_experiment,
)
from algorithms.experiments._common import byte_corpus, markdown_table
from algorithms.memoryformer import MemoryFormerConfig, block_flops


def test_nm_experiment_smoke_trains_and_writes_files(tmp_path):
    messages = []
    df = run_nm_experiment(
        tmp_path, models=("mlp",), methods=("dense", "bdwp"), patterns=("2:8",),
        seeds=(0, 1), epochs=6, progress=messages.append,
    )  # fmt: skip
    assert len(messages) == 4 and messages[0].startswith("[1/4] mlp dense dense seed 0: accuracy")
    dense = df[df["method"] == "dense"].iloc[0]
    bdwp = df[df["method"] == "bdwp"].iloc[0]
    assert dense["accuracy_mean"] > 0.8 and bdwp["accuracy_mean"] > 0.8
    assert dense["runs"] == 2 and dense["accuracy_std"] >= 0
    # MLP 64-256-256-10 per sample, classifier dense: explicit per-pass MACs
    assert dense["fwd_macs"] == 64 * 256 + 256 * 256 + 256 * 10
    assert bdwp["fwd_macs"] == (64 * 256 + 256 * 256) // 4 + 256 * 10
    assert bdwp["bgrad_macs"] == bdwp["fwd_macs"]
    assert bdwp["wgrad_macs"] == dense["wgrad_macs"]
    for name in ("nm_results.csv", "nm_results.md", "nm_runs.csv", "nm_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| model | method |" in (tmp_path / "nm_results.md").read_text()


def test_memoryformer_experiment_smoke(tmp_path):
    df = run_memoryformer_experiment(
        tmp_path, steps=15, d_model=32, n_layers=1, n_heads=2, seq_len=32, batch_size=8,
        corpus_bytes=200_000, eval_batches=2,
    )  # fmt: skip
    assert df["model"].tolist() == ["memoryformer", "dense"]
    assert (df["val_loss"] < math.log(256)).all()  # better than a uniform byte guess
    flops = block_flops(MemoryFormerConfig(d_model=32, n_heads=2, max_seq_len=32), 32)
    assert df["block_macs_per_token"].tolist() == [
        flops["memoryformer"]["total"] / 32,
        flops["dense"]["total"] / 32,
    ]
    mf = df.iloc[0]
    assert 0 < mf["bucket_entropy"] <= 1 and 0 < mf["buckets_used"] <= 1
    assert (tmp_path / "memoryformer_buckets.png").stat().st_size > 0
    assert (tmp_path / "memoryformer_results.md").exists()


def test_attmemo_experiment_smoke_extreme_thresholds(tmp_path):
    df = run_attmemo_experiment(
        tmp_path, thresholds=(-1.5, 1.5), train_steps=10, memo_sequences=64,
        eval_sequences=16, embed_steps=10, d_model=32, n_layers=1, n_heads=2, seq_len=16,
        corpus_bytes=100_000,
    )  # fmt: skip
    always, never = df.iloc[0], df.iloc[1]
    assert always["hit_rate"] == 1.0 and never["hit_rate"] == 0.0
    assert always["attention_macs_saved"] == 16 * 16 * 16 * 32
    assert never["loss_change"] == 0.0 and never["attention_macs_saved"] == 0
    assert (tmp_path / "attmemo_threshold.png").stat().st_size > 0
    # the traces satmem simulate --memo reads: one row per evaluated sequence
    from dataflow.memo import read_trace

    assert read_trace(tmp_path / "traces" / "threshold_-1.5.csv") == {0: 1.0}
    assert read_trace(tmp_path / "traces" / "threshold_1.5.csv") == {0: 0.0}
    lines = (tmp_path / "traces" / "threshold_1.5.csv").read_text().splitlines()
    assert lines[0] == "layer,sequence,hit" and len(lines) == 1 + 16


def test_byte_corpus_is_deterministic_stdlib_text():
    a, b = byte_corpus(5000), byte_corpus(5000)
    assert a.shape == (5000,) and a.equal(b) and int(a.max()) < 256
    assert b'"""' in bytes(a.tolist()) or b"import" in bytes(a.tolist())


def test_markdown_table_format():
    import pandas as pd

    text = markdown_table(pd.DataFrame({"a": [1, 2], "b": [0.5, 1 / 3]}))
    assert text == "| a | b |\n|---|---|\n| 1 | 0.5 |\n| 2 | 0.3333 |\n"


@pytest.mark.slow
def test_nm_experiment_full_budget(tmp_path):
    df = run_nm_experiment(tmp_path)
    dense = df[df["method"] == "dense"].set_index("model")["accuracy_mean"]
    assert (dense > 0.95).all()
    bdwp28 = df[(df["method"] == "bdwp") & (df["pattern"] == "2:8")].set_index("model")
    assert (bdwp28["accuracy_mean"] > dense - 0.03).all()
    assert bdwp28["ideal_speedup"].gt(1.5).all()


@pytest.mark.slow
def test_memoryformer_experiment_full_budget(tmp_path):
    df = run_memoryformer_experiment(tmp_path)
    assert (df["bits_per_byte"] < 4.0).all()
    assert df.iloc[0]["block_macs_per_token"] < df.iloc[1]["block_macs_per_token"] / 3
    assert df.iloc[0]["buckets_used"] > 0.5


@pytest.mark.slow
def test_attmemo_experiment_full_budget(tmp_path):
    df = run_attmemo_experiment(tmp_path)
    assert df["hit_rate"].is_monotonic_decreasing
    assert df.iloc[0]["hit_rate"] > df.iloc[-1]["hit_rate"]
