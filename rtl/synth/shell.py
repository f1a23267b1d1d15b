# amaranth: UnusedElaboratable=no
"""The shell of a config's machine as designs of their own: host interface, memory channels,
controller, DMA and the buffer port multiplexers.

Everything of :class:`rtl.kernel.SatmemKernel` (``lookup=False``) that is not the array, an
engine or a buffer: the ``s_axi_control`` slave, the command fetcher and its AXI4 master, the
kernel's own logic around them, the DRAM channel splitter and one AXI4 master per channel (or the
one :class:`~rtl.axi.AxiBridge` of a single-channel config), the controller, DMA-in, DMA-out and
what the accelerator top wires between its units and buffers. Each design is the very instance
the kernel builds (taken from its elaboration, not constructed again with copied arguments), so
it is what ``satmem rtl package`` writes; a part whose logic sits in the parent's own module (the
kernel's argument latches, the top's buffer multiplexers) is that parent with its submodules
*hollowed*: they elaborate to nothing and their ports become the design's ports, so Yosys keeps
exactly the parent's own logic. A change in one part leaves the others' Verilog, and so their
cached results (``--reuse``, ``--previous``), as they were.
"""

from __future__ import annotations

from amaranth import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwsim.config import AcceleratorConfig

from ..accelerator import buffer_shapes, top_units
from ..kernel import SatmemKernel
from .designs import _Design

__all__: list[str] = []

# SatmemKernel's submodules hollowed in kernel_glue: its fetch bridge stays, since the kernel
# ties its write requests off, which only in the kernel removes the bridge's write path
_KERNEL_PARTS = ("control", "core", "fetcher")
_BRIDGE_PARAMS = ("bus_bytes", "req_bytes", "span", "max_reads", "max_writes", "id_width",
                  "axi_id", "addr_bits")  # a ChannelBridge's logic (its prefix only names ports)


def _kernel(config: AcceleratorConfig) -> SatmemKernel:
    """The SAT-only kernel (the lookup engine's AXI port is not part of the shell here)."""
    return SatmemKernel(config, lookup=False)


def _child(parent, *path):
    """The submodule at ``path`` below ``parent`` as ``parent``'s elaboration builds it."""
    for name in path:
        module = _elaborate(parent)
        parent = module.submodules[name]
        _discard(module, keep=parent)
    return parent


def _elaborate(obj) -> Module:
    """``obj.elaborate(None)``, ``obj`` marked used: its module stands in for it."""
    obj._MustUse__used = True
    return obj.elaborate(None)


def _discard(module: Module, keep=None) -> None:
    """Mark ``module`` and its submodules other than ``keep`` as used: they were built only to
    reach ``keep`` or to read their parameters, and Amaranth warns of an elaboratable that is
    never elaborated. (Amaranth has no public way to list a module's submodules.)"""
    subs = [s for s, _ in (*module._named_submodules.values(), *module._anon_submodules)]
    for obj in (module, *subs):
        if obj is not keep:
            obj._MustUse__used = True


def _empty(platform):
    return Module()


class _Hollowed(wiring.Component):
    """``parent``'s own logic: its elaboration with the submodules ``hollow`` elaborated to
    nothing, their ports lifted to this component's ports.

    Members: ``parent``'s own, by the same names; then per hollowed submodule ``s`` and port
    path ``p``, ``s__p`` (``__`` between path items): an ``In`` where the submodule drove the
    signal, an ``Out`` where the parent drove it.
    """

    def __init__(self, parent, hollow: tuple[str, ...]):
        self._module = _elaborate(parent)
        self._module._MustUse__used = True  # it is this component's logic
        self._lifts = []  # (our name, their value, True: we drive theirs)
        members = {}
        for path, member, value in parent.signature.flatten(parent):
            name = "__".join(map(str, path))
            value = Value.cast(value)
            members[name] = member.flow(len(value))
            self._lifts.append((name, value, member.flow == In))
        for sub_name in hollow:
            sub = self._module.submodules[sub_name]
            sub.elaborate = _empty
            sub._MustUse__used = True  # its place in the design is its lifted ports
            for path, member, value in sub.signature.flatten(sub):
                name = "__".join(map(str, (sub_name, *path)))
                value = Value.cast(value)
                drove = member.flow == Out
                members[name] = (In if drove else Out)(len(value))
                self._lifts.append((name, value, drove))
        self.hollow = hollow
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.parent = self._module
        for name, value, ours_in in self._lifts:
            ours = getattr(self, name)
            m.d.comb += value.eq(ours) if ours_in else ours.eq(value)
        return m


def _shell_designs(config: AcceleratorConfig) -> tuple[list[_Design], str]:
    """The shell designs of ``config``'s kernel (:mod:`rtl.synth.shell`), in the order the
    report lists them; each has ``shell`` (its label in the verdict) and ``count`` (identical
    instances in the machine: the channel masters).

    Returns the designs and a note (empty, or why there are none).
    """
    try:
        kernel = _kernel(config)
        ports = _elaborate(_child(kernel, "core"))
    except (TypeError, ValueError) as e:
        return [], (f"The shell (kernel, channels, controller, DMA) of `{config.name}` cannot be "
                    f"built ({e}); it is not counted.")
    name = config.name
    control = _child(kernel, "control")
    fetch = kernel.fetch_bridge  # in kernel_glue
    designs = [
        _Design("kernel_control", f"AxiLiteControl({control.nargs}): `s_axi_control`, the "
                "ap_ctrl_hs, interrupt, status and cycle registers and "
                f"{control.nargs} 64-bit arguments", None,
                lambda: _child(_kernel(config), "control"),
                shell="AXI4-Lite control slave"),
        _Design("kernel_fetcher", "CommandFetcher: the program's 16-byte words, read in order, "
                "into the controller", None, lambda: _child(_kernel(config), "fetcher"),
                shell="command fetcher"),
        _Design("kernel_glue", f"SatmemKernel({name}, lookup=False) with its control slave, "
                "fetcher and core hollowed: the command fetcher's AXI4 master (`m_axi_cmd`, "
                f"AxiBridge({fetch.bus_bytes}), its write path tied off as in the kernel), the "
                "registered reset, the argument latches, the 64-bit base adders of every "
                "master's addresses, the run FSM, the cycle and retire counters", None,
                lambda: _Hollowed(_kernel(config), _KERNEL_PARTS),
                shell="kernel glue and command fetch AXI4 master"),
    ]
    if config.dram.channels > 1:
        split = ports.submodules["split"]
        bridges = [ports.submodules[f"axi_ch{c}"] for c in range(config.dram.channels)]
        params = {tuple(getattr(b, p) for p in _BRIDGE_PARAMS) for b in bridges}
        assert len(params) == 1, f"the channel masters differ: {params}"
        b = bridges[0]
        designs += [
            _Design("channel_splitter", f"ChannelSplitter({split.bus_bytes}, {split.channels}, "
                    f"{split.interleave}, max_reads={split.max_reads}): the DMA's requests "
                    "over the DRAM channels", None,
                    lambda: _child(_kernel(config), "core", "split"),
                    shell="DRAM channel splitter"),
            _Design("channel_bridge", f"ChannelBridge({b.bus_bytes}, {b.req_bytes}, {b.span}, "
                    f"max_reads={b.max_reads}, max_writes={b.max_writes}, "
                    f"addr_bits={b.addr_bits}): channel 0's AXI4 master; the {len(bridges)} "
                    "channels' are the same logic (their prefixes name ports only)", None,
                    lambda: _child(_kernel(config), "core", "axi_ch0"),
                    shell="DRAM channel AXI4 masters", count=len(bridges)),
        ]
    else:
        b = ports.submodules["axi"]
        designs.append(
            _Design("dma_axi", f"AxiBridge({b.bus_bytes}, max_reads={b.max_reads}, "
                    f"max_writes={b.max_writes}): the DMA's AXI4 master", None,
                    lambda: _child(_kernel(config), "core", "axi"),
                    shell="DMA AXI4 master"))
    acc = _elaborate(ports.submodules["core"])
    _discard(ports)
    _discard(acc)
    ctrl, dma_in = acc.submodules["ctrl"], acc.submodules["dma_in"]
    units = [slot.name for slot in top_units(config, lookup=False)]
    wide = ", wide: " + ", ".join(f"{b.name} {k} entries a request"
                                  for b, k in dma_in.wide.items()) if dma_in.wide else ""
    designs += [
        _Design("controller", f"Controller({', '.join(u.name for u in ctrl.units)}, "
                f"queue_depth={ctrl.queue_depth}): queues, semaphores, SETREG and SYNC", None,
                lambda: _child(_kernel(config), "core", "core", "ctrl"), shell="controller"),
        _Design("dma_in", f"DmaIn({name}): LOAD, {config.dram.bus_bytes}-byte bus{wide}",
                None, lambda: _child(_kernel(config), "core", "core", "dma_in"),
                shell="DMA-in"),
        _Design("dma_out", f"DmaOut({name}): STORE, {config.dram.bus_bytes}-byte bus", None,
                lambda: _child(_kernel(config), "core", "core", "dma_out"), shell="DMA-out"),
        _Design("unit_muxes", f"Accelerator({name}, lookup=False) with the controller, "
                f"{', '.join(units)} and the buffers hollowed: each buffer port's multiplexer "
                "between the units that use it, the read data to each reader, the command "
                "fields and register inputs of each unit", None,
                lambda: _Hollowed(_child(_kernel(config), "core", "core"), _acc_parts(config)),
                shell="buffer port multiplexers"),
    ]
    return designs, ""


def _acc_parts(config: AcceleratorConfig) -> tuple[str, ...]:
    """The submodules of ``Accelerator(config, lookup=False)``: controller, units, buffers."""
    return ("ctrl", *(slot.name for slot in top_units(config, lookup=False)),
            *(code.name.lower() for code in buffer_shapes(config)))
