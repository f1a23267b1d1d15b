"""The machine in gates: Amaranth components implementing :mod:`hwsim`'s ISA.

One home per unit, named as in ``hwsim/units/``:

=======  ============================  =====================  ==============================
unit     queue (``isa.Unit``): opcode  rtl                    component
=======  ============================  =====================  ==============================
dma      DMA_IN: LOAD, DMA_OUT: STORE  ``rtl/dma.py``         ``DmaIn``, ``DmaOut``
array    ARRAY: GEMM                   ``rtl/array/``         ``ArrayUnit`` (``unit.py``),
                                                              ``SystolicArray``, ``PE``
sore     SORE: PRUNE                   ``rtl/sore.py``        ``Sore``
vector   VECTOR: UPDATE                ``rtl/vector.py``      ``VectorUnit``
control  CONTROL: SETREG, SYNC         ``rtl/controller.py``  ``Controller``
=======  ============================  =====================  ==============================

How they are put together: :mod:`rtl.decode` reads command words by ``hwsim.isa``'s field
layout (the only source of widths, offsets and opcodes); :mod:`rtl.units` is the protocol a
unit's component keeps and the entry that places it in the top; :data:`rtl.accelerator.UNITS`
lists one entry per queue, and the controller's queues, the units' command fields and the
buffer multiplexers of :class:`rtl.accelerator.Accelerator` are built from it. Adding a unit
(the lookup engine next) is a module here with a :class:`rtl.units.UnitComponent` subclass and
one :class:`rtl.units.UnitSlot` in ``UNITS``.

Shared blocks: :mod:`rtl.buffers`, :mod:`rtl.fp32`, :mod:`rtl.axi` (the AXI4 top). Output and
checks: :mod:`rtl.verilog` (Verilog and manifest), :mod:`rtl.cosim` (cocotb benches),
``rtl/synth`` (FPGA synthesis reports).
"""
