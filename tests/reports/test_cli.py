"""The satmem CLI: real output on good input, one line and exit 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_gemm_json_has_cycles_and_utilisation(capsys):
    code, out, err = run_cli(capsys, "simulate-gemm", "64", "64", "64", "--config", "tiny",
                             "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    from dataflow import simulate_gemm

    ref = simulate_gemm(64, 64, 64, "tiny", dataflow="ws")
    assert data["cycles"] == ref.cycles
    assert data["utilisation"] == pytest.approx(64**3 / (ref.cycles * 16))
    assert data["macs"] == 64**3


def test_simulate_gemm_mapping_search_is_the_compilers_mapping(capsys):
    from dataflow import simulate_gemm

    argv = ("simulate-gemm", "1024", "1024", "1024", "--config", "vcu1525", "--dataflow", "os",
            "--sparsity", "2:4", "--json")
    code, out, _ = run_cli(capsys, *argv, "--mapping", "search")
    assert code == 0
    ref = simulate_gemm(1024, 1024, 1024, "vcu1525", dataflow="os", sparsity="2:4",
                        mapping="search")
    assert json.loads(out)["cycles"] == ref.cycles
    _, out_default, _ = run_cli(capsys, *argv)
    assert json.loads(out_default)["cycles"] > ref.cycles  # the default tiling reloads B


def test_simulate_gemm_functional_equals_timing(capsys):
    _, out_f, _ = run_cli(capsys, "simulate-gemm", "9", "7", "33", "--mode", "functional",
                          "--dataflow", "os", "--json")
    _, out_t, _ = run_cli(capsys, "simulate-gemm", "9", "7", "33", "--dataflow", "os", "--json")
    assert json.loads(out_f)["cycles"] == json.loads(out_t)["cycles"]


def test_info_prints_yaml_and_derived(capsys):
    code, out, _ = run_cli(capsys, "info", "--config", "vcu1525")
    assert code == 0
    assert "rows: 32" in out and "dram_latency_cycles: 18" in out
    code, out, _ = run_cli(capsys, "info", "--json")
    assert json.loads(out)["derived"]["pes"] == 16


def test_info_reads_a_yaml_file(capsys, tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("base: tiny\nname: mine\narray: {rows: 8, cols: 2}\n")
    code, out, _ = run_cli(capsys, "info", "--config", str(f), "--json")
    assert code == 0 and json.loads(out)["config"]["array"]["rows"] == 8


@pytest.mark.parametrize(("argv", "needle"), [
    (["simulate-gemm", "64", "64", "64", "--config", "huge"], "'config' = 'huge'"),
    (["simulate-gemm", "0", "64", "64"], "expected a positive integer, got '0'"),
    (["simulate-gemm", "x", "64", "64"], "expected a positive integer, got 'x'"),
    (["simulate-gemm", "4", "4"], "the following arguments are required: k"),
    (["simulate-gemm", "4", "4", "4", "--sparsity", "3:5"], "'sparsity' = '3:5'"),
    (["info", "--config", "/nonexistent/cfg.yaml"], "readable YAML file"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["rtl", "verilog", "--config", "vcu1525", "--out", "x"],
     "the RTL gather needs lookup.gather_lanes (256) to divide vector.lanes (64"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satmem: error: ")
    assert needle in lines[0]


def test_rtl_package_names_no_lookup_when_the_lookup_engine_cannot_be_built(capsys, tmp_path):
    code, out, err = run_cli(capsys, "rtl", "package", "--config", "vcu1525", "--out",
                             str(tmp_path))
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert lines[0].startswith("elaborating the vcu1525 kernel")  # the progress line first
    assert len(lines) == 2 and lines[1] == (
        "satmem: error: the RTL gather needs lookup.gather_lanes (256) to divide vector.lanes "
        "(64, at least 2); --no-lookup builds the machine without the lookup engine")


def test_bad_yaml_file_names_the_field(capsys, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("array: {dtype: int4}\n")
    code, _, err = run_cli(capsys, "info", "--config", str(f))
    assert code == 2 and "'array.dtype' = 'int4'" in err


def test_rtl_verilog_writes_design_and_manifest(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "rtl", "verilog", "--config", "tiny", "--out", str(tmp_path))
    assert code == 0
    text = (tmp_path / "satmem_top.v").read_text()
    assert "module satmem_top" in text
    assert "mem_rd_req__payload" in text and "mem_wr_req__payload" in text
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config_name"] == "tiny" and manifest["isa_word_bits"] == 128
    assert manifest["buffers"]["acc"] == [128, 128]
    # the 4x4 array's cells share one PE module, defined once
    assert text.count("module satmem_top_pe(") == 1
    assert text.count("satmem_top_pe \\cell") == 16 and manifest["pe_module"] == "satmem_top_pe"


def test_rtl_verilog_axi4_port(capsys, tmp_path):
    # the SAT accelerator alone (--no-lookup; the AXI4 top with the lookup engine's second
    # master is written and simulated by tests/rtl/test_lookup_axi_cocotb.py)
    code, out, _ = run_cli(capsys, "rtl", "verilog", "--config", "tiny", "--out", str(tmp_path),
                           "--port", "axi4", "--no-lookup")
    assert code == 0 and "axi4 memory port, no lookup engine" in out
    text = (tmp_path / "satmem_top.v").read_text()
    ports = text.split("module satmem_top(")[1].split(";")[0]
    for sig in ("m_axi_araddr", "m_axi_rdata", "m_axi_awaddr", "m_axi_wstrb", "m_axi_bresp"):
        assert sig in ports
    assert "mem_rd_req__payload" not in ports and "m_axi_lk_" not in ports
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["port"] == "axi4" and manifest["axi4"]["data_bits"] == 128
    assert "lookup" not in manifest["units"]
    assert not [c for c in manifest["supported"] if c.startswith(("HASH", "GATHER"))]


def test_simulate_topology_with_sparse_layers(capsys):
    from pathlib import Path

    topo = Path(__file__).resolve().parents[1] / "dataflow" / "data" / "gemm_sparse.csv"
    code, out, err = run_cli(capsys, "simulate", "--topology", str(topo), "--config", "tiny",
                             "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and all(r["cycles"] > 0 for r in rows)
    sparse = [r for r in rows if r["sparsity"] != "dense"]
    assert sparse and all(r["cycles"] > 0 for r in sparse)


MF_TOKEN_BYTES = 6 * 336 * 1024  # memoryformer_tiny: rows gathered per decoded token, fp16


def test_simulate_memoryformer_train_prefill_decode(capsys):
    runs = {}
    for phase in ("train", "prefill", "decode"):
        code, out, err = run_cli(capsys, "simulate", "--model", "memoryformer_tiny", "--phase",
                                 phase, "--seq-len", "64", "--json")
        assert code == 0 and err == "", err
        runs[phase] = json.loads(out)
    tr, pf, dc = (runs[p]["totals"] for p in ("train", "prefill", "decode"))
    assert runs["train"]["method"] == "dense" and runs["decode"]["context"] == 64
    assert tr["cycles"] > pf["cycles"] > dc["cycles"] > 0
    assert {r["pass"] for r in runs["train"]["per_pass"]} >= {"fwd", "bgrad", "wgrad", "update"}
    assert [r["pass"] for r in runs["decode"]["per_pass"]] == ["fwd"]
    reads = sum(v for k, v in dc.items() if k.startswith("tier_") and k.endswith("_read"))
    assert reads == MF_TOKEN_BYTES
    assert tr["tier_ddr_write"] > 0 and pf["tier_ddr_write"] == dc["tier_ddr_write"] == 0
    for t in (tr, pf, dc):
        assert t["path_lookup"] > 0 and t["energy_tier_ddr_pj"] > 0
        assert sum(t[f"path_{k}"] for k in ("gemm_dense", "gemm_sparse", "vector", "update",
                                             "dma_in", "dma_out", "sore", "lookup",
                                             "control")) == t["cycles"]


def test_simulate_memoryformer_train_with_adam_table_optimizer(capsys):
    """--table-optimizer adam reaches the lowering: the table updates move one more fp32 table
    (the first moment) than SGD with momentum's, so more tier bytes, the same GEMM work."""
    totals = {}
    for opt in ("sgd_momentum", "adam"):
        code, out, err = run_cli(capsys, "simulate", "--model", "memoryformer_tiny", "--seq-len",
                                 "64", "--table-optimizer", opt, "--json")
        assert code == 0 and err == "", err
        totals[opt] = json.loads(out)["totals"]
    sgd, adam = totals["sgd_momentum"], totals["adam"]
    tier = [k for k in sgd if k.startswith("tier_") and k.endswith(("_read", "_write"))]
    assert sum(adam[k] for k in tier) > sum(sgd[k] for k in tier)
    assert adam["macs"] == sgd["macs"]


def test_simulate_memoryformer_decode_text_names_tiers_and_layers(capsys):
    code, out, err = run_cli(capsys, "simulate", "--model", "memoryformer_tiny", "--phase",
                             "decode", "--seq-len", "64", "--context", "32")
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert "decode of one token after 32 cached on vcu1525" in lines[0]
    assert lines[1].startswith("  energy") and "tier ddr" in lines[1] and "tier uram" in lines[1]
    assert lines[2].startswith("  bytes") and "tier uram read 65,536" in lines[2]
    assert "lookup" in lines[3] and "gemm_dense" in lines[3]
    assert any(line.split()[:1] == ["blocks.5.ffn.down"] for line in lines)


@pytest.mark.parametrize(("argv", "needle"), [
    (["--model", "memoryformer_tiny", "--phase", "generate"],
     "argument --phase: invalid choice: 'generate'"),
    (["--model", "memoryformer_huge"], "unknown model 'memoryformer_huge'"),
    (["--model", "resnet18", "--phase", "decode"], "--phase decode is for the language models"),
    (["--model", "vgg16", "--seq-len", "64"], "--seq-len is for the language models"),
    (["--model", "memoryformer_tiny", "--context", "8"], "--context is the KV cache of --phase "
                                                         "decode"),
    (["--model", "memoryformer_tiny", "--phase", "decode", "--context", "-1"],
     "expected a non-negative integer, got '-1'"),
    (["--model", "memoryformer_tiny", "--table-optimizer", "adagrad"],
     "argument --table-optimizer: invalid choice: 'adagrad'"),
])
def test_simulate_bad_phase_or_model_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run_cli(capsys, "simulate", *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satmem: error: ")
    assert needle in lines[0]


def test_report_memoryformer_unknown_tier_is_one_line(capsys, tmp_path):
    code, out, err = run_cli(capsys, "report", "memoryformer", "--out", str(tmp_path),
                             "--tiers", "hbm2e,flash")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "'tier' = 'flash'" in err
    assert not list(tmp_path.iterdir())  # checked before any simulation or file


def test_simulate_topology_takes_the_scalesim_cfg_dataflow_unless_overridden(capsys):
    """An unchanged SCALE-Sim .cfg with ``Dataflow : os`` runs in OS (its dataflow is the only
    one the config it makes has); ``--dataflow`` overrides it; without a .cfg the default is
    WS."""
    data = Path(__file__).parents[1] / "dataflow" / "data"
    topo = str(data / "resnet_head.csv")
    code, out, err = run_cli(capsys, "simulate", "--topology", topo, "--scalesim-cfg",
                             str(data / "scale.cfg"), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and {r["dataflow"] for r in rows} == {"os"}
    code, out, err = run_cli(capsys, "simulate", "--topology", topo, "--json")
    assert code == 0, err
    assert {r["dataflow"] for r in json.loads(out)} == {"ws"}
    # an explicit --dataflow the .cfg's machine lacks is one clear error
    code, out, err = run_cli(capsys, "simulate", "--topology", topo, "--scalesim-cfg",
                             str(data / "scale.cfg"), "--dataflow", "ws")
    assert code == 2 and "ws" in err and len(err.strip().splitlines()) == 1
