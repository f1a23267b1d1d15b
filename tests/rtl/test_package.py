"""``satmem rtl package``: the Vitis kernel's files, kernel.xml's ports and argument offsets
(those the RTL's register map decodes), one master, base argument and memory bank per DRAM
channel, the manifest's supported commands, the XDC's clock."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from hwsim import isa
from hwsim.config import preset
from reports.cli import main
from rtl.axilite import ARG_BASE, ARG_STRIDE, STATUS
from rtl.kernel import KERNEL_NAME, SatmemKernel
from rtl.package import (
    KERNEL_FILES,
    kernel_banks,
    kernel_connectivity,
    kernel_manifest,
    kernel_xdc,
    kernel_xml,
    package_tcl,
)

# the description tests build kernels without elaborating them
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _vcu1525_like():
    """vcu1525 (32x32 fp16, N:M 2:4, 2:8, 1:8, 200 MHz) with a 1024-bit DMA bus on one DRAM
    channel (the widest one master takes)."""
    return preset("vcu1525").replace(dram__bus_bytes=128, dram__channels=1, vector__lanes=32)


def _args(root):
    return {a.get("name"): a.attrib for a in root.iter("arg")}


def test_rtl_package_tiny_writes_the_kernel_files(capsys, tmp_path):
    code = main(["rtl", "package", "--config", "tiny", "--out", str(tmp_path), "--no-lookup"])
    out, _ = capsys.readouterr()
    assert code == 0 and "Vivado is not available" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(KERNEL_FILES)

    verilog = (tmp_path / f"{KERNEL_NAME}.v").read_text()
    ports = verilog.split(f"module {KERNEL_NAME}(")[1].split(";")[0]
    for sig in ("ap_clk", "ap_rst_n", "interrupt", "s_axi_control_awaddr",
                "s_axi_control_rdata", "m_axi_gmem_araddr", "m_axi_cmd_araddr"):
        assert re.search(rf"\b{sig}\b", ports), sig
    assert "m_axi_lk_" not in ports and f"module {KERNEL_NAME}_pe(" in verilog

    root = ET.parse(tmp_path / "kernel.xml").getroot()
    kernel = root.find("kernel")
    assert kernel.get("hwControlProtocol") == "ap_ctrl_hs" and kernel.get("interrupt") == "true"
    ports = {p.get("name"): p.attrib for p in root.iter("port")}
    assert ports["s_axi_control"]["mode"] == "slave"
    assert ports["s_axi_control"]["range"] == "0x1000"
    assert {n: p["dataWidth"] for n, p in ports.items() if p["mode"] == "master"} == {
        "m_axi_gmem": "128", "m_axi_cmd": "128"}  # tiny's 16-byte bus; 16-byte commands
    args = _args(root)
    assert list(args) == ["program", "program_words", "data"]
    assert [(a["offset"], a["size"], a["port"], a["addressQualifier"]) for a in args.values()] \
        == [("0x10", "0x8", "m_axi_cmd", "1"), ("0x18", "0x8", "s_axi_control", "0"),
            ("0x20", "0x8", "m_axi_gmem", "1")]

    xdc = (tmp_path / f"{KERNEL_NAME}.xdc").read_text()
    period = float(re.search(r"create_clock -period (\S+) -name ap_clk \[get_ports ap_clk\]",
                             xdc)[1])
    assert period == pytest.approx(1000 / preset("tiny").clock_mhz)
    assert "ap_rst_n" in xdc

    assert (tmp_path / "connectivity.cfg").read_text().splitlines()[2:] == [
        "[connectivity]", "nk=satmem_kernel:1:satmem_kernel_1",
        "sp=satmem_kernel_1.program:DDR[0]", "sp=satmem_kernel_1.data:DDR[0]"]

    tcl = (tmp_path / "package_kernel.tcl").read_text()
    assert tcl.index("ipx::package_project") < tcl.index("package_xo")
    assert "-kernel_xml $script_dir/kernel.xml" in tcl and "sdx_kernel true" in tcl
    assert "Vivado is not available" in tcl
    assert tcl.count("{") == tcl.count("}") and tcl.count("[") == tcl.count("]")

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config_key"] == preset("tiny").key() and manifest["lookup"] is False
    assert manifest["hw_control_protocol"] == "ap_ctrl_hs"
    assert [a["offset"] for a in manifest["args"]] == [0x10, 0x18, 0x20]
    assert "GEMM(dense|2:4|2:8|1:8, os|ws, int8)" in manifest["supported"]
    assert not [c for c in manifest["supported"] if c.startswith(("HASH", "GATHER"))]


def test_kernel_args_are_where_the_register_map_decodes_them():
    k = SatmemKernel(_vcu1525_like())
    args = _args(ET.fromstring(kernel_xml(k)))
    assert list(args) == ["program", "program_words", "data", "tables"]
    for i, a in enumerate(args.values()):
        assert int(a["offset"], 16) == ARG_BASE + i * ARG_STRIDE
    assert args["tables"]["port"] == "m_axi_lk"
    masters = {p.get("name"): p.get("dataWidth") for p in ET.fromstring(kernel_xml(k))
               .iter("port") if p.get("mode") == "master"}
    assert masters == {"m_axi_gmem": "1024", "m_axi_lk": "512", "m_axi_cmd": "128"}
    assert "ipx::associate_bus_interfaces -busif m_axi_lk -clock ap_clk $core" in package_tcl(k)


def test_vcu1525_kernel_has_a_master_base_argument_and_bank_per_dram_channel():
    """The preset's four DDR4 channels: m_axi_ch0..3 (512 bits each), data0..data3 at 0x20 to
    0x38 each on its channel's master, tables at 0x40 (where the status register was), each
    channel's buffer on its own DDR bank in the link configuration."""
    cfg = preset("vcu1525")
    k = SatmemKernel(cfg)
    root = ET.fromstring(kernel_xml(k))
    args = _args(root)
    assert [(n, a["offset"], a["port"]) for n, a in args.items()] == [
        ("program", "0x10", "m_axi_cmd"), ("program_words", "0x18", "s_axi_control"),
        ("data0", "0x20", "m_axi_ch0"), ("data1", "0x28", "m_axi_ch1"),
        ("data2", "0x30", "m_axi_ch2"), ("data3", "0x38", "m_axi_ch3"),
        ("tables", "0x40", "m_axi_lk")]
    assert [a.get("id") for a in root.iter("arg")] == [str(i) for i in range(7)]
    masters = {p.get("name"): p.get("dataWidth") for p in root.iter("port")
               if p.get("mode") == "master"}
    assert masters == {**{f"m_axi_ch{c}": "512" for c in range(4)}, "m_axi_lk": "512",
                       "m_axi_cmd": "128"}
    assert kernel_banks(k) == {"program": "DDR[0]", "data0": "DDR[0]", "data1": "DDR[1]",
                               "data2": "DDR[2]", "data3": "DDR[3]", "tables": "DDR[0]"}
    assert [line for line in kernel_connectivity(k).splitlines() if line.startswith("sp=")] == [
        f"sp=satmem_kernel_1.{a}:{b}" for a, b in kernel_banks(k).items()]
    tcl = package_tcl(k)
    for c in range(4):
        assert f"ipx::associate_bus_interfaces -busif m_axi_ch{c} -clock ap_clk $core" in tcl
        assert f"set_property value m_axi_ch{c} [ipx::get_register_parameters" in tcl
    assert "set_property address_offset 0x400 $reg" in tcl  # STATUS, above every argument
    m = kernel_manifest(cfg, k)
    assert m["masters"]["m_axi_ch3"] == {"addr_bits": 64, "base_argument": "data3",
                                         "data_bits": 512, "id_bits": 1}
    assert m["dram_channels"]["channels"] == 4 and m["dram_channels"]["interleave_bytes"] == 256
    assert m["control"]["registers"]["status"] == STATUS == 0x400


def test_rtl_package_of_a_two_channel_config_writes_a_master_and_argument_per_channel(
        capsys, tmp_path):
    yaml = tmp_path / "tiny_2ch.yaml"
    yaml.write_text("base: tiny\nname: tiny_2ch\ndram:\n  channels: 2\n")
    out = tmp_path / "pkg"
    assert main(["rtl", "package", "--config", str(yaml), "--out", str(out), "--no-lookup"]) == 0
    capsys.readouterr()
    verilog = (out / f"{KERNEL_NAME}.v").read_text()
    ports = verilog.split(f"module {KERNEL_NAME}(")[1].split(");")[0]
    for c in range(2):
        for sig in ("araddr", "awaddr", "rdata", "wdata"):
            assert re.search(rf"\bm_axi_ch{c}_{sig}\b", ports), (c, sig)
        assert re.search(rf"output \[63:0\] m_axi_ch{c}_araddr;", verilog)
        assert re.search(rf"input \[63:0\] m_axi_ch{c}_rdata;", verilog)  # 16 bytes / 2
    assert "m_axi_gmem" not in verilog
    root = ET.parse(out / "kernel.xml").getroot()
    assert [(n, a["offset"], a["port"]) for n, a in _args(root).items()] == [
        ("program", "0x10", "m_axi_cmd"), ("program_words", "0x18", "s_axi_control"),
        ("data0", "0x20", "m_axi_ch0"), ("data1", "0x28", "m_axi_ch1")]
    cfg = (out / "connectivity.cfg").read_text()
    assert "sp=satmem_kernel_1.data0:DDR[0]" in cfg and "sp=satmem_kernel_1.data1:DDR[1]" in cfg
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["dram"]["channels"] == 2
    assert [a["name"] for a in manifest["args"]] == ["program", "program_words", "data0",
                                                    "data1"]


def test_manifest_lists_sparse_fp16_gemms_and_every_command_for_a_vcu1525_like_config():
    cfg = _vcu1525_like()
    m = kernel_manifest(cfg, SatmemKernel(cfg))
    assert m["commands"]["GEMM"]["dtype"] == "fp16"
    assert m["commands"]["GEMM"]["sparsity"] == ["dense", "2:4", "2:8", "1:8"]
    assert "GEMM(dense|2:4|2:8|1:8, os|ws, fp16)" in m["supported"]
    assert m["dataflows"] == ["os", "ws"] and m["nm_patterns"] == ["2:4", "2:8", "1:8"]
    assert m["datatypes"] == ["fp16", "fp32"]
    # every opcode of the ISA: this kernel has every unit
    assert sorted(c["opcode"] for c in m["commands"].values()) == sorted(int(o)
                                                                          for o in isa.Opcode)
    assert m["commands"]["UPDATE"]["optimizers"] == [
        "SGD", "SGD with momentum", "SGD with momentum, first step"]  # no Adam in the RTL
    assert m["commands"]["SCATTER"]["modes"] == [0, 1, 2]
    # a dense-only int8 machine has no SORE, so no PRUNE, and no N:M GEMM
    dense = preset("tiny").replace(array__patterns=())
    d = kernel_manifest(dense, SatmemKernel(dense, lookup=False))
    assert "PRUNE" not in d["commands"] and d["nm_patterns"] == []
    assert d["commands"]["GEMM"]["sparsity"] == ["dense"]
    assert d["datatypes"] == ["fp16", "fp32", "int32", "int8"]


def test_xdc_period_is_the_configs_clock():
    cfg = _vcu1525_like()
    assert cfg.clock_mhz == 200.0
    assert "create_clock -period 5.000 -name ap_clk [get_ports ap_clk]" in kernel_xdc(cfg)


@pytest.mark.slow  # the whole vcu1525 kernel: 18.5 min and 5 GB to elaborate (a busy 2-core box)
def test_rtl_package_vcu1525_without_lookup_writes_four_512_bit_channel_masters(capsys,
                                                                                tmp_path):
    """``satmem rtl package --config vcu1525 --no-lookup``: the preset's four DDR4 channels
    each a 512-bit master with its own base argument and bank (the lookup engine cannot be
    built at the preset's 256 gather lanes: ``--no-lookup``)."""
    assert main(["rtl", "package", "--config", "vcu1525", "--out", str(tmp_path),
                 "--no-lookup"]) == 0
    capsys.readouterr()
    verilog = (tmp_path / f"{KERNEL_NAME}.v").read_text()
    for c in range(4):
        assert re.search(rf"output \[63:0\] m_axi_ch{c}_araddr;", verilog)
        assert re.search(rf"input \[511:0\] m_axi_ch{c}_rdata;", verilog)
    root = ET.parse(tmp_path / "kernel.xml").getroot()
    assert [(n, a["offset"]) for n, a in _args(root).items()] == [
        ("program", "0x10"), ("program_words", "0x18"), ("data0", "0x20"), ("data1", "0x28"),
        ("data2", "0x30"), ("data3", "0x38")]
    assert "sp=satmem_kernel_1.data3:DDR[3]" in (tmp_path / "connectivity.cfg").read_text()
