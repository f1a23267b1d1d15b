"""cocotb bench for ``satmem_top``: serves the external memory port and drives command words.

Loaded by the simulator, not by pytest (no torch here: it would cost seconds per run). The
pytest side (``test_accelerator_cocotb.py``) writes a JSON spec of programs, runs this module
through ``cocotb_tools.runner``, and compares what it writes back with hwsim and torch.

Spec (``SATMEM_SPEC``): ``{"latency": L, "bus_bytes": B, "bytes_per_cycle": W, "seed": S,
"lookup": {"tiers": [MemoryTier fields...], "clock_mhz": f, "tag_bits": n} (absent for a top
without the lookup engine),
"programs": [{"words": [hex...], "dram": hex, "idle": p, "backpressure": p}, ...]}``.
Result (``SATMEM_OUT``): per program the accept cycle of every command, the (cycle, unit mask)
of every retire pulse, the final DRAM image and the error flag.

The lookup engine's table memory (``lk_rd_*``, ``lk_wr_*``) is :class:`TableMemory`: the
tier model of :mod:`hwsim.units.lookup_timing` itself, request by request, so the RTL's row
pipeline is checked against hwsim's cycle by cycle (numba, no torch).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

REQ_ADDR_BITS, REQ_NBYTES_BITS = 32, 8


def sample_retire(d, cycle: int, retires: list) -> int:
    """Read the top's ``retire`` pulses on ``cycle`` (after ReadOnly): log ``(cycle, mask)`` in
    ``retires`` when any unit retired, and return how many commands did. X or Z on ``retire``
    is a failure."""
    if not d.retire.value.is_resolvable:
        raise AssertionError(f"retire is {d.retire.value} on cycle {cycle}")
    mask = int(d.retire.value)
    if mask:
        retires.append((cycle, mask))
    return bin(mask).count("1")

def _split_request(value, with_data: bool) -> tuple[int, int, int]:
    """``(addr, nbytes, wdata)`` of a request payload. Only a write's stored bytes must be
    defined (a read's payload has no data; Icarus shows never-written buffer entries as X)."""
    bits = str(value)  # MSB first
    head = REQ_ADDR_BITS + REQ_NBYTES_BITS
    word = int(bits[-head:], 2)
    addr = word & (2**REQ_ADDR_BITS - 1)
    nbytes = word >> REQ_ADDR_BITS
    if not with_data:
        return addr, nbytes, 0
    wbits = bits[:-head]
    stored = wbits[len(wbits) - 8 * nbytes:]
    if set(stored) - {"0", "1"}:
        raise AssertionError(f"write of undefined data {stored!r} to {addr:#x}")
    return addr, nbytes, int(stored or "0", 2)


class _Channel:
    """Pacing of one memory channel: a request of n bytes is accepted on the last of the
    ceil(n / bytes_per_cycle) cycles it is offered (hwsim.units.dma.dram_request_cycles)."""

    def __init__(self, bytes_per_cycle: float):
        self.bytes_per_cycle = bytes_per_cycle
        self.offered = 0

    def ready(self, valid: bool, nbytes: int) -> bool:
        slots = max(1, math.ceil(nbytes / self.bytes_per_cycle - 1e-9))
        return valid and self.offered + 1 >= slots

    def step(self, valid: bool, accepted: bool) -> None:
        self.offered = 0 if accepted or not valid else self.offered + 1


class TableMemory:
    """The lookup tiers as hwsim times them, serving ``lk_rd_req``/``lk_wr_req`` and answering on
    ``lk_rd_rsp``/``lk_wr_rsp``.

    A request offered on cycle ``t`` of a lookup command (cycle 0 the one before ``lk_busy``
    rises) is accepted when its channels have room (``hwsim.units.lookup_timing._after``), at
    most one a cycle, a write before a read (hwsim's one request port). It is served by the
    tier's banked model; a read is answered on the cycle the one response port books for it
    (``_respond``) with the row's bytes as they are in memory when it is accepted; a write
    stores its bytes when accepted and is acknowledged on the cycle the one write-response port
    books from its completion (latency included). Every command starts from an idle memory, as
    hwsim's timing of one command does.
    """

    def __init__(self, spec: dict | None, dram: bytearray):
        self.dram = dram
        self.params = []
        if spec:
            from hwsim.config import MemoryTier
            from hwsim.units.lookup_timing import TierParams
            self.params = [TierParams(MemoryTier(**t), spec["clock_mhz"]).args()
                           for t in spec["tiers"]]
        self.origin = None
        self.answers, self.acks = {}, {}

    def _begin(self):
        import numpy as np

        from hwsim.units.lookup_timing import _RESPONSE_SPAN, _state
        self.state = [_state(p) for p in self.params]
        self.rings = [(np.full((p[0], p[10]), -1, np.int64), np.zeros(p[0], np.int64))
                      for p in self.params]
        self.taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
        self.wr_taken = np.full((_RESPONSE_SPAN, 2), -1, np.int64)
        self.totals = np.zeros(4, np.int64)
        self.answers, self.acks = {}, {}

    def drive(self, d, cycle: int, tag_bits: int) -> tuple[bool, bool]:
        """Follow ``lk_busy`` and drive cycle ``cycle``'s answers and readiness (at the falling
        edge); returns the (read, write) readiness given."""
        if not self.params:  # a top without the lookup engine
            return False, False
        busy = int(d.lk_busy.value)
        if busy and self.origin is None:
            self.origin = cycle - 1
            self._begin()
        elif not busy:
            self.origin = None
        if self.origin is None:
            for port in ("lk_rd_rsp__valid", "lk_rd_req__ready", "lk_wr_rsp__valid",
                         "lk_wr_req__ready"):
                getattr(d, port).value = 0
            return False, False
        from hwsim.units.lookup_timing import _after
        t = cycle - self.origin
        answer = self.answers.pop(t, None)
        d.lk_rd_rsp__valid.value = int(answer is not None)
        d.lk_rd_rsp__payload.value = answer or 0
        ack = self.acks.pop(t, None)
        d.lk_wr_rsp__valid.value = int(ack is not None)
        d.lk_wr_rsp__payload.value = ack or 0
        rd_ready = wr_ready = False
        if int(d.lk_wr_req__valid.value):
            addr, nbytes, tier, _ = self._request(d, "lk_wr_req", tag_bits)
            wr_ready = _after(addr, nbytes, self.params[tier], *self.rings[tier]) <= t
        if not wr_ready and int(d.lk_rd_req__valid.value):
            addr, nbytes, tier, _ = self._request(d, "lk_rd_req", tag_bits)
            rd_ready = _after(addr, nbytes, self.params[tier], *self.rings[tier]) <= t
        d.lk_rd_req__ready.value = int(rd_ready)
        d.lk_wr_req__ready.value = int(wr_ready)
        return rd_ready, wr_ready

    @staticmethod
    def _request(d, port: str, tag_bits: int) -> tuple[int, int, int, int]:
        bits = str(getattr(d, f"{port}__payload").value)  # MSB first
        v = int(bits[-(51 + tag_bits):], 2)
        return v & 0xFFFFFFFF, (v >> 32) & 0xFFFF, (v >> 48) & 7, (v >> 51) & ((1 << tag_bits) - 1)

    def sample(self, d, cycle: int, ready: tuple[bool, bool], tag_bits: int) -> None:
        """After ReadOnly: serve the request accepted on ``cycle``."""
        from hwsim.units.lookup_timing import _issue, _respond
        rd_ready, wr_ready = ready
        if not (rd_ready or wr_ready):
            return
        t = cycle - self.origin
        port = "lk_wr_req" if wr_ready else "lk_rd_req"
        addr, nbytes, tier, tag = self._request(d, port, tag_bits)
        ring, cnt = self.rings[tier]
        fin, _ = _issue(addr, nbytes, wr_ready, t, self.params[tier], self.state[tier], ring,
                        cnt, self.totals)
        if wr_ready:
            bits = str(d.lk_wr_req__payload.value)
            data = bits[:-(51 + tag_bits)]
            stored = data[len(data) - 8 * nbytes:]
            if set(stored) - {"0", "1"}:
                raise AssertionError(f"row write of undefined data {stored!r} to {addr:#x}")
            self.dram[addr:addr + nbytes] = int(stored, 2).to_bytes(nbytes, "little")
            self.acks[int(_respond(fin, t, self.wr_taken, 1))] = tag
        else:
            at = int(_respond(fin, t, self.taken, 1))
            row = int.from_bytes(bytes(self.dram[addr:addr + nbytes]), "little")
            self.answers[at] = tag | (row << tag_bits)


class TB:
    """Clock, reset, a fixed-latency two-channel memory and a command driver for one DUT."""

    def __init__(self, dut, latency: int, bus_bytes: int, bytes_per_cycle: float, seed: int,
                 lookup: dict | None = None):
        self.dut = dut
        self.lookup = lookup
        self.tag_bits = lookup["tag_bits"] if lookup else 0
        self.latency = latency
        self.bus_bytes = bus_bytes
        self.bytes_per_cycle = bytes_per_cycle
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def reset(self) -> None:
        d = self.dut
        d.rst.value = 1
        d.cmd__valid.value = 0
        d.cmd__payload.value = 0
        d.mem_rd_req__ready.value = 0
        d.mem_wr_req__ready.value = 0
        d.mem_rd_rsp__valid.value = 0
        d.mem_rd_rsp__payload.value = 0
        if self.lookup:  # a top with the lookup engine
            for port in ("lk_rd_req__ready", "lk_rd_rsp__valid", "lk_rd_rsp__payload",
                         "lk_wr_req__ready", "lk_wr_rsp__valid", "lk_wr_rsp__payload"):
                getattr(d, port).value = 0
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0

    async def run_program(self, words: list[int], dram: bytearray, *, idle: float = 0.0,
                          backpressure: float = 0.0, max_cycles: int = 2_000_000) -> dict:
        """Drive ``words`` and serve memory until every command has retired.

        Each cycle: at the falling edge drive this cycle's inputs, then at ReadOnly sample the
        handshakes that the next rising edge completes. Cycle 0 is the cycle the first command
        is accepted. ``idle`` withholds commands and ``backpressure`` withholds memory
        readiness at random (values must still match; cycles then differ from hwsim's).
        """
        d = self.dut
        pending: deque[tuple[int, int]] = deque()
        rd_ch, wr_ch = _Channel(self.bytes_per_cycle), _Channel(self.bytes_per_cycle)
        accept, retires = [], []
        table = TableMemory(self.lookup, dram)
        idx, cycle, started, retired = 0, 0, False, 0
        while retired < len(words):
            await FallingEdge(d.clk)
            if pending and pending[0][0] <= cycle:
                d.mem_rd_rsp__valid.value = 1
                d.mem_rd_rsp__payload.value = pending.popleft()[1]
            else:
                d.mem_rd_rsp__valid.value = 0
            offer = idx < len(words) and not (idle and self.rng.random() < idle)
            d.cmd__valid.value = int(offer)
            d.cmd__payload.value = words[idx] if idx < len(words) else 0
            # memory readiness for this cycle, from the requests the DUT is offering
            rd_valid = bool(int(d.mem_rd_req__valid.value))
            wr_valid = bool(int(d.mem_wr_req__valid.value))
            rd_n = _split_request(d.mem_rd_req__payload.value, False)[1] if rd_valid else 0
            wr_n = _split_request(d.mem_wr_req__payload.value, False)[1] if wr_valid else 0
            hold = backpressure and self.rng.random() < backpressure
            rd_ready = rd_ch.ready(rd_valid, rd_n) and not hold
            wr_ready = wr_ch.ready(wr_valid, wr_n) and not hold
            d.mem_rd_req__ready.value = int(rd_ready)
            d.mem_wr_req__ready.value = int(wr_ready)
            lk_ready = table.drive(d, cycle, self.tag_bits)
            await ReadOnly()
            if offer and int(d.cmd__ready.value):
                started = True
                accept.append(cycle)
                idx += 1
            rd_ch.step(rd_valid, rd_ready)
            wr_ch.step(wr_valid, wr_ready)
            if rd_ready:
                addr, nbytes, _ = _split_request(d.mem_rd_req__payload.value, False)
                data = int.from_bytes(bytes(dram[addr:addr + nbytes]), "little")
                pending.append((cycle + self.latency, data))
            if wr_ready:
                addr, nbytes, wdata = _split_request(d.mem_wr_req__payload.value, True)
                dram[addr:addr + nbytes] = wdata.to_bytes(self.bus_bytes, "little")[:nbytes]
            table.sample(d, cycle, lk_ready, self.tag_bits)
            retired += sample_retire(d, cycle, retires)
            if int(d.error.value):
                break  # a rejected command never retires
            if started:
                cycle += 1
            if cycle > max_cycles:
                raise AssertionError(f"program did not finish within {max_cycles} cycles")
        await FallingEdge(d.clk)
        d.cmd__valid.value = 0
        d.mem_rd_rsp__valid.value = 0
        return {"accept": accept, "retires": retires, "dram": dram.hex(),
                "error": int(d.error.value)}


async def run_test(dut, spec: dict) -> list[dict]:
    """Run every program of ``spec`` on ``dut`` with a reset before each."""
    tb = TB(dut, spec["latency"], spec["bus_bytes"], spec["bytes_per_cycle"], spec.get("seed", 0),
            spec.get("lookup"))
    results = []
    for prog in spec["programs"]:
        await tb.reset()
        words = [int(w, 16) for w in prog["words"]]
        dram = bytearray(bytes.fromhex(prog["dram"]))
        results.append(await tb.run_program(words, dram, idle=prog.get("idle", 0.0),
                                            backpressure=prog.get("backpressure", 0.0)))
    return results


@cocotb.test()
async def programs(dut):
    """Run the programs of ``$SATMEM_SPEC`` and write the observations to ``$SATMEM_OUT``."""
    with open(os.environ["SATMEM_SPEC"]) as f:
        spec = json.load(f)
    results = await run_test(dut, spec)
    with open(os.environ["SATMEM_OUT"], "w") as f:
        json.dump(results, f)
