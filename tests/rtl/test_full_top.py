"""The AXI4 top at every preset: ``write_verilog(..., port="axi4")`` elaborates and writes
Verilog that Verilator lints without errors, with the warning flags every cocotb build uses
(:data:`rtl.cosim.runner.VERILATOR_ARGS`). vcu1525's top (four DDR4 channel masters, SAT-only:
``rtl.lookup`` cannot build its lookup section) takes tens of minutes to elaborate: ``slow``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from hwsim.config import preset
from rtl.cosim.runner import VERILATOR_ARGS
from rtl.verilog import PE_NAME, TOP_NAME, write_verilog
from tests.rtl.test_channels import two_channel_tiny

LINT_ARGS = [a for a in VERILATOR_ARGS if a.startswith("-W")]


def lint(vpath) -> str:
    """Verilator ``--lint-only`` of ``vpath``; fails on a non-zero exit or any ``%Error``."""
    exe = shutil.which("verilator")
    if exe is None:
        pytest.fail("verilator is not installed: `make test` installs it")
    proc = subprocess.run([exe, "--lint-only", *LINT_ARGS, "--top-module", TOP_NAME,
                           str(vpath)], capture_output=True, text=True, timeout=3600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "%Error" not in text, text[-4000:]
    return text


def test_two_channel_top_writes_verilog_that_lints(tmp_path):
    config = two_channel_tiny()
    vpath = write_verilog(config, tmp_path, port="axi4", lookup=False)
    lint(vpath)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    axi = manifest["axi4"]
    assert axi["masters"] == ["m_axi_ch0", "m_axi_ch1"]
    assert (axi["channels"], axi["data_bits"], axi["addr_bits"]) == (2, 64, 64)
    assert axi["interleave_bytes"] == 256
    assert "m_axi_ch1_araddr" in manifest["ports"] and "m_axi_araddr" not in manifest["ports"]


@pytest.mark.slow
def test_vcu1525_top_elaborates_writes_verilog_and_lints(tmp_path):
    config = preset("vcu1525")
    t0 = time.perf_counter()
    vpath = write_verilog(config, tmp_path, port="axi4", lookup=False)
    t1 = time.perf_counter()
    warnings = lint(vpath).count("%Warning")
    t2 = time.perf_counter()
    print(f"\nvcu1525 top: Verilog {vpath.stat().st_size / 2**20:.1f} MiB in {t1 - t0:.0f} s, "
          f"Verilator lint {t2 - t1:.0f} s, {warnings} warnings")
    text = vpath.read_text()
    assert f"module {TOP_NAME}(" in text and f"module {PE_NAME}(" in text
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    axi = manifest["axi4"]
    assert axi["masters"] == [f"m_axi_ch{c}" for c in range(4)]
    assert (axi["channels"], axi["data_bits"], axi["addr_bits"]) == (4, 512, 64)
    assert manifest["buffers"]["vec"] == [2048, 4096]
