"""``satmem scalesim``: SCALE-Sim's flags and report files on satmem's machine, SCALE-Sim's cycles
beside satmem's with the terms between them, and one line on bad input.

The golden files under ``tests/dataflow/data/scalesim_v3/`` are what SCALE-Sim v3.0.0 itself
wrote for the same ``.cfg`` and topology files (their README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataflow import simulate_gemm
from dataflow.scalesim import read_scalesim_cfg, read_topology
from reports.cli import main
from reports.topology import TERMS

SS = Path(__file__).resolve().parents[1] / "dataflow" / "data" / "scalesim_v3"

# SCALE-Sim's formula by hand for 8x8 (tests/dataflow/test_scalesim.py works each one out)
HAND_OS_CONV = [11 * 2 * (147 + 14), 8 * 2 * (72 + 14), 5 * 2 * (20 + 14), 1 * 2 * (40 + 14)]
HAND_WS_CONV = [19 * 2 * (22 + 81), 9 * 2 * (22 + 64), 3 * 2 * (22 + 36), 5 * 2 * (22 + 1)]
HAND_WS_SPARSE = [4 * 3 * (22 + 30), 2 * 2 * (22 + 12), 4 * 1 * (22 + 20)]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rows_of(path: Path) -> tuple[str, list[list[str]]]:
    """Header line and the cells of each row of a SCALE-Sim style report."""
    lines = path.read_text().splitlines(keepends=True)
    assert all(line.endswith(",\n") for line in lines[1:])  # SCALE-Sim's row layout
    return lines[0], [[c.strip() for c in line.rstrip(",\n").split(",")] for line in lines[1:]]


def test_os_conv_reports_have_scalesim_headers_and_satmem_values(capsys, tmp_path):
    code, out, err = run_cli(capsys, "scalesim", "-c", SS / "os8.cfg", "-t",
                             SS / "small_conv.csv", "-p", tmp_path, "-i", "conv", "--json")
    assert code == 0 and err == "", err
    data = json.loads(out)
    outdir = tmp_path / "os8"  # <logpath>/<run_name>/, as SCALE-Sim
    assert data["outdir"] == str(outdir) and data["files"] == [
        "COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"]
    cfg = read_scalesim_cfg(SS / "os8.cfg")
    layers = read_topology(SS / "small_conv.csv")
    for name in data["files"]:
        head, rows = rows_of(outdir / name)
        ref_head, ref_rows = rows_of(SS / "os8_small_conv" / name)
        assert head == ref_head  # byte for byte
        assert [r[0] for r in rows] == [r[0] for r in ref_rows] == ["0", "1", "2", "3"]
        assert [len(r) for r in rows] == [len(r) for r in ref_rows]
    _, compute = rows_of(outdir / "COMPUTE_REPORT.csv")
    for ly, row, js in zip(layers, compute, data["layers"], strict=True):
        m, n, k = ly.gemm_shape()
        ref = simulate_gemm(m, n, k, cfg, dataflow="os")  # an independent run of the layer
        total, in_array, stall = int(row[1]), int(row[2]), int(row[3])
        assert total == ref.cycles == js["cycles"]
        # the array's span: its busy cycles and its stalls
        assert in_array == ref.busy["array"] + stall and stall == js["dram_stall"]
        assert float(row[4]) == pytest.approx(100 * m * n * k / (in_array * 64))
    assert [r["scalesim_cycles"] for r in data["layers"]] == HAND_OS_CONV
    _, detail = rows_of(outdir / "DETAILED_ACCESS_REPORT.csv")
    # Stem (OS, A resident): DRAM reads its 81 x 147 activations once, the 147 x 8 weights of
    # each of its 11 x 2 output tiles, and writes 81 x 16 outputs
    stem = [int(x) for x in detail[0]]
    assert (stem[12], stem[15], stem[18]) == (81 * 147, 11 * 2 * 147 * 8, 81 * 16)
    assert stem[10] < 0 and stem[13] < 0  # prefetched before the array's cycle 0


def test_terms_add_up_and_name_the_os_drain_and_ws_weight_load(capsys, tmp_path):
    for cfg_name, hand in (("os8", HAND_OS_CONV), ("ws8", HAND_WS_CONV)):
        code, out, err = run_cli(capsys, "scalesim", "-c", SS / f"{cfg_name}.cfg", "-t",
                                 SS / "small_conv.csv", "-p", tmp_path, "--json")
        assert code == 0, err
        layers = json.loads(out)["layers"]
        assert [r["scalesim_cycles"] for r in layers] == hand
        for r in layers:
            assert r["scalesim_cycles"] + sum(r[t] for t in TERMS) == r["cycles"]
            # each layer fits the buffers: satmem's tiles are SCALE-Sim's folds
            folds = -(-r["M"] // 8) * -(-r["N"] // 8) if cfg_name == "os8" else \
                -(-r["K"] // 8) * -(-r["N"] // 8)
            assert r["tile_edges"] == 0 and r["tile_overhead"] == 3 * folds
            if cfg_name == "os8":  # 8 cycles a tile to shift the outputs out
                assert (r["output_drain"], r["weight_load"]) == (8 * folds, 0)
            else:  # k rows preloaded, not 8: only the last weight fold of K is short
                short = r["K"] % 8 and r["K"] % 8 - 8
                assert (r["output_drain"], r["weight_load"]) == (0, short * -(-r["N"] // 8))


def test_sparse_run_writes_the_sparse_report_and_runs_the_topology_patterns(capsys, tmp_path):
    code, out, err = run_cli(capsys, "scalesim", "-c", SS / "ws8_sparse.cfg", "-t",
                             SS / "sparse_gemm.csv", "-p", tmp_path, "-s", "N")
    assert code == 0, err
    # the table: SCALE-Sim's condensed-K formula for each layer
    lines = out.splitlines()
    assert lines[0].startswith(f"{SS / 'sparse_gemm.csv'} on ws8sp (8x8 ws, 3 layers)")
    cols = lines[1].split()
    cells = [dict(zip(cols, line.split(), strict=True)) for line in lines[2:5]]
    assert [int(c["scalesim_cycles"]) for c in cells] == HAND_WS_SPARSE
    assert [c["sparsity"] for c in cells] == ["2:4", "1:4", "2:8"]  # 1:4 is not tiny's
    outdir = tmp_path / "ws8sp"
    for name in ("BANDWIDTH_REPORT.csv", "SPARSE_REPORT.csv", "COMPUTE_REPORT.csv"):
        head, rows = rows_of(outdir / name)
        ref_head, ref_rows = rows_of(SS / "ws8sp_sparse_gemm" / name)
        assert head == ref_head and len(rows) == len(ref_rows) == 3
    _, sparse = rows_of(outdir / "SPARSE_REPORT.csv")
    # representation named as in the cfg; dense storage K x N words; kept values + an index
    # byte each (int8: a word)
    assert [r[1] for r in sparse] == ["ellpack_block"] * 3
    assert [(int(r[2]), float(r[3]), float(r[4])) for r in sparse] == [
        (64 * 20, 2 * 32 * 20, 32 * 20), (37 * 9, 2 * 10 * 9, 10 * 9), (100 * 8, 2 * 26 * 8,
                                                                          26 * 8)]
    assert "no SCALE-Sim traces" not in out  # -s N


def test_simulate_topology_shows_scalesim_cycles_and_terms(capsys):
    code, out, err = run_cli(capsys, "simulate", "--topology", SS / "small_conv.csv",
                             "--scalesim-cfg", SS / "ws8.cfg", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["scalesim_cycles"] for r in rows] == HAND_WS_CONV
    assert all(r["scalesim_cycles"] + sum(r[t] for t in TERMS) == r["cycles"] for r in rows)


@pytest.mark.parametrize("args,message", [
    (["-c", SS / "os8.cfg", "-t", SS / "small_gemm.csv", "-i", "conv"],
     r"small_gemm\.csv:1: -i conv but the header is SCALE-Sim's gemm format"),
    (["-c", SS / "os8.cfg", "-t", SS / "sparse_gemm.csv"],
     r"sparse_gemm\.csv:2: column 'Sparsity': layer 'S24' is 2:4 but .*os8\.cfg does not set "
     r"\[sparsity\] SparsitySupport = true"),
    (["-c", SS / "os8.cfg"], r"os8\.cfg: column '\[network_presets\] TopologyCsvLoc': no "
     r"topology"),
    (["-c", SS / "nope.cfg", "-t", SS / "small_gemm.csv"], r"nope\.cfg: cannot read the file"),
    (["-c", SS / "os8.cfg", "-t", SS / "small_gemm.csv", "-l", SS / "nope.csv"],
     r"-l .*nope\.csv: layout file not found"),
    (["-c", SS / "os8.cfg", "-t", SS / "small_gemm.csv", "-i", "mnk"], r"argument -i"),
])
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, args, message):
    code, out, err = run_cli(capsys, "scalesim", *args, "-p", tmp_path / "out")
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()


def test_run_name_must_be_a_folder_name(capsys, tmp_path):
    cfg = (SS / "os8.cfg").read_text().replace("run_name = os8", "run_name = ../elsewhere")
    (tmp_path / "r.cfg").write_text(cfg)
    code, out, err = run_cli(capsys, "scalesim", "-c", tmp_path / "r.cfg", "-t",
                             SS / "small_gemm.csv", "-p", tmp_path / "out")
    assert code == 2 and "column '[general] run_name': '../elsewhere' is not a folder name" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()


def test_input_stationary_cfg_is_refused_in_one_line(capsys, tmp_path):
    cfg = (SS / "os8.cfg").read_text().replace("Dataflow : os", "Dataflow : is")
    (tmp_path / "is.cfg").write_text(cfg)
    code, out, err = run_cli(capsys, "scalesim", "-c", tmp_path / "is.cfg", "-t",
                             SS / "small_gemm.csv", "-p", tmp_path / "out")
    assert code == 2 and len(err.splitlines()) == 1
    assert "input stationary is not a dataflow of this machine" in err


def test_patterns_the_machine_cannot_run_name_the_layer(capsys, tmp_path):
    topo = tmp_path / "t.csv"
    topo.write_text("Layer, M, N, K, Sparsity,\nfc1, 8, 8, 8, 2:4,\nfc2, 8, 8, 8, 3:4,\n")
    code, out, err = run_cli(capsys, "scalesim", "-c", SS / "ws8_sparse.cfg", "-t", topo,
                             "-p", tmp_path / "out")
    assert code == 2 and len(err.splitlines()) == 1
    assert "layer 'fc2' (line 3): weight-stationary 3:4 tiles need N to divide M" in err
    topo.write_text("Layer, M, N, K, Sparsity,\nfc1, 8, 8, 64, 16:32,\n")
    code, out, err = run_cli(capsys, "scalesim", "-c", SS / "ws8_sparse.cfg", "-t", topo,
                             "-p", tmp_path / "out")
    assert code == 2 and "t.csv:2: column 'Sparsity': layer 'fc1': 16:32 is beyond the " \
        "machine's N:M (N <= 15, M <= 128)" in err
    assert not (tmp_path / "out").exists()


def test_depthwise_layer_gives_one_report_row_per_channel(capsys, tmp_path):
    topo = tmp_path / "dw.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\nDP1,10,10,3,3,3,1,1,\nPW1,8,8,1,1,3,16,1,\n")
    code, out, err = run_cli(capsys, "scalesim", "-c", SS / "ws8.cfg", "-t", topo, "-p",
                             tmp_path, "--json")
    assert code == 0, err
    layers = json.loads(out)["layers"]
    assert [r["layer"] for r in layers] == ["DP1Channel_0", "DP1Channel_1", "DP1Channel_2",
                                            "PW1"]
    assert [(r["M"], r["N"], r["K"]) for r in layers] == [(64, 1, 9)] * 3 + [(64, 16, 3)]
    _, compute = rows_of(tmp_path / "ws8" / "COMPUTE_REPORT.csv")
    assert [r[0] for r in compute] == ["0", "1", "2", "3"]
    assert compute[0][1:] == compute[1][1:] == compute[2][1:]  # one shape, run once
