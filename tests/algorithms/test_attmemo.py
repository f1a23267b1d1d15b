"""AttMEMO: memo index, embedder and memoized attention (the memo DB: test_memo_db.py)."""

import re

import numpy as np
import pytest
import torch

from algorithms.attmemo import (
    AttentionEmbedder,
    MemoDB,
    MemoIndex,
    MemoizedSelfAttention,
    collect_attention,
    total_variation,
    train_embedder,
)
from algorithms.transformer import CausalSelfAttention, TransformerConfig, TransformerLM


def test_memo_index_exact_then_ivf_finds_stored_keys():
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((3000, 16)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    index = MemoIndex(16, nlist=32, nprobe=32, exact_below=2048)
    assert index.search(keys[:2])[1].tolist() == [-1, -1]
    index.add(keys[:100])
    assert not index.approximate
    sims, ids = index.search(keys[:100])
    assert ids.tolist() == list(range(100)) and np.allclose(sims, 1, atol=1e-5)
    index.add(keys[100:2500])
    index.add(keys[2500:])
    assert index.approximate and len(index) == 3000
    _, ids = index.search(keys[::50])
    assert ids.tolist() == list(range(0, 3000, 50))  # nprobe = nlist: exact within IVF


def test_total_variation_explicit():
    p = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    q = torch.tensor([[[0.0, 1.0], [0.5, 0.5]]])
    assert float(total_variation(p, q)) == pytest.approx(0.5)


def _trained_setup(tmp_path, threshold):
    torch.manual_seed(0)
    config = TransformerConfig(d_model=16, n_layers=1, n_heads=2, max_seq_len=8)
    model = TransformerLM(config).eval()
    idx = torch.randint(0, 256, (6, 8))
    x, maps = collect_attention(model, idx, 0)
    embedder = AttentionEmbedder(8, 16, d_embed=8, hidden=16)
    db = MemoDB(tmp_path / "m.db", 8, (2, 8, 8))
    memo = MemoizedSelfAttention(
        model.blocks[0].attn, embedder, db, MemoIndex(8), threshold, populate=True
    )
    return model, x, maps, memo


def test_memoized_attention_misses_then_hits_with_exact_output(tmp_path):
    model, x, maps, memo = _trained_setup(tmp_path, threshold=0.999)
    attn = model.blocks[0].attn
    with torch.no_grad():
        reference = attn(x)
    torch.testing.assert_close(memo(x), reference)
    assert (memo.hits, memo.misses, memo.macs_saved, len(memo.db)) == (0, 6, 0, 6)
    assert torch.equal(memo.db.get_map(3), maps[3])
    memo.reset_stats()
    torch.testing.assert_close(memo(x), reference)  # same inputs: every map reused
    assert (memo.hits, memo.misses) == (6, 0) and memo.hit_rate == 1.0
    assert memo.macs_saved == 6 * 8 * 8 * 16


def test_memoized_attention_reuses_the_stored_map_on_a_forced_hit(tmp_path):
    model, x, maps, memo = _trained_setup(tmp_path, threshold=-2.0)
    memo.populate = False
    memo.db.append(memo.embedder(x[:1]).detach()[0], maps[0])
    memo.index.add(memo.embedder(x[:1]).detach())
    attn = model.blocks[0].attn
    q, k, v = attn.project(x)
    expected = attn.finish(maps[0].expand(6, -1, -1, -1) @ v)
    torch.testing.assert_close(memo(x), expected)
    assert memo.hits == 6


def test_train_embedder_lowers_loss():
    torch.manual_seed(1)
    inputs = torch.randn(32, 4, 8)
    maps = torch.softmax(torch.randn(32, 2, 4, 4), -1)
    emb = AttentionEmbedder(4, 8, d_embed=8, hidden=32)
    losses = train_embedder(emb, inputs, maps, steps=150, batch=32, lr=3e-3)
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:5])


def test_memoized_attention_rejects_mismatched_index(tmp_path):
    db = MemoDB(tmp_path / "m.db", 4, (1, 2, 2))
    db.append(np.ones(4), np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match=re.escape("db holds 1 maps but index 0 keys")):
        MemoizedSelfAttention(CausalSelfAttention(4, 1), AttentionEmbedder(2, 4), db, MemoIndex(4))
