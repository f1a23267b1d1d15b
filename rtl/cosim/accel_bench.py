"""cocotb bench for ``satmem_top``: serves the external memory port and drives command words.

Loaded by the simulator, not by pytest (no torch here: it would cost seconds per run). The
pytest side (``test_accelerator_cocotb.py``) writes a JSON spec of programs, runs this module
through ``cocotb_tools.runner``, and compares what it writes back with hwsim and torch.

Spec (``SATMEM_SPEC``): ``{"latency": L, "bus_bytes": B, "bytes_per_cycle": W, "seed": S,
"programs": [{"words":
[hex...], "dram": hex, "idle": p, "backpressure": p}, ...]}``. Result (``SATMEM_OUT``): per
program the accept and retire cycle of every command, the final DRAM image and the error flag.
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


class TB:
    """Clock, reset, a fixed-latency memory model and a command driver for one DUT."""

    def __init__(self, dut, latency: int, bus_bytes: int, bytes_per_cycle: float, seed: int):
        self.dut = dut
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
        d.mem_req__ready.value = 1
        d.mem_rsp__valid.value = 0
        d.mem_rsp__payload.value = 0
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0

    def _decode_req(self, value, header_only: bool = False) -> tuple[int, int, int, int]:
        """Split a request payload. A read's ``wdata`` is don't-care (X in Icarus when it comes
        from an unwritten buffer entry); a write's stored bytes must be fully defined."""
        bits = str(value)  # MSB first
        head = REQ_ADDR_BITS + 1 + REQ_NBYTES_BITS
        word = int(bits[-head:], 2)
        addr = word & (2**REQ_ADDR_BITS - 1)
        write = (word >> REQ_ADDR_BITS) & 1
        nbytes = (word >> (REQ_ADDR_BITS + 1)) & (2**REQ_NBYTES_BITS - 1)
        wbits = bits[:-head]
        if not write or header_only:
            return addr, write, nbytes, 0
        stored = wbits[len(wbits) - 8 * nbytes:]
        if set(stored) - {"0", "1"}:
            raise AssertionError(f"write of undefined data {stored!r} to {addr:#x}")
        return addr, write, nbytes, int(stored or "0", 2)

    async def run_program(self, words: list[int], dram: bytearray, *, idle: float = 0.0,
                          backpressure: float = 0.0, max_cycles: int = 2_000_000) -> dict:
        """Drive ``words`` and serve memory until every command has retired.

        Each cycle: at the falling edge drive this cycle's inputs, then at ReadOnly sample the
        handshakes that the next rising edge will complete. Cycle 0 is the cycle in which the
        first command is accepted.
        """
        d = self.dut
        pending: deque[tuple[int, int]] = deque()
        accept, retire = [], []
        idx, cycle, started = 0, 0, False
        presented = 0  # cycles the current request has been offered
        while len(retire) < len(words):
            await FallingEdge(d.clk)
            if pending and pending[0][0] <= cycle:
                d.mem_rsp__valid.value = 1
                d.mem_rsp__payload.value = pending.popleft()[1]
            else:
                d.mem_rsp__valid.value = 0
            offer = idx < len(words) and not (idle and self.rng.random() < idle)
            d.cmd__valid.value = int(offer)
            d.cmd__payload.value = words[idx] if idx < len(words) else 0
            # A request of n bytes occupies the memory for ceil(n / bytes_per_cycle) cycles: it
            # is accepted on the last of them (hwsim.timing.dram_request_cycles).
            ready = not (backpressure and self.rng.random() < backpressure)
            if int(d.mem_req__valid.value):
                _, _, nbytes, _ = self._decode_req(d.mem_req__payload.value, header_only=True)
                slots = max(1, math.ceil(nbytes / self.bytes_per_cycle - 1e-9))
                ready = ready and presented + 1 >= slots
            d.mem_req__ready.value = int(ready)
            await ReadOnly()
            if offer and int(d.cmd__ready.value):
                started = True
                accept.append(cycle)
                idx += 1
            if int(d.mem_req__valid.value) and not ready:
                presented += 1
            if ready and int(d.mem_req__valid.value):
                presented = 0
                addr, write, nbytes, wdata = self._decode_req(d.mem_req__payload.value)
                if write:
                    dram[addr:addr + nbytes] = wdata.to_bytes(self.bus_bytes, "little")[:nbytes]
                else:
                    data = int.from_bytes(bytes(dram[addr:addr + nbytes]), "little")
                    pending.append((cycle + self.latency, data))
            if int(d.retire.value):
                retire.append(cycle)
            if started:
                cycle += 1
            if cycle > max_cycles:
                raise AssertionError(f"program did not finish within {max_cycles} cycles")
        await FallingEdge(d.clk)
        d.cmd__valid.value = 0
        d.mem_rsp__valid.value = 0
        return {"accept": accept, "retire": retire, "dram": dram.hex(),
                "error": int(d.error.value)}


async def run_test(dut, spec: dict) -> list[dict]:
    """Run every program of ``spec`` on ``dut`` with a reset before each."""
    tb = TB(dut, spec["latency"], spec["bus_bytes"], spec["bytes_per_cycle"], spec.get("seed", 0))
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
