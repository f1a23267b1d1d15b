"""SCALE-Sim topology CSVs and .cfg files: parsed values, lowered GEMM shapes worked out by
hand, and the messages of malformed files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dataflow.scalesim import Layer, TopologyError, read_scalesim_cfg, read_topology
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
    assert (cfg.buffers.act_kib, cfg.buffers.wgt_kib, cfg.buffers.acc_kib) == (6144, 6144, 2048)
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
    assert (cfg.buffers.act_kib, cfg.buffers.wgt_kib, cfg.buffers.acc_kib) == (64, 64, 64)
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
