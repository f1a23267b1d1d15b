"""dataflow.workload on MemoryFormer: lookup ops, table sizes and gathered bytes.

The expected numbers are written from MemoryFormer's structure and REFERENCES.md, not
from the code: a memory layer with ``K = d_in / tau`` chunks and ``h``-wide rows has
``K·2^tau·h`` table entries and gathers ``K`` rows of ``h`` per token; a block has Q, K, V
(``d -> d``, tau 8) and the memory block (``d -> (tau+2)·K`` with tau 8, then
``(tau+2)·K -> d`` with tau 10).
"""

import resource
import time
from collections import Counter

import pytest
import torch

from algorithms.memoryformer import MemoryFormerConfig, MemoryFormerLM, MemoryLayer, block_flops
from dataflow.workload import LOOKUP_OPS, Op, expected_rows, extract
from dataflow.zoo import get_model

TINY = {"d": 512, "layers": 6, "heads": 8}


def tables_per_block(d: int, tau: int = 8) -> dict[str, tuple[int, int, int]]:
    """(chunks, rows per chunk, row width) of each memory layer of one block."""
    k = d // tau
    hidden = (tau + 2) * k
    return {"q": (k, 2**tau, d), "k": (k, 2**tau, d), "v": (k, 2**tau, d),
            "ffn.up": (k, 2**tau, hidden), "ffn.down": (hidden // (tau + 2), 2**(tau + 2), d)}


def entries(shape) -> int:
    chunks, rows, width = shape
    return chunks * rows * width


@pytest.fixture(scope="module")
def tiny_train():
    model, x = get_model("memoryformer_tiny", batch=2, device="meta", seq_len=256)
    return extract(model, x)


def test_tiny_tables_are_69_2_m_entries_per_block_and_0_83_gb_of_fp16(tiny_train):
    # REFERENCES.md's "per layer" is per transformer layer (block): Q, K, V and the memory
    # block's two memory layers, 5 tables
    block = tables_per_block(TINY["d"])
    assert entries(block["q"]) == 64 * 256 * 512 == 8_388_608
    assert entries(block["ffn.up"]) == 64 * 256 * 640 == 10_485_760
    assert entries(block["ffn.down"]) == 64 * 1024 * 512 == 33_554_432
    per_block = sum(entries(s) for s in block.values())
    assert per_block == 69_206_016  # "about 69.2 M table entries per layer"
    assert TINY["layers"] * per_block * 2 == 830_472_192  # "0.83 GB of fp16 tables"

    by_block = tiny_train.lookup_tables(level=2)
    assert list(by_block.index) == [f"blocks.{i}" for i in range(6)]
    assert (by_block["tables"] == 5).all() and (by_block["entries"] == per_block).all()
    totals = tiny_train.lookup_totals()
    assert totals["tables"] == 30 and totals["bytes"] == 830_472_192
    per_table = tiny_train.lookup_tables()
    for name, (chunks, rows, width) in block.items():
        row = per_table.loc[f"blocks.3.{name}.tables"]
        assert (row.chunks, row.table_rows, row.width) == (chunks, chunks * rows, width)


def test_tiny_gathers_336_kib_per_token_per_block(tiny_train):
    block = tables_per_block(TINY["d"])
    per_token = sum(chunks * width * 2 for chunks, _, width in block.values())
    assert per_token == (3 * 64 * 512 + 64 * 640 + 64 * 512) * 2 == 336 * 1024
    by_block = tiny_train.lookup_tables(level=2)
    assert (by_block["gathered_bytes_per_token"] == per_token).all()
    tokens = 2 * 256
    assert tiny_train.lookup_totals()["gathered_bytes"] == 6 * tokens * per_token
    rows = {op.width for op in tiny_train.lookups() if op.op == "gather"}
    assert {w * 2 for w in rows} == {1024, 1280}  # a row is 1-1.25 KiB in tiny


def test_attention_gemms_are_2_s2_d_per_block_and_only_the_classifier_is_dense(tiny_train):
    b, s, d, vocab = 2, 256, TINY["d"], 50_304
    fwd = [op for op in tiny_train.gemms() if op.pass_ == "fwd"]
    attention = [op for op in fwd if op.layer.startswith("blocks.")]
    assert len(attention) == 2 * TINY["layers"]  # QKᵀ and PV, no Q/K/V/out/FFN GEMMs
    for i in range(TINY["layers"]):
        # a multiply-add counts once: QKᵀ is s·s·d_h per head, PV the same
        macs = sum(op.dense_macs for op in attention if op.layer == f"blocks.{i}")
        assert macs == b * 2 * s * s * d
    head = [op for op in fwd if op.layer == "head"]
    assert [(op.op, op.m, op.n, op.k) for op in head] == [("linear", b * s, vocab, d)]
    # backward of attention: dP, dV, dQ, dK, each s²d per sequence
    bgrad = sum(op.dense_macs for op in tiny_train.gemms()
                if op.pass_ == "bgrad" and op.layer == "blocks.0")
    assert bgrad == 2 * b * 2 * s * s * d
    config = MemoryFormerConfig.preset("tiny", vocab_size=vocab)
    assert block_flops(config, s)["memoryformer"]["attention"] * b == b * 2 * s * s * d


def test_gather_accumulates_match_the_cost_model_per_block(tiny_train):
    s, d, k, tau = 2 * 256, TINY["d"], TINY["d"] // 8, 8
    gathers = [op for op in tiny_train.lookups() if op.op == "gather" and
               op.layer.startswith("blocks.0.")]
    # one weighted row accumulate per chunk per token: s·K·h per memory layer
    exact = 3 * s * k * d + s * k * (tau + 2) * k + s * k * d
    assert sum(op.rows * op.width for op in gathers) == exact
    assert exact == pytest.approx(6 * k * s * d, rel=0.13)  # the paper's 6Ksd rounds up


def test_one_hash_serves_q_k_v_and_ops_per_pass(tiny_train):
    counts = Counter((op.pass_, op.op) for op in tiny_train.lookups())
    n = TINY["layers"]
    assert counts == {("fwd", "hash"): 3 * n, ("fwd", "gather"): 5 * n,
                      ("bgrad", "lookup_grad"): 5 * n, ("bgrad", "hash_grad"): 3 * n,
                      ("wgrad", "scatter"): 5 * n, ("update", "table_update"): 5 * n}
    ops = {op.name: op for op in tiny_train}
    shared = "blocks.2.q.fwd.hash"
    assert [ops[f"blocks.2.{x}.fwd"].hash_op for x in "qkv"] == [shared] * 3
    assert ops["blocks.2.ffn.up.fwd"].hash_op == "blocks.2.ffn.up.fwd.hash"
    assert ops["blocks.2.ffn.down.fwd"].hash_op == "blocks.2.ffn.down.fwd.hash"
    assert ops["blocks.2.q.wgrad"].hash_op == ops["blocks.2.v.bgrad"].hash_op == shared
    h = ops[shared]
    assert (h.kind, h.tokens, h.chunks, h.tau, h.table_rows, h.elements) == (
        "lookup", 512, 64, 8, 64 * 256, 512 * 512)
    down = ops["blocks.2.ffn.down.fwd.hash"]
    assert (down.chunks, down.tau, down.table_rows) == (64, 10, 64 * 1024)
    # the tables get a sparse table_update, not a dense update of 69 M entries
    assert "blocks.2.q.tables.update" in ops and ops["blocks.2.q.tables.update"].kind == "lookup"
    assert ops["blocks.2.q.bias.update"].op == "sgd_momentum"
    assert {op.op for op in tiny_train if op.name.endswith(".tables.update")} == {
        "table_update"}


def test_backward_reads_and_scatters_k_rows_per_token_in_reverse_order(tiny_train):
    ops = {op.name: op for op in tiny_train}
    t, k, h = 512, 64, 512
    for name in ("blocks.1.k.fwd", "blocks.1.k.bgrad", "blocks.1.k.wgrad"):
        assert (ops[name].rows, ops[name].width, ops[name].elements) == (t * k, h, t * k * h)
    assert ops["blocks.1.k.bgrad"].op == "lookup_grad" and ops["blocks.1.k.wgrad"].op == "scatter"
    assert ops["blocks.1.k.wgrad.bias"].elements == t * h
    names = [op.name for op in tiny_train]
    # dX of the shared hash comes after the three lookups' gradients
    assert names.index("blocks.1.q.bgrad.hash") > max(
        names.index(f"blocks.1.{x}.bgrad") for x in "qkv")
    assert names.index("blocks.1.ffn.down.bgrad") < names.index("blocks.1.ffn.up.bgrad")


def test_table_update_rows_are_the_expected_distinct_rows_of_uniform_hashes(tiny_train):
    ops = {op.name: op for op in tiny_train}
    n = 512  # tokens scattered into each table
    for name, tau in (("blocks.0.v.tables", 8), ("blocks.0.ffn.down.tables", 10)):
        r = 2**tau
        expect = round(64 * r * (1 - (1 - 1 / r) ** n))
        op = ops[f"{name}.update"]
        assert (op.op, op.pass_, op.tokens, op.rows) == ("table_update", "update", n, expect)
        assert op.rows <= min(n * 64, 64 * r) and op.elements == op.rows * op.width
    assert expected_rows(1, 64, 8) == 64 and expected_rows(0, 64, 8) == 0
    assert expected_rows(10**6, 64, 8) == 64 * 256


def test_expected_rows_matches_distinct_rows_of_random_hashes_on_cpu():
    torch.manual_seed(0)
    layer = MemoryLayer(128, 16, tau=8)  # 16 chunk tables of 256 rows
    x = torch.randn(300, 128)  # sign bits of a Gaussian are uniform
    touched = int((layer.bucket_counts(x) > 0).sum())
    assert touched == pytest.approx(expected_rows(300, 16, 8), rel=0.03)


def test_meta_extraction_never_materialises_the_tables():
    model, x = get_model("memoryformer_tiny", device="meta")  # seq 2048
    assert all(p.is_meta for p in model.parameters())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    w = extract(model, x)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 400 * 1024  # tables: 1.7 GB
    assert w.lookup_totals()["entries"] == 415_236_096
    layer = model.blocks[0].q
    assert "hash" not in vars(layer) and "lookup" not in vars(layer)  # wrappers removed


def test_inference_lists_hash_and_gather_only():
    model, x = get_model("memoryformer_small", device="meta", seq_len=128)
    w = extract(model, x, training=False)
    assert {op.pass_ for op in w} == {"fwd"} and not w.training
    assert Counter(op.op for op in w.lookups()) == {"hash": 36, "gather": 60}
    d, k = 768, 96
    block = sum(entries(s) for s in tables_per_block(d).values())
    assert block == 3 * k * 256 * d + k * 256 * 10 * k + k * 1024 * d
    assert w.lookup_totals()["entries"] == 12 * block


def test_decode_step_attends_to_the_context_and_looks_up_one_token():
    model, x = get_model("memoryformer_base", batch=4, device="meta", seq_len=1, context=1023)
    w = extract(model, x, training=False)
    d, heads = 1024, 16
    qk, pv = [op for op in w.gemms() if op.layer == "blocks.0"]
    assert (qk.m, qk.n, qk.k, qk.repeat) == (1, 1024, d // heads, 4 * heads)
    assert (pv.m, pv.n, pv.k, pv.repeat) == (1, d // heads, 1024, 4 * heads)
    gathers = [op for op in w.lookups() if op.op == "gather"]
    assert len(gathers) == 24 * 5 and all(op.tokens == 4 for op in gathers)
    per_token = sum(c * width * 2 for c, _, width in tables_per_block(d).values())
    assert w.lookup_totals()["gathered_bytes"] == 24 * 4 * per_token


def test_cpu_and_meta_extractions_agree_on_a_small_model():
    config = MemoryFormerConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4,
                                max_seq_len=16, tau=4, weight="official")
    torch.manual_seed(0)
    cpu = extract(MemoryFormerLM(config), torch.randint(0, 64, (2, 16)))
    with torch.device("meta"):
        meta = extract(MemoryFormerLM(config), torch.randint(0, 64, (2, 16)))
    assert cpu.ops == meta.ops
    assert {op.weight for op in cpu.lookups()} == {"official"}
    # K = 8 chunks of tau 4; the memory block's hidden layer is 6·8 = 48 wide, tau 6
    down = next(op for op in cpu.lookups() if op.layer == "blocks.1.ffn.down" and op.width)
    assert (down.chunks, down.tau, down.table_rows, down.width) == (8, 6, 8 * 64, 32)


def test_lookup_op_validation_names_the_field():
    ok = dict(tokens=4, chunks=2, tau=3, table_rows=16, weight="paper")
    Op("h", "l", "lookup", "fwd", "hash", **ok)
    with pytest.raises(ValueError, match="lookup op must be one of"):
        Op("x", "l", "lookup", "fwd", "linear", **ok)
    with pytest.raises(ValueError, match=r"table_rows must be chunks·2\^tau = 16, not 8"):
        Op("x", "l", "lookup", "fwd", "hash", **{**ok, "table_rows": 8})
    with pytest.raises(ValueError, match="gather needs a positive width and a table"):
        Op("x", "l", "lookup", "fwd", "gather", **ok)
    with pytest.raises(ValueError, match="weight must be 'paper' or 'official'"):
        Op("x", "l", "lookup", "fwd", "hash", **{**ok, "weight": ""})
    assert set(LOOKUP_OPS) == {"hash", "gather", "lookup_grad", "hash_grad", "scatter",
                               "table_update", "key_scan", "map_fetch", "memo_insert"}
    # AttMEMO's store ops (dataflow.memo) index a store of any number of rows
    Op("m", "l", "lookup", "fwd", "map_fetch", tokens=4, chunks=1, tau=1, table_rows=1000,
       width=8, table="s", weight="paper")
    with pytest.raises(ValueError, match="a memo store needs table_rows >= 1"):
        Op("m", "l", "lookup", "fwd", "map_fetch", tokens=4, chunks=1, tau=1, table_rows=0,
           width=8, table="s", weight="paper")
