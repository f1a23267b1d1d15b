"""The MemoryFormer report on a small setting: real simulations, independent counts, figures."""

from __future__ import annotations

import pandas as pd
import pytest

from dataflow.simulate import PATH_PARTS, simulate_model
from hwsim.config import load_config
from reports.memoryformer_report import (
    HOT_ROWS,
    MODELS,
    SENSITIVITY,
    engine_sensitivity,
    gather_curves,
    memoryformer_report,
    sweep_config,
    update_traffic,
)

SEQ = 64
TIERS = ("hbm2e", "pmem")
LAYERS, D, K = 6, 512, 64  # MemoryFormer-tiny: 6 blocks, d 512, K = d / tau = 64 chunks
# rows gathered per token per layer, fp16: Q, K, V (K rows of d), the memory block's up layer
# (K rows of (tau + 2) K = 640) and down layer (K rows of d)
TOKEN_BYTES = LAYERS * 2 * K * (3 * D + 10 * K + D)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("mf")
    lines = []
    md = memoryformer_report(out, "vcu1525", seq_len=SEQ, tiers=TIERS,
                             phases=("train", "decode"), sensitivity_tiers=(),
                             gather_rows=256, progress=lines.append)
    return out, md, lines


def _csv(out, name):
    return pd.read_csv(out / f"memoryformer_{name}.csv")


def test_tiny_decode_reads_336_kib_per_layer_from_the_tiers(report):
    out, _, _ = report
    assert TOKEN_BYTES == LAYERS * 336 * 1024
    df = _csv(out, "compare").set_index(["label", "phase"])
    mf = df.loc[(MODELS[0][0], "decode")]
    reads = [c for c in df.columns if c.startswith("tier_") and c.endswith("_read")]
    assert sum(mf[c] for c in reads) == TOKEN_BYTES
    assert all(mf[c.replace("_read", "_write")] == 0 for c in reads)  # inference writes nothing
    sweep = _csv(out, "tiers").set_index("tier")
    assert (sweep.decode_read == TOKEN_BYTES).all() and (sweep.decode_write == 0).all()
    for label, *_ in MODELS[1:]:  # the dense transformer has no tables
        assert all(df.loc[(label, "decode"), c] == 0 for c in reads)


def test_energy_parts_and_critical_path_add_up(report):
    out, _, _ = report
    df = _csv(out, "compare")
    parts = ["energy_compute_pj", "energy_sram_pj", "energy_dram_pj", "energy_static_pj"] + [
        c for c in df.columns if c.startswith("energy_tier_")]
    assert df[parts].sum(axis=1).to_numpy() == pytest.approx(df.energy_pj.to_numpy(), rel=1e-9)
    paths = df[[f"path_{k}" for k in PATH_PARTS]].sum(axis=1)
    assert (paths == df.cycles).all()
    mf = df[df.model == "memoryformer_tiny"].set_index("phase")
    assert mf.loc["train", "path_lookup"] > 0 and mf.loc["train", "energy_tier_ddr_pj"] > 0
    assert mf.loc["train", "cycles"] > mf.loc["decode", "cycles"] > 0
    assert (df[df.model == "pythia70m"].path_lookup == 0).all()


def test_bdwp_is_faster_than_dense_and_the_blocks_sum_to_the_step(report):
    out, _, _ = report
    df = _csv(out, "compare").set_index(["label", "phase"])
    for phase in ("train", "decode"):
        assert df.loc[("Pythia-70M BDWP 2:8", phase), "cycles"] < \
            df.loc[("Pythia-70M dense", phase), "cycles"]
    blocks = _csv(out, "layers").set_index("block")
    for label, *_ in MODELS:
        assert blocks[label].sum() == df.loc[(label, "train"), "cycles"]
    assert [f"block {i}" for i in range(LAYERS)] == [b for b in blocks.index if "block " in b]


def test_lower_bandwidth_tiers_are_not_faster(report):
    out, _, _ = report
    sweep = _csv(out, "tiers").set_index("tier")
    fast, slow = sweep.loc["hbm2e"], sweep.loc["pmem"]
    assert slow.peak_gbps < fast.peak_gbps
    assert slow.train_cycles > fast.train_cycles and slow.decode_cycles >= fast.decode_cycles
    assert slow.train_path_lookup > fast.train_path_lookup
    assert slow.train_read == fast.train_read  # same rows; pmem's 256 B blocks divide them
    assert not sweep.grown.any() and (sweep.capacity_gib >= 16).all()
    # no tier moves its bytes faster than its peak read and write bandwidth allow
    assert sweep.train_peak_share.between(0, 1, inclusive="right").all()


def test_markdown_states_the_numbers_and_figures_are_pngs(report):
    out, md, lines = report
    text = md.read_text()
    df = _csv(out, "compare").set_index(["label", "phase"])
    for label, *_ in MODELS:
        assert f"| {label} | {df.loc[(label, 'train'), 'cycles']:,} |" in text
    assert "draws lookup rows **uniformly**" in text and "SYNC" in text
    for r in _csv(out, "tiers").itertuples():
        assert f"| {r.tier} | {r.peak_gbps:.1f} |" in text and f"{r.train_cycles:,}" in text
    for name in ("compare", "layers", "tiers", "gather"):
        png = out / f"memoryformer_{name}.png"
        data = png.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"memoryformer_{name}.png" in text
    assert len(lines) == 3 * 2 + 2 * 2 + len(HOT_ROWS) + 1
    assert lines[0].startswith("[1/6] MemoryFormer-tiny")


def test_gather_curves_stay_under_peak_and_need_requests_outstanding():
    df = gather_curves(("ddr4",), rows=512, row_bytes=(1024,), outstanding=(1, 8, 64))
    assert (df.gbps <= df.peak_gbps * 1.001).all()
    assert df.gbps.iloc[1:].min() > 2 * df.gbps.iloc[0]  # one request per channel: latency
    assert df.gbps.iloc[0] < 0.5 * df.peak_gbps.iloc[0]
    assert df.bound.iloc[0] == "latency"


def test_sweep_config_grows_only_tiers_too_small():
    cfg = load_config("vcu1525")
    big, grown = sweep_config(cfg, "sram", 6 << 30)
    (tier,) = big.lookup.tiers
    assert grown and tier.capacity_gib == 8.0 and tier.kind == "sram"
    assert tier.bandwidth_gbps == 64.0 and big.array == cfg.array
    same, grown = sweep_config(cfg, "hbm2e", 6 << 30)
    assert not grown and same.lookup.tiers[0].capacity_gib == 16.0


def test_pythia_decode_attends_to_the_cache_and_runs_forward_only():
    r = simulate_model("pythia70m", "dense", None, "vcu1525", compare_dense=False,
                       phase="decode", context=100)
    assert r.seq_len == 1 and r.context == 100 and list(r.per_pass["pass"]) == ["fwd"]
    qk = r.ops[r.ops.name == "layers.0.attention.matmul.fwd"].iloc[0]
    assert qk.macs == 8 * 101 * 64  # heads x (context + 1) x head dim, one query row
    assert "decode of one token after 100 cached" in r.summary()


def test_more_rows_in_flight_lift_the_lookup_rate_on_hbm(report):
    out, _, _ = report
    e = engine_sensitivity("vcu1525", SEQ, ("hbm2e",), knobs=SENSITIVITY[:2]).set_index("knob")
    assert list(e.index) == ["as configured", "8x rows in flight"] and (e.tier == "hbm2e").all()
    base = e.loc["as configured"]
    more = e.loc["8x rows in flight"]
    assert more.lookup_gbps > base.lookup_gbps and more.cycles < base.cycles
    sweep = _csv(out, "tiers").set_index("tier")
    assert base.cycles == sweep.loc["hbm2e", "train_cycles"]  # same machine, same sequence


def test_update_traffic_counts_every_listed_row_against_distinct_rows():
    up = update_traffic(SEQ)
    widths = 3 * D + 10 * K + D  # h of Q, K, V, up and down: fp32 rows of 4h bytes
    # each listed row (token x chunk): gradient, master, momentum read and written, fp16 copy
    assert up["listed"] == LAYERS * SEQ * K * (6 * 4 + 2) * widths
    assert up["distinct"] < up["listed"]


def test_item_tier_bytes_sum_to_the_run_and_land_on_the_memory_layers():
    r = simulate_model("memoryformer_tiny", phase="decode", seq_len=SEQ)
    assert r.method == "dense" and r.context == SEQ
    tiers = sum(v for k, v in r.totals.items() if k.startswith("tier_"))
    assert r.ops.tier_bytes.sum() == tiers == TOKEN_BYTES
    per_layer = r.per_layer.set_index("layer").tier_bytes
    assert per_layer["blocks.0.ffn.up"] == 2 * K * 10 * K  # K rows of (tau + 2) K fp16
    assert per_layer["blocks.3.q"] == 2 * K * D and per_layer["blocks.3"] == 0


def test_hot_row_cache_sweep_saves_tier_bytes_as_its_hit_rate_says(report):
    out, md, _ = report
    hot = _csv(out, "hot_rows").set_index("hot_rows")
    assert list(hot.index) == list(HOT_ROWS) and (hot.tier == "cxl").all()
    none = hot.loc[0]
    assert none.hit_rate == none.uniform_hit_rate == 0
    # the measured Q GATHERs: fp16 rows of 512 (1 KiB, whole 64-byte blocks), misses only
    refs = none.gather_read // (2 * D)
    assert refs == SEQ * K
    assert (hot.gather_read == ((1 - hot.hit_rate) * refs).round() * 2 * D).all()
    assert hot.hit_rate.is_monotonic_increasing and hot.hit_rate.iloc[-1] > 0.5
    assert (hot.hit_rate >= hot.uniform_hit_rate).all()  # real codes repeat more than uniform
    assert (hot.gather_cycles <= none.gather_cycles).all()
    assert hot.gather_cycles.iloc[-1] < none.gather_cycles  # cxl is bandwidth-bound
    # the training step (timing mode): fewer tier reads and cycles, writes through unchanged
    assert (hot.train_read <= none.train_read).all() and (hot.train_write == none.train_write).all()
    assert (hot.train_cycles <= none.train_cycles).all()
    assert hot.train_read.iloc[-1] < none.train_read
    assert "## Hot-row cache" in md.read_text()
