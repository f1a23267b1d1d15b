"""dataflow.memo: AttMEMO's memoized attention lowered onto the machine.

Counts against independent formulas, the cost of a miss and the saving of a hit against the
simulator's own item times, the selective-memoization model against simulated cycles on a grid,
and a hit's values through hwsim against algorithms.attmemo.MemoizedSelfAttention.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from dataflow.memo import (
    MemoStore,
    MemoStoreError,
    attention_sites,
    hit_attention,
    hits_per_layer,
    memo_config,
    memo_model,
    memoize,
    read_trace,
    simulate_memo,
    store_bytes,
)
from dataflow.simulate import simulate_workload
from dataflow.workload import extract
from dataflow.zoo import get_model
from hwsim.config import load_config
from hwsim.tiers import tier_preset


def _bert(batch=2, seq=128, layers=1):
    model, x = get_model("bert_base", batch=batch, device="meta", seq_len=seq, n_layers=layers)
    return extract(model, x, method="dense", training=False, name="bert")


@pytest.fixture(scope="module")
def vcu():
    return load_config("vcu1525")


def test_attention_sites_of_bert_and_pythia():
    sites = attention_sites(_bert(batch=3, seq=64, layers=2), 3)
    assert [s.layer for s in sites] == [f"encoder.layer.{i}.attention.self" for i in range(2)]
    s = sites[0]
    assert (s.batch, s.heads, s.s_q, s.s_k, s.d_head) == (3, 12, 64, 64, 64)
    assert s.map_bytes == 12 * 64 * 64 * 2 and s.skipped_macs == 12 * 64 * 64 * 64
    m, x = get_model("pythia70m", batch=2, device="meta", seq_len=32, n_layers=1)
    py = attention_sites(extract(m, x, method="dense", training=False), 2)
    assert [(p.layer, p.heads, p.s_q, p.d_head) for p in py] == [("layers.0.attention", 8, 32,
                                                                   64)]
    r, xr = get_model("resnet18", device="meta", image_size=32)
    assert attention_sites(extract(r, xr, method="dense", training=False), 1) == []
    with pytest.raises(ValueError, match="inference"):
        attention_sites(extract(m, x, method="dense"), 2)


def test_memoize_skips_exactly_the_hits_attention_and_adds_the_search():
    wl = _bert(batch=4, seq=128, layers=2)
    store = MemoStore(tier="cxl", entries=4096, insert=True)  # IVF: 105 lists
    out = memoize(wl, store, {0: 0.75}, 4)  # layer 0: 3 of 4 sequences hit; layer 1 untouched
    ops = {op.name: op for op in out.ops}
    base = "encoder.layer.0.attention.self"
    # QKᵀ MACs skipped: hits · H · S² · d_head, against the plain workload
    skipped = sum(o.macs for o in wl.gemms()) - sum(
        o.macs for o in out.gemms() if ".memo." not in o.name)
    assert skipped == 3 * 12 * 128 * 128 * 64
    assert ops[f"{base}.matmul.fwd"].repeat == 1 * 12
    assert ops[f"{base}.softmax.fwd"].elements == 1 * 12 * 128 * 128
    # the map fetch: 3 maps of H·S rows of S fp16 values
    fetch = ops[f"{base}.memo.fetch"]
    assert fetch.rows * fetch.width * 2 == 3 * 12 * 128 * 128 * 2
    # the key scan: nprobe lists of the mean length, d_embed fp16 each, for every sequence
    assert store.lists == 4096 // 39 == 105
    keys = math.ceil(8 * 4096 / 105)
    scan = ops[f"{base}.memo.scan"]
    assert (scan.tokens, scan.chunks, scan.width) == (4, keys, 128)
    # the embedder: a 2x2 max pool of (S, d), then (S·d/4 -> 128 -> 128)
    assert (ops[f"{base}.memo.embed1"].m, ops[f"{base}.memo.embed1"].k) == (4, 64 * 384)
    assert ops[f"{base}.memo.centroids"].n == 105
    # inserts: the one miss's map and key
    assert ops[f"{base}.memo.insert"].rows == 12 * 128
    assert ops[f"{base}.memo.insert_key"].rows == 1
    assert not any(".memo." in n for n in ops if n.startswith("encoder.layer.1"))
    assert ops["encoder.layer.1.attention.self.matmul.fwd"].repeat == 4 * 12


def test_a_miss_costs_exactly_the_search(vcu):
    wl = _bert()
    store = MemoStore(tier="cxl")
    cfg = memo_config(vcu, store, attention_sites(wl, 2))
    _, plain_df, plain = simulate_workload(wl, cfg)
    _, df, memo = simulate_workload(memoize(wl, store, 0.0, 2), cfg)
    search = df[df.name.str.contains(".memo.")]
    assert set(search.name.str.rsplit(".", n=1).str[-1]) == {
        "pool", "embed1", "relu", "embed2", "norm", "scan", "best"}
    extra = memo["cycles"] - plain["cycles"]
    assert abs(extra - search.cycles.sum()) <= 1e-4 * plain["cycles"]
    # the scan read every key of the (exact) index: B · entries · d_embed fp16
    assert search[search.name.str.endswith(".scan")].tier_bytes.iloc[0] == 2 * 1024 * 128 * 2


def test_a_hit_from_free_memory_saves_the_attention_minus_search_and_fetch(vcu):
    wl = _bert()
    store = MemoStore(tier="cxl")
    free = tier_preset("sram", capacity_gib=64.0, bandwidth_gbps=1e6, write_bandwidth_gbps=1e6,
                       read_latency_ns=0.0, write_latency_ns=0.0)
    cfg = memo_config(vcu, store, attention_sites(wl, 2))
    cfg = dataclasses.replace(cfg, lookup=dataclasses.replace(cfg.lookup, tiers=(free,)))
    # a burst DMA, so the DMA's own issue rate (an entry a cycle in the RTL's) does not hide
    # the fetch's traffic at the DRAM's peak, which is what this test pins
    cfg = cfg.replace(dram__dma="burst")
    _, plain_df, plain = simulate_workload(wl, cfg)
    _, df, memo = simulate_workload(memoize(wl, store, 1.0, 2), cfg)
    attn = plain_df[plain_df.name.str.contains("attention.self.matmul.fwd|softmax")]
    assert len(attn) == 2  # QKᵀ and the softmax group (scale fused into it)
    search = df[df.name.str.contains(".memo.") & ~df.name.str.endswith(".fetch")].cycles.sum()
    fetch = df[df.name.str.endswith(".memo.fetch")]
    saving = plain["cycles"] - memo["cycles"]
    assert abs(saving - (attn.cycles.sum() - search - fetch.cycles.sum())) \
        <= 1e-4 * plain["cycles"]
    assert fetch.tier_bytes.iloc[0] == 2 * 12 * 128 * 128 * 2
    # from free memory the fetch is only moving the fp32 maps from VEC to DRAM (and its row
    # indices in): within 10% of that traffic at the DRAM's peak
    moved = 2 * 12 * 128 * (128 + 2) * 4 / cfg.dram_bytes_per_cycle
    assert moved <= fetch.cycles.iloc[0] <= 1.1 * moved + 2000


def test_a_store_that_does_not_fit_names_the_tier(vcu):
    wl = _bert(batch=1, seq=512, layers=12)
    sites = attention_sites(wl, 1)
    store = MemoStore(tier="hbm2e", entries=1024)
    assert sum(sum(store_bytes(s, store)) for s in sites) == 12 * 1024 * (
        128 * 2 + 12 * 512 * 512 * 2)
    with pytest.raises(MemoStoreError, match=r"72\.0 GiB .* tier 'hbm2e' holds 16 GiB"):
        memo_config(vcu, store, sites)
    memo_config(vcu, dataclasses.replace(store, tier="cxl"), sites)  # 128 GiB: fits
    with pytest.raises(MemoStoreError, match="memo tier must be one of"):
        MemoStore(tier="tape")


def test_hits_per_layer_and_traces(tmp_path):
    sites = attention_sites(_bert(batch=4, seq=32, layers=3), 4)
    assert hits_per_layer(sites, 0.5) == {s.layer: 2 for s in sites}
    assert hits_per_layer(sites, {2: 1.0, sites[0].layer: 0.25}) == {
        sites[2].layer: 4, sites[0].layer: 1}
    with pytest.raises(ValueError, match="outside the model's 3"):
        hits_per_layer(sites, {3: 0.5})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        hits_per_layer(sites, 1.5)
    trace = tmp_path / "t.csv"
    trace.write_text("layer,sequence,hit\n0,0,1\n0,1,1\n0,2,0\n0,3,1\n2,0,0\n2,1,1\n")
    assert read_trace(trace) == {0: 0.75, 2: 0.5}
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,hit\n0,yes\n")
    with pytest.raises(ValueError, match="hit must be 0 or 1"):
        read_trace(bad)
    res = simulate_memo("bert_base", str(trace), MemoStore(tier="ddr4"), batch=4, seq_len=32,
                        n_layers=3)
    assert res.layers.hits.tolist() == [3, 0, 2]
    assert res.layers.memoized.tolist() == [True, False, True]
    # a layer without hits runs the same commands; only the DMA queue its memoized neighbour
    # leaves busy (the fetch's stores, an entry a cycle) moves its start and end a little
    assert abs(res.layers.memo_cycles.iloc[1] - res.layers.plain_cycles.iloc[1]) \
        <= 0.02 * res.layers.plain_cycles.iloc[1]


def test_from_index_reads_the_real_faiss_parameters():
    from algorithms.memo_db import MemoIndex

    rng = np.random.default_rng(0)
    index = MemoIndex(16, nlist=32, nprobe=4, exact_below=500)
    index.add(rng.standard_normal((2000, 16)).astype(np.float32))
    assert index.approximate
    st = MemoStore.from_index(index, tier="pmem")
    assert (st.entries, st.d_embed, st.lists, st.nprobe) == (2000, 16, 32, 4)
    assert st.keys_scanned == math.ceil(4 * 2000 / 32)  # Faiss's lists hold every key
    small = MemoIndex(16)
    small.add(rng.standard_normal((100, 16)).astype(np.float32))
    assert MemoStore.from_index(small).keys_scanned == 100  # exact: every key


@pytest.fixture(scope="module")
def grid(vcu):
    """Simulated cycles of 1-layer BERT, batch 4, on a grid of tiers, sequences and hits."""
    out = {}
    for seq in (128, 256):
        wl = _bert(batch=4, seq=seq)
        site = attention_sites(wl, 4)[0]
        for tier in ("hbm2e", "cxl", "pmem"):
            store = MemoStore(tier=tier)
            cfg = memo_config(vcu, store, [site])
            plain = simulate_workload(wl, cfg)[2]["cycles"]
            sims = {h: simulate_workload(memoize(wl, store, h / 4, 4), cfg)[2]["cycles"]
                    for h in range(5)}
            out[(seq, tier)] = (plain, sims, memo_model(wl, site, store, cfg))
    return out


def test_the_selective_model_picks_the_faster_choice_on_a_grid(grid):
    decided = ties = 0
    for (seq, tier), (plain, sims, costs) in grid.items():
        for h, cycles in sims.items():
            saving = plain - cycles
            if abs(saving) < 0.005 * plain:  # within 0.5% of the pass: either choice is fine
                ties += 1
                continue
            decided += 1
            assert costs.pays(h / 4) == (saving > 0), (seq, tier, h, saving, costs)
    assert decided >= 20 and ties <= 10
    # the model's terms against the simulator's: the search cost within 10%
    for (_seq, _tier), (plain, sims, costs) in grid.items():
        assert costs.search == pytest.approx(sims[0] - plain, rel=0.1)


def test_cycles_are_linear_in_the_hits(grid):
    # what the report's expectation over hit rates rests on
    for (_plain, sims, _) in grid.values():
        for h in (1, 2, 3):
            line = sims[0] + h / 4 * (sims[4] - sims[0])
            assert sims[h] == pytest.approx(line, rel=2e-3)


def test_a_hit_on_hwsim_equals_memoized_self_attention(vcu, tmp_path):
    from algorithms.attmemo import AttentionEmbedder, MemoDB, MemoIndex, MemoizedSelfAttention
    from algorithms.transformer import CausalSelfAttention, causal_attention

    torch.manual_seed(0)
    S, d, H = 8, 16, 2
    attn = CausalSelfAttention(d, H)
    emb = AttentionEmbedder(S, d, d_embed=16, hidden=32)
    xs = torch.randn(6, S, d)
    with torch.no_grad():
        _, maps = causal_attention(*attn.project(xs))
        keys = emb(xs)
    db = MemoDB(tmp_path / "m.db", 16, (H, S, S))
    index = MemoIndex(16)
    for k, m in zip(keys, maps, strict=True):
        db.append(k, m)
    index.add(keys)
    memo = MemoizedSelfAttention(attn, emb, db, index, threshold=0.999)
    q = xs[[3, 1, 4]]
    with torch.no_grad():
        ref = memo(q).numpy()
    assert memo.hits == 3  # the same inputs: their own maps
    _, ids = index.search(emb(q))
    stored = np.stack([db.get_map(i).numpy() for i in range(len(db))])
    p = {n: t.detach().numpy() for n, t in attn.named_parameters()}
    out, fetched = hit_attention(p["qkv.weight"], p["qkv.bias"], p["out.weight"], p["out.bias"],
                                 q.numpy(), stored, ids.ravel(), H, vcu)
    # the lookup engine returns the stored maps exactly (as the fp16 table holds them)
    assert np.array_equal(fetched, stored[ids.ravel()].astype(np.float16).astype(np.float32))
    # three fp16-operand GEMMs (V, P·V, output projection) with fp32 sums, and the map's own
    # fp16 rounding: within 8 units of 2^-11 of the sum of the terms' magnitudes
    x = q.numpy().astype(np.float64)
    wv, bv = np.abs(p["qkv.weight"][2 * d:]), np.abs(p["qkv.bias"][2 * d:])
    mag_v = np.abs(x) @ wv.T + bv
    mag_o = np.einsum("bhij,bjhd->bihd", np.abs(stored[ids.ravel()]),
                      mag_v.reshape(3, S, H, d // H)).reshape(3, S, d)
    mag = mag_o @ np.abs(p["out.weight"]).T + np.abs(p["out.bias"])
    assert (np.abs(out - ref) <= 8 * 2**-11 * mag).all()
    assert np.abs(out - ref).max() > 0  # fp16 operands: not the float32 result bit for bit
