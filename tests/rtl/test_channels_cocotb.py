"""The AXI4 top of a two-channel DRAM (tiny with ``dram.channels = 2``: two 64-bit masters,
``m_axi_ch0`` and ``m_axi_ch1``, 256-byte interleave) under Icarus and Verilator, each master
served by its own ``cocotbext.axi.AxiRam`` holding its channel's memory (``channels_bench``):
GEMMs and copies give hwsim's outputs bit for bit, and every burst lands in the channel hwsim's
DRAM model maps its bytes to (:func:`hwsim.dram.channel_map`).

Cycles are not compared (AxiRam's timing is not hwsim's memory model): they are printed
(``pytest -s``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataflow import compile_gemm, sparse_operands
from hwsim import isa
from hwsim.dram import channel_interleave, channel_map
from hwsim.engine import run
from hwsim.program import Program, TensorRef
from rtl.axi import dma_prefixes
from rtl.channels import channel_bytes
from rtl.cosim import available_simulators, run_bench
from tests.rtl.test_channels import two_channel_tiny

pytestmark = pytest.mark.cocotb
BUILD = Path(__file__).resolve().parents[2] / "build"

GEMMS = [  # label, m, n, k, dataflow, sparsity (N, M) or None, AXI pause probability
    ("dense os", 5, 7, 9, "os", None, 0.0),
    ("dense ws", 9, 6, 13, "ws", None, 0.0),
    ("2:4 os, AXI pauses", 6, 5, 14, "os", (2, 4), 0.3),
]


def _gemm_case(config, m, n, k, dataflow, sparsity, rng):
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    # the wide DMA's LOADs of whole contiguous entries come with the tile-blocked layouts
    prog = compile_gemm(m, n, k, config, dataflow=dataflow, sparsity=sparsity,
                        blocked=config.dram.dma == "wide")
    if sparsity is None:
        return prog, {"A": a, "B": b}
    ws_rows = config.array.rows if dataflow == "ws" else None
    return prog, sparse_operands(a, b, *sparsity, ws_rows=ws_rows)


def _copy_case(config, rng):
    """LOAD then STORE of ACC rows (a whole 16-byte bus word each) and WGT rows at unaligned
    addresses whose rows straddle the 256-byte interleave boundaries (two pieces, one per
    channel) and a 4 KiB page."""
    c, rows = config.array.cols, 24
    xa, ya = 4096 - 5 * 4 * c + 7, 2 * 4096 + 256 - 3 * 4 * c - 2
    wa, va = 256 - 2 * c + 3, ya + rows * 4 * c + 249
    t = {"X": TensorRef(xa, (rows, c), "int32"), "Y": TensorRef(ya, (rows, c), "int32"),
         "w": TensorRef(wa, (rows, c), "int8"), "v": TensorRef(va, (rows, c), "int8")}
    cmds = [isa.Load(isa.Buffer.ACC, 0, xa, rows, c, 4 * c, signal=1),
            isa.Load(isa.Buffer.WGT, 0, wa, rows, c, c, signal=2),
            isa.Store(isa.Buffer.ACC, 0, ya, rows, c, 4 * c, wait=1),
            isa.Store(isa.Buffer.WGT, 0, va, rows, c, c, wait=2)]
    values = {"X": rng.integers(-2**31, 2**31, (rows, c)).astype(np.int32),
              "w": rng.integers(-128, 128, (rows, c)).astype(np.int8)}
    return Program(cmds, va + rows * c + 7, t, inputs=("X", "w"), outputs=("Y", "v")), values


def split_image(config, image: np.ndarray, size: int) -> np.ndarray:
    """The channels' memories (channels x ``size // channels`` bytes) holding ``image`` (the
    first bytes of a ``size``-byte global memory) under hwsim's channel map."""
    n = config.dram.channels
    mems = np.zeros((n, size // n), np.uint8)
    ch, local = channel_map(np.arange(image.size), config)
    mems[ch, local] = image
    return mems


def join_image(config, mems: np.ndarray, nbytes: int) -> np.ndarray:
    """The global memory's first ``nbytes`` from the channels' memories."""
    ch, local = channel_map(np.arange(nbytes), config)
    return mems[ch, local]


@pytest.mark.parametrize("dma", ["entry", "wide"])
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_two_channel_top_runs_gemms_bit_equal_to_hwsim(sim, dma):
    """With ``dram.dma: wide`` (vcu1525's) a LOAD's 16-byte requests of four entries are cut
    by the splitter at the interleave like any other."""
    if sim not in available_simulators():
        pytest.fail(f"{sim} is not installed: `make test` installs it")
    config = two_channel_tiny()
    if dma == "wide":
        config = config.replace(dram__dma="wide", name="tiny_2ch_wide")
    n, g, cb = config.dram.channels, channel_interleave(config), channel_bytes(config)
    rng = np.random.default_rng(2027)
    cases = [(label, *_gemm_case(config, m, nn, k, df, nm, rng), pause)
             for label, m, nn, k, df, nm, pause in GEMMS]
    cases.append(("copy across channels", *_copy_case(config, rng), 0.0))
    span = n * g
    size = -(-(max(p.dram_bytes for _, p, _, _ in cases) + span) // (n * 4096)) * n * 4096
    prefixes = list(dma_prefixes(config))
    images = [p.dram_image(v) for _, p, v, _ in cases]
    spec = {"prefixes": prefixes, "channel_bytes": size // n, "seed": 5, "max_cycles": 200_000,
            "programs": [{"words": [f"{isa.encode(c):x}" for c in p.commands],
                          "mems": [m.tobytes().hex() for m in split_image(config, im, size)],
                          "pause": pause}
                         for (_, p, _, pause), im in zip(cases, images, strict=True)]}
    results = run_bench(sim, config, spec, tag="channels-seed5", build_root=BUILD,
                        module="tests.rtl.channels_bench", port="axi4", lookup=False)
    if dma == "wide":  # the GEMMs' loads are several entries a request
        from hwsim.program import COL
        from hwsim.units.dma import load_beats

        t = np.concatenate([p.table for _, p, _, _ in cases])
        beats = load_beats(t[:, 0] == isa.Opcode.LOAD, t[:, COL["buf"]], t[:, COL["sram_addr"]],
                           t[:, COL["elems"]], t[:, COL["stride"]], config)
        assert (beats * (t[:, COL["rows"]] > 1)).max() == 4

    print(f"\n{sim}/{config.name}: cycles, hwsim fixed-latency model vs two-channel AXI top")
    for (label, prog, values, _), image, got in zip(cases, images, results, strict=True):
        where = f"{sim} {label}"
        model = run(prog, config, "functional", inputs=values)
        assert got["error"] == 0 and got["axi_error"] == 0, where
        assert len(got["accept"]) == len(prog.commands), where
        mems = np.stack([np.frombuffer(bytes.fromhex(m), np.uint8) for m in got["mems"]])
        dram = join_image(config, mems, image.size).copy()
        want = image.copy()
        for name in prog.outputs:
            np.testing.assert_array_equal(
                prog.tensors[name].read(dram.copy()).view(np.uint8),
                model.outputs[name].view(np.uint8), err_msg=f"{where}: {name} RTL vs hwsim")
            prog.tensors[name].write(want, model.outputs[name])
        np.testing.assert_array_equal(dram, want, err_msg=f"{where}: stray writes")
        used = set()
        for c, prefix in enumerate(prefixes):
            for addr, blen in got["bursts"][prefix]["ar"] + got["bursts"][prefix]["aw"]:
                # a burst stays in one interleave chunk of its channel: hwsim maps all of that
                # chunk's bytes to channel c
                assert addr % cb == 0 and addr // g == (addr + (blen + 1) * cb - 1) // g, where
                glob = (addr // g * n + c) * g + addr % g
                assert channel_map(np.array([glob]), config)[0][0] == c, where
                used.add(c)
        assert used == set(range(n)), f"{where}: every channel carries traffic"
        print(f"{label:<24} hwsim {model.stats.cycles:>6}  RTL idle {got['idle_cycle'] + 1:>6}  "
              + "  ".join(f"{p}: {len(got['bursts'][p]['ar'])} AR {len(got['bursts'][p]['aw'])}"
                          f" AW" for p in prefixes))
