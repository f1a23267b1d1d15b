"""cocotb bench for ``satmem_top`` built with the AXI4 master ports (``port="axi4"``).

Serves the DMA's ``m_axi_*`` port with ``cocotbext.axi.AxiRam`` (optionally with random pauses on
every AXI channel), drives the command words on ``cmd`` and waits until every command retired
and then until ``idle`` (which the AXI top raises only once every write's B response came back).
Loaded by the simulator, not by pytest (``test_axi_cocotb.py`` and
``test_lookup_axi_cocotb.py`` write the spec and compare).

A top with the lookup engine has a second master, ``m_axi_lk_*`` (its table memory), served
over the same memory (one address space) by either

- ``"axiram"``: a second ``AxiRam`` sharing the first one's memory object, with the same random
  pauses (it answers in order, never interleaves, has no latency setting); or
- ``"fixed"``: :class:`FixedLatencySlave`, a cycle-exact slave with fixed latencies and one
  data beat a cycle shared by reads and writes, the memory whose timing
  ``rtl.lookup.axi.fixed_latency_tier`` gives hwsim; with ``pause`` > 0 it also stalls every
  channel at random (the timing is then no longer hwsim's).

Spec (``SATMEM_SPEC``): ``{"bus_bytes": B, "mem_bytes": n, "seed": S, "max_cycles": c,
"lookup": {"memory": "axiram" | "fixed", "bus_bytes": b, "read_latency": r,
"write_latency": w} (absent: no lookup master served), "programs": [{"words": [hex...],
"dram": hex, "pause": p}, ...]}`` (``pause``: the probability that an AXI channel of a slave
stalls on a cycle; ``max_cycles`` per program). Result (``SATMEM_OUT``), per program: the
accept cycle of every command, the (cycle, unit mask) of every retire pulse, the cycle ``idle``
rose (cycle 0 is the cycle the first command is accepted), the AR and AW bursts (address,
length), the final memory (the image's length) and both error flags; with the lookup master
also its AR and AW bursts (address, length, ID, user) and the cycles ``lk_busy`` rose.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import deque

import cocotb
from accel_bench import sample_retire  # rtl/cosim is on the simulator's path
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam


def _pauses(rng: random.Random, p: float):
    while True:
        yield rng.random() < p


LK_PREFIX = "m_axi_lk"


def _bits(value, nbits: int) -> str:
    """``value`` (a signal's) as ``nbits`` characters, MSB first (X and Z kept)."""
    text = str(value)
    return text.rjust(nbits, "0")[-nbits:]


class FixedLatencySlave:
    """A cycle-exact AXI4 slave over ``mem`` (a cocotbext-axi ``Memory``) on ``prefix``.

    It takes an AR, AW and W beat every cycle (unless paused); it gives each burst, in
    address-handshake order (AW before AR on one cycle), one slot a beat on a data path that
    reads and writes share, from the handshake cycle or the end of the previous burst's slots;
    read beat ``k`` is on R ``read_latency`` cycles after its slot (data as in memory at the AR
    handshake), a write's B ``write_latency`` cycles after its last beat's slot (and not before
    the cycle after its last W beat; the bytes land on each W beat, by ``WSTRB``). R beats and B
    responses leave in that order (no interleaving). ``pause`` withholds readiness and
    ``RVALID``/``BVALID`` at random per cycle and channel.
    """

    def __init__(self, dut, prefix: str, mem, bus_bytes: int, read_latency: int,
                 write_latency: int, rng: random.Random):
        self.dut, self.prefix, self.mem = dut, prefix, mem
        self.bus = bus_bytes
        self.read_latency, self.write_latency = read_latency, write_latency
        self.rng = rng
        self.pause = 0.0
        self.reset(0.0)

    def sig(self, name: str):
        return getattr(self.dut, f"{self.prefix}_{name}")

    def reset(self, pause: float) -> None:
        self.pause = pause
        self.bus_free = 0
        self.r_q, self.aw_q, self.w_q, self.b_q = deque(), deque(), deque(), deque()
        self.r_shown = self.b_shown = False
        self.ready = {"ar": 0, "aw": 0, "w": 0}
        for name in ("arready", "awready", "wready", "rvalid", "rid", "rdata", "rlast",
                     "rresp", "bvalid", "bid", "bresp"):
            self.sig(name).value = 0

    def _stall(self) -> bool:
        return bool(self.pause) and self.rng.random() < self.pause

    def drive(self, cycle: int) -> None:
        """This cycle's readiness, R beat and B response (at the falling edge)."""
        for ch in self.ready:
            self.ready[ch] = int(not self._stall())
            self.sig(f"{ch}ready").value = self.ready[ch]
        if not self.r_shown and self.r_q and self.r_q[0][0] <= cycle and not self._stall():
            self.r_shown = True
        if self.r_shown:
            _, rid, data, last = self.r_q[0]
            self.sig("rid").value = rid
            self.sig("rdata").value = data
            self.sig("rlast").value = int(last)
        self.sig("rvalid").value = int(self.r_shown)
        if not self.b_shown and self.b_q and self.b_q[0][0] <= cycle and not self._stall():
            self.b_shown = True
        if self.b_shown:
            self.sig("bid").value = self.b_q[0][1]
        self.sig("bvalid").value = int(self.b_shown)

    def _slots(self, cycle: int, beats: int) -> int:
        first = max(cycle, self.bus_free)
        self.bus_free = first + beats
        return first

    def sample(self, cycle: int) -> None:
        """The handshakes of this cycle (after ReadOnly)."""
        sig, B = self.sig, self.bus
        if int(sig("awvalid").value) and self.ready["aw"]:
            beats = int(sig("awlen").value) + 1
            first = self._slots(cycle, beats)
            self.aw_q.append([int(sig("awaddr").value), beats, int(sig("awid").value),
                              first + beats - 1 + self.write_latency, 0])
        if int(sig("arvalid").value) and self.ready["ar"]:
            addr, blen = int(sig("araddr").value), int(sig("arlen").value)
            first = self._slots(cycle, blen + 1)
            for k in range(blen + 1):
                data = int.from_bytes(self.mem.read(addr + k * B, B), "little")
                self.r_q.append((first + k + self.read_latency, int(sig("arid").value), data,
                                 k == blen))
        if int(sig("wvalid").value) and self.ready["w"]:
            self.w_q.append((_bits(sig("wdata").value, 8 * B), int(sig("wstrb").value),
                             int(sig("wlast").value)))
        while self.aw_q and self.w_q:
            burst = self.aw_q[0]
            data, strb, last = self.w_q.popleft()
            base = burst[0] + burst[4] * B
            for i in range(B):
                if strb >> i & 1:
                    byte = data[len(data) - 8 * (i + 1):len(data) - 8 * i]
                    if set(byte) - {"0", "1"}:
                        raise AssertionError(f"write of undefined byte {byte!r} to "
                                             f"{base + i:#x}")
                    self.mem.write(base + i, bytes([int(byte, 2)]))
            burst[4] += 1
            if last != (burst[4] == burst[1]):
                raise AssertionError(f"WLAST {last} on beat {burst[4]} of {burst[1]} at "
                                     f"{burst[0]:#x}")
            if burst[4] == burst[1]:
                self.b_q.append((max(burst[3], cycle + 1), burst[2]))
                self.aw_q.popleft()
        if self.r_shown and int(sig("rready").value):
            self.r_q.popleft()
            self.r_shown = False
        if self.b_shown and int(sig("bready").value):
            self.b_q.popleft()
            self.b_shown = False


class TB:
    """Clock, reset, an AXI4 RAM on ``m_axi``, the lookup master's memory when ``lookup``
    asks for one, and a command driver for one DUT."""

    def __init__(self, dut, mem_bytes: int, seed: int, lookup: dict | None = None):
        self.dut = dut
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        # the AXI models log every burst at INFO: seconds of simulation time and a huge log
        for prefix in ("m_axi", LK_PREFIX):
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst,
                          reset_active_level=True, size=mem_bytes)
        self.lk_ram = self.lk_slave = None
        kind = (lookup or {}).get("memory")
        if kind == "axiram":
            self.lk_ram = AxiRam(AxiBus.from_prefix(dut, LK_PREFIX), dut.clk, dut.rst,
                                 reset_active_level=True, mem=self.ram.mem)
        elif kind == "fixed":
            self.lk_slave = FixedLatencySlave(dut, LK_PREFIX, self.ram, lookup["bus_bytes"],
                                              lookup["read_latency"], lookup["write_latency"],
                                              self.rng)
        elif kind is not None:
            raise ValueError(f"lookup memory must be 'axiram' or 'fixed', not {kind!r}")
        elif hasattr(dut, f"{LK_PREFIX}_arvalid"):  # a lookup master nobody serves: tied off
            for name in ("arready", "awready", "wready", "rvalid", "rid", "rdata", "rlast",
                         "rresp", "bvalid", "bid", "bresp"):
                getattr(dut, f"{LK_PREFIX}_{name}").value = 0
        self.lookup = kind is not None

    def channels(self):
        chans = []
        for ram in (self.ram, self.lk_ram):
            if ram is not None:
                r, w = ram.read_if, ram.write_if
                chans += [r.ar_channel, r.r_channel, w.aw_channel, w.w_channel, w.b_channel]
        return chans

    async def reset(self, pause: float) -> None:
        d = self.dut
        d.rst.value = 1
        d.cmd__valid.value = 0
        d.cmd__payload.value = 0
        for ch in self.channels():
            ch.set_pause_generator(_pauses(self.rng, pause) if pause else None)
            ch.pause = False  # clearing the generator leaves the last value it set
        if self.lk_slave is not None:
            self.lk_slave.reset(pause)
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0

    async def run_program(self, words: list[int], image: bytes, *,
                          max_cycles: int = 1_000_000) -> dict:
        d = self.dut
        self.ram.write(0, bytes(self.ram.size))
        self.ram.write(0, image)
        accept, retires, ar, aw, lk_ar, lk_aw, lk_starts = [], [], [], [], [], [], []
        idx, cycle, started, retired, lk_busy = 0, 0, False, 0, 0
        slave = self.lk_slave
        while True:
            await FallingEdge(d.clk)
            d.cmd__valid.value = int(idx < len(words))
            d.cmd__payload.value = words[idx] if idx < len(words) else 0
            if slave is not None:
                slave.drive(cycle)
            await ReadOnly()
            if idx < len(words) and int(d.cmd__ready.value):
                started = True
                accept.append(cycle)
                idx += 1
            retired += sample_retire(d, cycle, retires)
            for ch, log in (("ar", ar), ("aw", aw)):
                if int(getattr(d, f"m_axi_{ch}valid").value) and \
                        int(getattr(d, f"m_axi_{ch}ready").value):
                    log.append((int(getattr(d, f"m_axi_{ch}addr").value),
                                int(getattr(d, f"m_axi_{ch}len").value)))
            if self.lookup:
                for ch, log in (("ar", lk_ar), ("aw", lk_aw)):
                    sig = {n: getattr(d, f"{LK_PREFIX}_{ch}{n}") for n in (
                        "valid", "ready", "addr", "len", "id", "user")}
                    if int(sig["valid"].value) and int(sig["ready"].value):
                        log.append(tuple(int(sig[n].value) for n in ("addr", "len", "id",
                                                                      "user")))
                busy = int(d.lk_busy.value)
                if busy and not lk_busy:
                    lk_starts.append(cycle)
                lk_busy = busy
                if slave is not None:
                    slave.sample(cycle)
            if retired >= len(words) and int(d.idle.value):
                break
            if started:
                cycle += 1
            if cycle > max_cycles:
                state = {s: str(getattr(d, s).value) for s in (
                    "idle", "m_axi_arvalid", "m_axi_arready", "m_axi_rvalid", "m_axi_rready",
                    "m_axi_awvalid", "m_axi_awready", "m_axi_wvalid", "m_axi_wready",
                    "m_axi_bvalid", "m_axi_bready")}
                raise AssertionError(f"program did not finish within {max_cycles} cycles: "
                                     f"{idx} of {len(words)} commands accepted, {retired} "
                                     f"retired, {len(ar)} AR, {len(aw)} AW bursts; {state}")
        await FallingEdge(d.clk)
        d.cmd__valid.value = 0
        out = {"accept": accept, "retires": retires, "idle_cycle": cycle, "ar": ar, "aw": aw,
               "dram": self.ram.read(0, len(image)).hex(), "error": int(d.error.value),
               "axi_error": int(d.axi_error.value)}
        if self.lookup:
            out.update(lk_ar=lk_ar, lk_aw=lk_aw, lk_starts=lk_starts)
        return out


@cocotb.test()
async def programs(dut):
    """Run the programs of ``$SATMEM_SPEC`` and write the observations to ``$SATMEM_OUT``."""
    with open(os.environ["SATMEM_SPEC"]) as f:
        spec = json.load(f)
    tb = TB(dut, spec["mem_bytes"], spec.get("seed", 0), spec.get("lookup"))
    results = []
    for prog in spec["programs"]:
        await tb.reset(prog.get("pause", 0.0))
        words = [int(w, 16) for w in prog["words"]]
        results.append(await tb.run_program(words, bytes.fromhex(prog["dram"]),
                                            max_cycles=spec.get("max_cycles", 1_000_000)))
    with open(os.environ["SATMEM_OUT"], "w") as f:
        json.dump(results, f)
