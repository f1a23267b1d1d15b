"""The Vitis packaging of :class:`rtl.kernel.SatmemKernel`: its Verilog, ``kernel.xml``, a
Vivado Tcl script that packages it as a Vitis ``.xo`` (``ipx::package_project`` then
``package_xo``, the flow of AMD UG1393's "Packaging RTL kernels"), an XDC with its clock and
reset, a ``v++`` link configuration that puts each DRAM channel's master on its own memory bank
(``connectivity.cfg``), and a manifest of what it runs.

Vivado is not installed here: the Tcl script is written, never run (nor syntax-checked by a
Tcl interpreter) by satmem. Run it on a machine with Vivado::

    vivado -mode batch -source package_kernel.tcl

which writes ``satmem_kernel.xo`` beside it, for ``v++ -l --config connectivity.cfg`` with the
card's platform.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from amaranth import Shape
from amaranth.back import verilog

from hwsim import isa
from hwsim.config import AcceleratorConfig
from hwsim.dram import channel_interleave

from .array import PE, array_group
from .axilite import (
    ADDR_BITS,
    ARG_STRIDE,
    CTRL,
    CYCLES,
    GIE,
    IER,
    ISR,
    STATUS,
    STATUS_BITS,
)
from .kernel import KERNEL_ADDR_BITS, KERNEL_NAME, SatmemKernel, data_args
from .manifest import supported_commands, supported_summary

__all__ = ["KERNEL_FILES", "PART", "VENDOR", "kernel_banks", "kernel_connectivity",
           "kernel_manifest", "kernel_xml", "kernel_xdc", "package_tcl", "write_package"]

VENDOR, LIBRARY, VERSION = "satmem", "kernel", "1.0"
PART = "xcvu9p-fsgd2104-2L-e"  # the VCU1525's VU9P
KERNEL_FILES = (f"{KERNEL_NAME}.v", "kernel.xml", "package_kernel.tcl", f"{KERNEL_NAME}.xdc",
                "connectivity.cfg", "manifest.json")
BANK_TAG = "DDR"  # the memory tags of the VCU1525, U200 and U250 platforms: DDR[0] .. DDR[3]
PE_MODULE = f"{KERNEL_NAME}_pe"
VIVADO_NOTE = ("Vivado is not available where satmem runs: package_kernel.tcl was written, not "
               "run; run `vivado -mode batch -source package_kernel.tcl` to make the .xo")


def _masters(kernel: SatmemKernel) -> dict[str, dict]:
    """Each AXI4 master of the kernel: data and ID widths, the argument that bases it."""
    out = {}
    for ours, (inner, name, base) in kernel.masters.items():
        prefix, sig = ours.rsplit("_", 1)
        info = out.setdefault(prefix, {"addr_bits": KERNEL_ADDR_BITS, "base_argument": base})
        if sig in ("rdata", "arid"):
            width = Shape.cast(inner.signature.members[name].shape).width
            info["data_bits" if sig == "rdata" else "id_bits"] = width
        if sig == "aruser":
            info["user_bits"] = Shape.cast(inner.signature.members[name].shape).width
    return out


def kernel_xml(kernel: SatmemKernel) -> str:
    """The Vitis kernel description (UG1393 "RTL Kernel XML File", versionMinor 6): the
    control slave and every master as ports, the arguments with their register offsets."""
    root = ET.Element("root", versionMajor="1", versionMinor="6")
    k = ET.SubElement(root, "kernel", name=KERNEL_NAME, language="ip_c",
                      vlnv=f"{VENDOR}:{LIBRARY}:{KERNEL_NAME}:{VERSION}", attributes="",
                      preferredWorkGroupSizeMultiple="0", workGroupSize="1", interrupt="true",
                      hwControlProtocol="ap_ctrl_hs")
    ports = ET.SubElement(k, "ports")
    ET.SubElement(ports, "port", name="s_axi_control", mode="slave",
                  range=f"{1 << ADDR_BITS:#x}", dataWidth="32", portType="addressable",
                  base="0x0")
    for prefix, info in _masters(kernel).items():
        ET.SubElement(ports, "port", name=prefix, mode="master", range="0xFFFFFFFFFFFFFFFF",
                      dataWidth=str(info["data_bits"]), portType="addressable", base="0x0")
    args = ET.SubElement(k, "args")
    for i, a in enumerate(kernel.args):
        ET.SubElement(args, "arg", name=a.name, addressQualifier="1" if a.is_pointer else "0",
                      id=str(i), port=a.port or "s_axi_control", size=f"{ARG_STRIDE:#x}",
                      offset=f"{a.offset:#x}", type=a.ctype, hostOffset="0x0",
                      hostSize=f"{ARG_STRIDE:#x}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def kernel_xdc(config: AcceleratorConfig) -> str:
    """Clock and reset constraints at ``config.clock_mhz``."""
    period = 1000.0 / config.clock_mhz
    return (f"# {KERNEL_NAME}: {config.name} at {config.clock_mhz:g} MHz (written by satmem)\n"
            f"create_clock -period {period:.3f} -name ap_clk [get_ports ap_clk]\n"
            "# ap_rst_n is synchronous to ap_clk (UG1393) and registered once inside the "
            "kernel:\n# an ordinary ap_clk input, timed from the platform's reset register\n"
            "set_input_delay -clock ap_clk 0.000 [get_ports ap_rst_n]\n")


def kernel_banks(kernel: SatmemKernel) -> dict[str, str]:
    """The memory bank of each pointer argument: DRAM channel ``c``'s base (``data<c>``) on
    ``DDR[c]``, everything else (``program``, ``data`` of a one-channel kernel, ``tables``) on
    ``DDR[0]``: each channel master gets a bank of its own, as hwsim's channels are."""
    bank = dict(zip(data_args(kernel.channels), range(kernel.channels), strict=True))
    return {a.name: f"{BANK_TAG}[{bank.get(a.name, 0)}]" for a in kernel.args if a.is_pointer}


def kernel_connectivity(kernel: SatmemKernel) -> str:
    """The ``v++ --link --config`` file: one compute unit, each pointer argument on its bank
    (:func:`kernel_banks`)."""
    cu = f"{KERNEL_NAME}_1"
    lines = [f"# {KERNEL_NAME}: v++ -l --config connectivity.cfg (written by satmem)",
             f"# memory tags of the VCU1525/U200/U250 platforms ({BANK_TAG}[0] .. "
             f"{BANK_TAG}[3]); rename them for another platform",
             "[connectivity]", f"nk={KERNEL_NAME}:1:{cu}"]
    lines += [f"sp={cu}.{arg}:{bank}" for arg, bank in kernel_banks(kernel).items()]
    return "\n".join(lines) + "\n"


def package_tcl(kernel: SatmemKernel, part: str = PART) -> str:
    """The Vivado script: a project with the Verilog and XDC, ``ipx::package_project`` with
    the Vitis kernel properties, the bus interfaces on ``ap_clk``/``ap_rst_n``, the control
    register map, then ``package_xo`` with ``kernel.xml``."""
    masters = list(_masters(kernel))
    regs = [("CTRL", CTRL, 32, "control: ap_start, ap_done, ap_idle, ap_ready, auto_restart"),
            ("GIER", GIE, 32, "global interrupt enable"),
            ("IP_IER", IER, 32, "IP interrupt enable"),
            ("IP_ISR", ISR, 32, "IP interrupt status"),
            *((a.name, a.offset, 64, a.what) for a in kernel.args),
            ("STATUS", STATUS, 32, "status (read only)"),
            ("CYCLES", CYCLES, 64, "cycles of the last run (read only)")]
    lines = [
        f"# Package {KERNEL_NAME} as a Vitis RTL kernel (.xo); written by `satmem rtl package`.",
        f"# {VIVADO_NOTE}.",
        "# Flow: AMD UG1393 / UG1700, 'Packaging RTL kernels' (ipx::package_project, package_xo).",
        "set script_dir [file dirname [file normalize [info script]]]",
        f"set kernel_name {KERNEL_NAME}",
        f"set part {part}",
        "set ip_dir $script_dir/ip",
        "set xo_path $script_dir/${kernel_name}.xo",
        "",
        "create_project -force kernel_pack $script_dir/kernel_pack -part $part",
        "add_files -norecurse $script_dir/${kernel_name}.v",
        "add_files -fileset constrs_1 -norecurse $script_dir/${kernel_name}.xdc",
        "set_property top $kernel_name [current_fileset]",
        "update_compile_order -fileset sources_1",
        "",
        f"ipx::package_project -root_dir $ip_dir -vendor {VENDOR} -library {LIBRARY} "
        "-taxonomy /KernelIP -import_files -set_current false",
        "ipx::unload_core $ip_dir/component.xml",
        "ipx::edit_ip_in_project -upgrade true -name tmp_edit_project -directory $ip_dir "
        "$ip_dir/component.xml",
        "set core [ipx::current_core]",
        f"set_property version {VERSION} $core",
        "set_property core_revision 1 $core",
        "foreach up [ipx::get_user_parameters -of_objects $core] {",
        "    ipx::remove_user_parameter [get_property NAME $up] $core",
        "}",
        "set_property sdx_kernel true $core",
        "set_property sdx_kernel_type rtl $core",
        "set_property vitis_drc {ctrl_protocol ap_ctrl_hs} $core",
        "set_property ipi_drc {ignore_freq_hz true} $core",
        "",
        "# every interface on ap_clk, reset ap_rst_n (active low)",
        "ipx::infer_bus_interface ap_clk xilinx.com:signal:clock_rtl:1.0 $core",
        "ipx::infer_bus_interface ap_rst_n xilinx.com:signal:reset_rtl:1.0 $core",
        "set_property value ACTIVE_LOW [ipx::get_bus_parameters POLARITY -of_objects "
        "[ipx::get_bus_interfaces ap_rst_n -of_objects $core]]",
        "ipx::infer_bus_interface interrupt xilinx.com:signal:interrupt_rtl:1.0 $core",
        *(f"ipx::associate_bus_interfaces -busif {p} -clock ap_clk $core"
          for p in ("s_axi_control", *masters)),
        "ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $core",
        "",
        "# the control register map (the kernel.xml offsets)",
        "set block [ipx::get_address_blocks reg0 -of_objects [ipx::get_memory_maps "
        "s_axi_control -of_objects $core]]",
        f"set_property range {1 << ADDR_BITS:#x} $block",
    ]
    pointer = {a.name: a.port for a in kernel.args if a.is_pointer}
    for name, offset, size, what in regs:
        lines += [f"ipx::add_register {name} $block",
                  f"set reg [ipx::get_registers {name} -of_objects $block]",
                  f"set_property description {{{what}}} $reg",
                  f"set_property address_offset {offset:#05x} $reg",
                  f"set_property size {size} $reg"]
        if name in pointer:
            lines += ["ipx::add_register_parameter ASSOCIATED_BUSIF $reg",
                      f"set_property value {pointer[name]} [ipx::get_register_parameters "
                      "ASSOCIATED_BUSIF -of_objects $reg]"]
    lines += [
        "",
        "set_property xpm_libraries {XPM_CDC XPM_MEMORY XPM_FIFO} $core",
        "set_property supported_families { } $core",
        "set_property auto_family_support_level level_2 $core",
        "ipx::create_xgui_files $core",
        "ipx::update_checksums $core",
        "ipx::check_integrity -kernel $core",
        "ipx::save_core $core",
        "close_project -delete",
        "",
        "package_xo -force -xo_path $xo_path -kernel_name $kernel_name -ip_directory $ip_dir "
        "-kernel_xml $script_dir/kernel.xml -ctrl_protocol ap_ctrl_hs",
        "",
    ]
    return "\n".join(lines)


def kernel_manifest(config: AcceleratorConfig, kernel: SatmemKernel) -> dict:
    """What the kernel is and runs: config, control registers, arguments, masters, and every
    supported command, dataflow, N:M pattern and datatype (:mod:`rtl.manifest`)."""
    commands = supported_commands(config, kernel.lookup)
    gemm, prune = commands.get("GEMM", {}), commands.get("PRUNE", {})
    datatypes = sorted({c[k] for c in commands.values()
                        for k in ("dtype", "accumulate_dtype", "copy_dtype", "element")
                        if k in c})
    return {
        "kernel": KERNEL_NAME, "vlnv": f"{VENDOR}:{LIBRARY}:{KERNEL_NAME}:{VERSION}",
        "config_name": config.name, "config_key": config.key(), "config": config.to_dict(),
        "clock_mhz": config.clock_mhz, "hw_control_protocol": "ap_ctrl_hs",
        "lookup": kernel.lookup, "isa_word_bits": isa.WORD_BITS,
        "control": {"port": "s_axi_control", "addr_bits": ADDR_BITS, "data_bits": 32,
                    "registers": {"ctrl": CTRL, "gie": GIE, "ier": IER, "isr": ISR,
                                  "status": STATUS, "cycles": CYCLES},
                    "ctrl_bits": {"ap_start": 0, "ap_done": 1, "ap_idle": 2, "ap_ready": 3,
                                  "auto_restart": 7},
                    "status_bits": STATUS_BITS},
        "args": [{"name": a.name, "offset": a.offset, "size": ARG_STRIDE, "port": a.port,
                  "type": a.ctype, "what": a.what} for a in kernel.args],
        "masters": _masters(kernel),
        "memory_banks": kernel_banks(kernel),
        "dram_channels": {"channels": kernel.channels,
                          "interleave_bytes": channel_interleave(config),
                          "map": "byte a: channel a // g % channels, at a // g // channels * g "
                                 "+ a % g of that channel's buffer (hwsim.dram.channel_map)"},
        "ports": {name: str(member) for name, member in kernel.signature.members.items()},
        "supported": supported_summary(commands),
        "commands": commands,
        "dataflows": gemm.get("dataflows", []),
        "nm_patterns": prune.get("patterns", [p for p in gemm.get("sparsity", [])
                                              if p != "dense"]),
        "datatypes": datatypes,
        "program": "hwsim.program.Program.binary(): 16-byte little-endian hwsim.isa words",
        "vivado": VIVADO_NOTE,
    }


def write_package(config: AcceleratorConfig, out_dir: str | Path, *, lookup: bool = True,
                  part: str = PART) -> dict[str, Path]:
    """Write :data:`KERNEL_FILES` for ``config`` into ``out_dir``; returns them by name.

    The Verilog is the kernel top with one shared PE module (``satmem_kernel_pe``), as
    :func:`rtl.verilog.write_verilog` writes the accelerator. Nothing is written when the
    kernel cannot be built (the error propagates).
    """
    kernel = SatmemKernel(config, lookup=lookup, pe_module=PE_MODULE)
    text = verilog.convert(kernel, name=KERNEL_NAME, emit_src=False)
    text += verilog.convert(PE(config.array.dtype, array_group(config)), name=PE_MODULE,
                            emit_src=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = dict(zip(KERNEL_FILES, (
        text, kernel_xml(kernel), package_tcl(kernel, part), kernel_xdc(config),
        kernel_connectivity(kernel), json.dumps(kernel_manifest(config, kernel), indent=2)),
        strict=True))
    paths = {}
    for name, body in files.items():
        path = out / name
        if not path.exists() or path.read_text() != body:
            path.write_text(body)
        paths[name] = path
    return paths
