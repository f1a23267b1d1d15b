"""SCALE-Sim topology CSVs and .cfg files: parsed values, lowered GEMM shapes worked out by
hand, and the messages of malformed files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dataflow.scalesim import (
    Layer,
    TopologyError,
    condensed_rows,
    read_scalesim_cfg,
    read_scalesim_run,
    read_topology,
    scalesim_cycles,
    scalesim_folds,
    split_depthwise,
)
from hwsim.config import ConfigError, preset

DATA = Path(__file__).parent / "data"


def _shapes(layers: list[Layer]) -> list[tuple]:
    return [(ly.name, ly.gemm_shape(), ly.sparsity) for ly in layers]


# --- topologies --------------------------------------------------------------------------------

def test_conv_topology_with_trailing_commas_lowers_to_scalesim_gemms():
    layers = read_topology(DATA / "resnet_head.csv")
    conv1 = layers[0]
    assert conv1 == Layer("Conv1", "conv", ifmap_h=229, ifmap_w=229, filter_h=7, filter_w=7,
                          channels=3, num_filters=64, stride_h=2, stride_w=2)
    assert conv1.line == 2
    assert conv1.ofmap_dims() == (112, 112)  # (229 - 7) / 2 + 1
    assert _shapes(layers) == [
        ("Conv1", (112 * 112, 64, 7 * 7 * 3), None),
        ("CB2a_1", (56 * 56, 64, 64), None),
        ("CB2a_2", (56 * 56, 64, 3 * 3 * 64), None),  # 58 - 3 + 1 = 56
        # SCALE-Sim's ceil((56 - 1) / 2) + 1 = 29, not the usual 28
        ("CB3a_1", (29 * 29, 128, 256), None),
        ("FC6", (1, 1000, 2048), None),
    ]
    assert layers[1].macs() == 56 * 56 * 64 * 64


def test_conv_topology_with_sparsity_column():
    layers = read_topology(DATA / "resnet_sparse.csv")
    assert _shapes(layers) == [
        ("CONV_1", (3 * 3, 6, 3 * 3 * 2), (2, 4)),
        ("CB2a_2", (56 * 56, 64, 576), None),  # "dense"
        ("CB2a_3", (56 * 56, 256, 64), None),  # blank
        ("FC6", (1, 1000, 2048), (2, 8)),
    ]


def test_annotated_scalesim_file_matches_its_own_ofmap_columns():
    # SCALE-Sim's Resnet50.csv layout: blank and annotation columns, a blank row; its Eh, Ew, e2
    # columns (110, 110, 12100) are SCALE-Sim's ofmap of Conv1
    layers = read_topology(DATA / "resnet50_annotated.csv")
    assert [ly.line for ly in layers] == [3, 4]
    assert layers[0].ofmap_dims() == (110, 110)
    assert _shapes(layers) == [("Conv1", (12100, 64, 147), None),
                               ("CB2a_1", (3136, 64, 64), None)]


def test_gemm_topology_without_trailing_commas():
    layers = read_topology(DATA / "gpt2_gemm.csv")
    assert layers[0] == Layer("QKT", "gemm", m=1024, n=1024, k=64)
    assert _shapes(layers) == [("QKT", (1024, 1024, 64), None),
                               ("QKTV", (1024, 64, 1024), None),
                               ("Linear1", (1024, 4800, 1600), None)]


def test_gemm_topology_with_sparsity_and_layer_name_header():
    assert _shapes(read_topology(DATA / "gemm_sparse.csv")) == [
        ("GEMM_1", (128, 256, 64), (2, 4)),
        ("GEMM_2", (64, 64, 512), (1, 8)),
        ("GEMM_3", (32, 16, 8), None),
    ]


def test_headers_are_matched_by_name_in_any_order_and_case(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("  num FILTER ,Strides,layer NAME,Channels, Filter Width,Filter Height,"
                 "IFMAP Width,IFMAP Height\n"
                 "8,1,c,4,3,3,10,12\n")
    assert _shapes(read_topology(p)) == [("c", (10 * 8, 8, 36), None)]


def test_separate_stride_columns_as_scalesim_writes_them(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Layer name,IFMAP height,IFMAP width,Filter height,Filter width,Channels,"
                 "Num filter,Stride height,Stride width,\n"
                 "c,9,16,3,4,2,5,2,3,\n")
    (ly,) = read_topology(p)
    assert (ly.stride_h, ly.stride_w, ly.ofmap_dims()) == (2, 3, (4, 5))


CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides, Sparsity,\n")


@pytest.mark.parametrize("text,message", [
    ("", r"t\.csv: the file is empty"),
    ("\nConv1,1,1\n", r"t\.csv:1: expected a header line"),
    ("Name, Height\nx,1\n", r"t\.csv:1: the header names neither the conv columns"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Num Filter, Strides\n",
     r"t\.csv:1: column 'channels': missing column in the conv header"),
    ("Layer, M, K\n", r"t\.csv:1: column 'n': missing column in the gemm header"),
    ("Layer, M, N, K, m\n", r"t\.csv:1: column 'm': repeated column \(also column 2\)"),
    (CONV_HEADER + "Conv1,224,abc,7,7,3,64,2,,\n",
     r"t\.csv:2: column 'IFMAP Width': expected a positive integer, not 'abc'"),
    (CONV_HEADER + "\nConv1,224,224,7,7,3,64,0,,\n",
     r"t\.csv:3: column 'Strides': expected a positive integer, not '0'"),
    (CONV_HEADER + "Conv1,224,224,7,7,3,64.5,1,,\n",
     r"t\.csv:2: column 'Num Filter': expected a positive integer, not '64.5'"),
    (CONV_HEADER + "Conv1,224,224,7,7,3\n", r"t\.csv:2: column 'Num Filter': missing value"),
    (CONV_HEADER + "Conv1,224,224,7,7,3,64,1,3:5,\n",
     r"t\.csv:2: column 'Sparsity': '3:5' is not a pattern: expected 'N:M' with 1 <= N <= M"),
    (CONV_HEADER + "Conv1,4,224,7,7,3,64,1,,\n",
     r"t\.csv:2: column 'Filter Height': filter height 7 is larger than the IFMAP height 4"),
    (CONV_HEADER + ",224,224,7,7,3,64,1,,\n", r"t\.csv:2: column 'Layer name': missing layer name"),
    ("Layer,M,N,K\nG,1,2,3,4\n",
     r"t\.csv:2: 1 value\(s\) beyond the header's 4 columns, first '4'"),
])
def test_malformed_topology_names_file_line_and_column(tmp_path, text, message):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(TopologyError, match=message) as info:
        read_topology(p)
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(p)


def test_missing_topology_file_is_a_topology_error(tmp_path):
    with pytest.raises(TopologyError, match=r"nope\.csv: cannot read the file"):
        read_topology(tmp_path / "nope.csv")


# --- .cfg files --------------------------------------------------------------------------------

def test_google_cfg_maps_onto_tiny():
    cfg = read_scalesim_cfg(DATA / "google.cfg")
    tiny = preset("tiny")
    assert cfg.name == "GoogleTPU_v1_ws"
    assert (cfg.array.rows, cfg.array.cols, cfg.array.dataflows) == (256, 256, ("ws",))
    # SCALE-Sim's 6144 kB of one-byte words are 6144 KiB of int8, its 2048 kB of output
    # words 2048 Ki int32 accumulators
    assert (cfg.buffers.act_kib, cfg.buffers.wgt_kib, cfg.buffers.acc_kib) == (6144, 6144, 8192)
    # 10 one-byte words per cycle at 100 MHz on one channel: 1.0 GB/s
    assert cfg.dram.bandwidth_gbps == pytest.approx(1.0)
    assert cfg.dram_bytes_per_cycle == pytest.approx(10)
    # SparsitySupport false: dense only
    assert cfg.array.patterns == ()
    # one accumulator entry is 256 x 4 bytes
    assert cfg.dram.bus_bytes == 1024
    assert (cfg.clock_mhz, cfg.array.dtype, cfg.dram.latency_ns) == (
        tiny.clock_mhz, tiny.array.dtype, tiny.dram.latency_ns)


def test_scale_cfg_on_a_vcu1525_base():
    base = preset("vcu1525")
    cfg = read_scalesim_cfg(DATA / "scale.cfg", base=base)
    assert cfg.name == "scale_example_run_32x32_os"
    assert (cfg.array.rows, cfg.array.cols, cfg.array.dataflows) == (32, 32, ("os",))
    # 64 Ki words each: fp16 operands, fp32 accumulators
    assert (cfg.buffers.act_kib, cfg.buffers.wgt_kib, cfg.buffers.acc_kib) == (128, 128, 256)
    # 64 fp16 words per cycle = 128 B/cycle at 200 MHz over 4 channels: 6.4 GB/s each
    assert cfg.dram.bandwidth_gbps == pytest.approx(6.4)
    assert cfg.dram_bytes_per_cycle == pytest.approx(128)
    assert cfg.array.patterns == base.array.patterns  # SparsitySupport true
    assert (cfg.dram.bus_bytes, cfg.dram.model, cfg.clock_mhz) == (256, "banked", 200.0)


def test_input_stationary_is_a_config_error_naming_field_and_choices():
    with pytest.raises(ConfigError, match=r"'architecture_presets.Dataflow' = 'is' is not allowed: "
                       r"expected 'os' or 'ws' \(.*is_dataflow\.cfg:10: input stationary"):
        read_scalesim_cfg(DATA / "is_dataflow.cfg")


MIN_CFG = """[general]
run_name = t

[architecture_presets]
ArrayHeight: 8
ArrayWidth: 8
IfmapSramSzkB: 16
FilterSramSzkB: 16
OfmapSramSzkB: 16
Dataflow: ws
Bandwidth: 10
"""


def test_calc_bandwidth_keeps_the_base_dram_and_lists_use_their_minimum(tmp_path):
    p = tmp_path / "t.cfg"
    p.write_text(MIN_CFG + "\n[run_presets]\nInterfaceBandwidth: CALC\n")
    # the 8-wide accumulator entry (32 bytes) widens tiny's 16-byte bus; the rest is tiny's
    assert read_scalesim_cfg(p).dram == dataclasses.replace(preset("tiny").dram, bus_bytes=32)
    p.write_text(MIN_CFG.replace("Bandwidth: 10", "Bandwidth: 20, 8,12"))
    assert read_scalesim_cfg(p).dram_bytes_per_cycle == pytest.approx(8)


@pytest.mark.parametrize("edit,message", [
    (("ArrayWidth: 8", "ArrayWidth: 8\nFancyKnob: 3"),
     r"t\.cfg:7: column '\[architecture_presets\] fancyknob': unknown key: SCALE-Sim's "
     r"\[architecture_presets\] keys are \['ArrayHeight'"),
    (("[general]", "[extras]\nx = 1\n[general]"),
     r"t\.cfg:1: column '\[extras\]': unknown section"),
    (("ArrayWidth: 8\n", ""),
     r"t\.cfg:4: column '\[architecture_presets\] ArrayWidth': missing key"),
    (("ArrayHeight: 8", "ArrayHeight: 0x10"),
     r"t\.cfg:5: column '\[architecture_presets\] ArrayHeight': expected a positive integer, "
     r"not '0x10'"),
    (("Dataflow: ws", "Dataflow: rs"),
     r"t\.cfg:10: column '\[architecture_presets\] Dataflow': expected one of \('os', 'ws'\), "
     r"not 'rs'"),
    (("Bandwidth: 10", "Bandwidth: 10,x"),
     r"t\.cfg:11: column '\[architecture_presets\] Bandwidth': expected a positive integer, "
     r"not 'x'"),
    (("ArrayWidth: 8", "ArrayWidth: 8\nArrayWidth: 9"), r"t\.cfg:7: not a valid INI file"),
    (("[general]\n", ""), r"t\.cfg:1: not a valid INI file"),
])
def test_malformed_cfg_names_file_line_and_key(tmp_path, edit, message):
    p = tmp_path / "t.cfg"
    p.write_text(MIN_CFG.replace(*edit, 1))
    with pytest.raises(TopologyError, match=message):
        read_scalesim_cfg(p)


def test_missing_architecture_section(tmp_path):
    p = tmp_path / "t.cfg"
    p.write_text("[general]\nrun_name = t\n")
    with pytest.raises(TopologyError, match=r"t\.cfg: column '\[architecture_presets\] "
                       r"ArrayHeight': missing key \(and no \[architecture_presets\] section\)"):
        read_scalesim_cfg(p)


def test_cfg_values_the_machine_rejects_name_the_satmem_field_and_the_file(tmp_path):
    p = tmp_path / "t.cfg"
    # 1 KiB of 8-wide int8 entries is 128 entries: fine; 32 rows need 64 entries of 32 bytes
    p.write_text(MIN_CFG.replace("ArrayHeight: 8", "ArrayHeight: 64")
                 .replace("IfmapSramSzkB: 16", "IfmapSramSzkB: 1"))
    with pytest.raises(ConfigError, match=r"'buffers.act_kib \(from .*t\.cfg\)' = 1"):
        read_scalesim_cfg(p)


# --- every .cfg key honoured or refused --------------------------------------------------------

SS = DATA / "scalesim_v3"  # SCALE-Sim v3.0.0's inputs and the reports it wrote (README there)


def test_v3_cfg_every_key_read_words_kept_and_stall_keys_listed():
    run = read_scalesim_run(SS / "os8.cfg")
    assert (run.run_name, run.dataflow, run.sparsity_support, run.sparse_rep) == (
        "os8", "os", False, "")
    cfg = run.config
    assert (cfg.array.rows, cfg.array.cols, cfg.array.dataflows) == (8, 8, ("os",))
    # 64 kB of one-byte words: 64 KiB of int8 operands, 64 Ki int32 accumulators
    assert (cfg.buffers.act_kib, cfg.buffers.wgt_kib, cfg.buffers.acc_kib) == (64, 64, 256)
    assert cfg.dram_bytes_per_cycle == pytest.approx(64)  # Bandwidth 64 words of 1 byte
    assert run.not_modelled == ("ReadRequestBuffer", "WriteRequestBuffer",
                                "IfmapSRAMBankBandwidth", "IfmapSRAMBankNum",
                                "IfmapSRAMBankPort", "FilterSRAMBankBandwidth",
                                "FilterSRAMBankNum", "FilterSRAMBankPort")
    sparse = read_scalesim_run(SS / "ws8_sparse.cfg")
    assert (sparse.run_name, sparse.dataflow, sparse.sparsity_support, sparse.sparse_rep) == (
        "ws8sp", "ws", True, "ellpack_block")
    assert sparse.config.array.patterns == preset("tiny").array.patterns


def test_fp16_base_keeps_scalesim_word_counts():
    cfg = read_scalesim_cfg(SS / "os8.cfg", base=preset("vcu1525"))
    # fp16 operands take 2 bytes a word, fp32 accumulators 4; 64 words/cycle = 128 bytes
    assert (cfg.buffers.act_kib, cfg.buffers.wgt_kib, cfg.buffers.acc_kib) == (128, 128, 256)
    assert cfg.dram_bytes_per_cycle == pytest.approx(128)
    # an index byte for each of the 64 Ki weight words (vcu1525's 1 MiB would overflow the
    # 16-bit addresses of 8-byte entries)
    assert (cfg.buffers.idx_kib, cfg.idx_depth) == (64, 8192)


def test_custom_layout_true_is_listed_as_not_modelled_and_topology_path_is_read(tmp_path):
    p = tmp_path / "t.cfg"
    p.write_text(MIN_CFG + "\n[layout]\nIfmapCustomLayout: True\nFilterCustomLayout: False\n"
                 "\n[network_presets]\nTopologyCsvLoc: \"topologies/x.csv\"\n")
    run = read_scalesim_run(p)
    assert run.not_modelled == ("IfmapCustomLayout",)
    assert run.topology == "topologies/x.csv"
    assert run.run_name == "t" and run.config.name == "t"


@pytest.mark.parametrize("extra,message", [
    ("[run_presets]\nUseRamulatorTrace: True",
     r"t\.cfg:14: column '\[run_presets\] UseRamulatorTrace': Ramulator DRAM traces are not "
     r"read"),
    ("[sparsity]\nSparsitySupport: true\nOptimizedMapping: true",
     r"t\.cfg:15: column '\[sparsity\] OptimizedMapping': SCALE-Sim's row-wise random-N sparse "
     r"mapping is not modelled"),
    ("[sparsity]\nSparsitySupport: yes",
     r"t\.cfg:14: column '\[sparsity\] SparsitySupport': expected True or False, not 'yes'"),
    ("[sparsity]\nSparsitySupport: true\nSparseRep: coo",
     r"t\.cfg:15: column '\[sparsity\] SparseRep': expected one of \('csr', 'csc', "
     r"'ellpack_block'\), not 'coo'"),
    ("[run_presets]\nInterfaceBandwidth: FAST",
     r"t\.cfg:14: column '\[run_presets\] InterfaceBandwidth': expected one of \('user', "
     r"'calc'\), not 'FAST'"),
    ("[layout]\nIfmapSRAMBankNum: 0",
     r"t\.cfg:14: column '\[layout\] IfmapSRAMBankNum': expected a positive integer, not '0'"),
])
def test_refused_and_malformed_values_name_the_key(tmp_path, extra, message):
    p = tmp_path / "t.cfg"
    p.write_text(MIN_CFG + "\n" + extra + "\n")
    with pytest.raises(TopologyError, match=message):
        read_scalesim_run(p)


def test_offsets_may_be_zero_but_not_negative(tmp_path):
    p = tmp_path / "t.cfg"
    p.write_text(MIN_CFG + "IfmapOffset: 0\nFilterOffset: 10000000\n")
    assert read_scalesim_run(p).not_modelled == ()
    p.write_text(MIN_CFG + "OfmapOffset: -5\n")
    with pytest.raises(TopologyError, match=r"t\.cfg:12: column '\[architecture_presets\] "
                       r"OfmapOffset': expected a non-negative integer, not '-5'"):
        read_scalesim_run(p)


def test_depthwise_layers_split_per_channel_as_scalesim_does(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(CONV_HEADER + "DP_conv,10,10,3,3,3,1,1,,\nPW,8,8,1,1,3,16,1,,\n")
    layers = split_depthwise(read_topology(p))
    assert [(ly.name, ly.gemm_shape()) for ly in layers] == [
        ("DP_convChannel_0", (64, 1, 9)), ("DP_convChannel_1", (64, 1, 9)),
        ("DP_convChannel_2", (64, 1, 9)), ("PW", (64, 16, 3))]


# --- SCALE-Sim's compute model -----------------------------------------------------------------

# SCALE-Sim's formula worked by hand for its own 8x8 runs (folds x cycles a fold):
# OS ceil(M/8) ceil(N/8) folds of K + 8 + 8 - 2; WS ceil(K/8) ceil(N/8) folds of 2*8 + 8 + M - 2
HAND = {
    ("os", "small_conv"): [
        11 * 2 * (147 + 14),  # Stem: ofmap ceil((23 - 7 + 2) / 2) = 9, 81 px; K 7*7*3; N 16
        8 * 2 * (72 + 14),    # C3x3: 8 x 8 = 64 px, K 3*3*8, N 12
        5 * 2 * (20 + 14),    # PW: 36 px, K 20, N 9
        1 * 2 * (40 + 14),    # FC: 1 px, K 40, N 10
    ],
    ("ws", "small_conv"): [19 * 2 * (22 + 81), 9 * 2 * (22 + 64), 3 * 2 * (22 + 36),
                           5 * 2 * (22 + 1)],
    ("os", "small_gemm"): [4 * 3 * (17 + 14), 8 * 2 * (1 + 14), 1 * 5 * (1 + 14),
                           2 * 1 * (50 + 14)],
    ("ws", "small_gemm"): [3 * 3 * (22 + 30), 1 * 2 * (22 + 64), 1 * 5 * (22 + 5),
                           7 * 1 * (22 + 9)],
    # condensed K: 2:4 of 64 keeps 32; 1:4 of 37 keeps 9 + 1; 2:8 of 100 keeps 24 + 2
    ("ws", "sparse_gemm"): [4 * 3 * (22 + 30), 2 * 2 * (22 + 12), 4 * 1 * (22 + 20)],
}
REPORTS = {("os", "small_conv"): "os8_small_conv", ("ws", "small_conv"): "ws8_small_conv",
           ("os", "small_gemm"): "os8_small_gemm", ("ws", "small_gemm"): "ws8_small_gemm",
           ("ws", "sparse_gemm"): "ws8sp_sparse_gemm"}


def scalesim_report(folder: str, name: str = "COMPUTE_REPORT.csv") -> list[dict[str, str]]:
    """A report SCALE-Sim v3.0.0 wrote, as dicts by its (stripped) column names."""
    lines = (SS / folder / name).read_text().splitlines()
    head = [c.strip() for c in lines[0].split(",")]
    return [dict(zip(head, (c.strip() for c in line.split(",")), strict=True))
            for line in lines[1:]]


@pytest.mark.parametrize("key", sorted(HAND))
def test_scalesim_model_matches_hand_formula_and_scalesim_itself(key):
    dataflow, topo = key
    layers = read_topology(SS / f"{topo}.csv")
    model = [scalesim_cycles(*ly.gemm_shape(), 8, 8, dataflow, ly.sparsity) for ly in layers]
    assert model == HAND[key]
    # SCALE-Sim's own run: no stalls, and Total Cycles is the last cycle's 0-based index
    report = scalesim_report(REPORTS[key])
    assert [int(r["Stall Cycles"]) for r in report] == [0] * len(layers)
    assert [int(r["Total Cycles"]) for r in report] == [c - 1 for c in model]


def test_condensed_rows_keep_n_of_each_group_and_of_a_partial_last_group():
    assert [condensed_rows(k, (2, 4)) for k in (64, 65, 66, 67, 3)] == [32, 33, 34, 34, 2]
    assert condensed_rows(37, None) == 37
    assert scalesim_folds(100, 30, 40, 8, 8, "ws", (1, 8)) == (1 * 4, 16 + 8 + 100 - 2)
    with pytest.raises(ValueError, match="not 'is'"):
        scalesim_folds(1, 1, 1, 8, 8, "is")
