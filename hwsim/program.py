"""Programs: the command table the machine runs, plus where its tensors live in DRAM.

One representation serves every layer: a **command table**, an ``int64`` array with one row per
command and the columns :data:`COLUMNS`. The columns are derived from :mod:`hwsim.isa`'s field
layout and nothing else: the header (``opcode``, ``wait``, ``signal``), then every field name of
every opcode once, in opcode order (a name two opcodes share, such as ``rows``, is one column),
then the compiler's annotations :data:`ANNOTATIONS`, which are not ISA fields and never reach
the binary encoding. The compiler emits tables; the engine's timing mode, traces and the RTL
testbenches read them; :class:`hwsim.isa.Command` objects are the readable view of a row
(:func:`table_to_commands`, :func:`commands_to_table`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import isa

__all__ = [
    "ANNOTATIONS",
    "COL",
    "COLUMNS",
    "Program",
    "TensorRef",
    "commands_to_table",
    "empty_table",
    "table_to_commands",
]


def _field_columns() -> tuple[str, ...]:
    names = ["opcode", "wait", "signal"]
    for op in isa.Opcode:
        for name, _ in isa.command_class(op).FIELDS:
            if name not in names:
                names.append(name)
    return tuple(names)


ANNOTATIONS = ("vperiod", "vbytes", "vflops", "xbytes", "trows")
"""Compiler annotations of a row (not ISA fields): ``vperiod`` (an UPDATE row that is an
elementwise vector pass issues one entry every ``vperiod`` cycles; 0 for an optimizer step),
``vbytes`` and ``vflops`` (DRAM bytes and operations per element of a vector row),
``xbytes`` (DRAM bytes a PRUNE streams outside the DMA queues) and ``trows`` (rows of each
chunk's table, ``2**tau``, from which timing mode draws a lookup command's rows).
:mod:`hwsim.units.vector`, :mod:`hwsim.units.sore` and :mod:`hwsim.units.lookup` state how each
is used."""

COLUMNS: tuple[str, ...] = _field_columns() + ANNOTATIONS
"""Columns of a command table (module docstring)."""

COL: dict[str, int] = {name: i for i, name in enumerate(COLUMNS)}
"""Column index by name."""

_FIELD_COLS = {op: [COL[name] for name, _ in isa.command_class(op).FIELDS] for op in isa.Opcode}


def empty_table(n: int = 0) -> np.ndarray:
    """A zeroed command table of ``n`` rows."""
    return np.zeros((n, len(COLUMNS)), np.int64)


def commands_to_table(commands: list[isa.Command]) -> np.ndarray:
    """The command table of a list of ISA commands (annotations zero)."""
    table = empty_table(len(commands))
    for i, cmd in enumerate(commands):
        row = table[i]
        row[0], row[1], row[2] = int(cmd.OPCODE), cmd.wait, cmd.signal
        for (name, _), c in zip(cmd.FIELDS, _FIELD_COLS[cmd.OPCODE], strict=True):
            row[c] = getattr(cmd, name)
    return table


def table_to_commands(table: np.ndarray) -> list[isa.Command]:
    """ISA command objects of a command table (annotations are dropped).

    Raises
    ------
    hwsim.isa.IsaError
        An unknown opcode or a field value that does not fit its width (names the field).
    """
    out = []
    classes = {int(op): isa.command_class(op) for op in isa.Opcode}
    for row in np.asarray(table).tolist():
        op = row[0]
        if op not in classes:
            isa.command_class(op)  # raises IsaError naming the opcode
        cls = classes[op]
        kw = {name: row[c] for (name, _), c in zip(cls.FIELDS, _FIELD_COLS[op], strict=True)}
        out.append(cls(wait=row[1], signal=row[2], **kw))
    return out


_DTYPES = {"int8": np.int8, "int32": np.int32, "fp16": np.float16, "fp32": np.float32}


@dataclass(frozen=True)
class TensorRef:
    """A 2-D tensor in DRAM.

    Parameters
    ----------
    addr : int
        Byte address of element ``[0, 0]``.
    shape : tuple of int
        Logical ``(rows, cols)``.
    dtype : str
        ``int8``, ``int32``, ``fp16`` or ``fp32``.
    order : str
        ``"row"``: row-major; ``"col"``: column-major (the transpose stored row-major, how the
        compiler lays out A for output-stationary tiles).
    """

    addr: int
    shape: tuple[int, int]
    dtype: str
    order: str = "row"

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(_DTYPES[self.dtype])

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.np_dtype.itemsize

    def stored(self, value: np.ndarray) -> np.ndarray:
        """``value`` in its element type as it is stored: itself (``order="row"``) or its
        transpose (``"col"``); a shape other than the tensor's is refused."""
        value = np.asarray(value)
        if value.shape != tuple(self.shape):
            raise ValueError(f"tensor of shape {value.shape} does not match {self.shape}")
        v = value.astype(self.np_dtype)
        return v if self.order == "row" else v.T

    def write(self, dram: np.ndarray, value: np.ndarray) -> None:
        v = self.stored(value)
        dram[self.addr:self.addr + self.nbytes] = np.ascontiguousarray(v).view(np.uint8).ravel()

    def read(self, dram: np.ndarray) -> np.ndarray:
        raw = dram[self.addr:self.addr + self.nbytes].copy().view(self.np_dtype)
        if self.order == "row":
            return raw.reshape(self.shape)
        return raw.reshape(self.shape[::-1]).T.copy()


class Program:
    """What the compiler hands the machine: a command table and its DRAM tensors.

    Parameters
    ----------
    commands : list of isa.Command, optional
        The commands (the table is built from them); or pass ``table``.
    dram_bytes : int
        DRAM footprint the program addresses.
    tensors : dict
        Named :class:`TensorRef` placements (inputs and outputs).
    inputs, outputs : tuple of str
        Which tensors the host writes before and reads after the run.
    table : numpy.ndarray, optional
        The command table (:data:`COLUMNS`); ``commands`` is then built from it on first use.
    """

    def __init__(self, commands: list[isa.Command] | None = None, dram_bytes: int = 0,
                 tensors: dict[str, TensorRef] | None = None, inputs: tuple[str, ...] = (),
                 outputs: tuple[str, ...] = (), *, table: np.ndarray | None = None):
        if (commands is None) == (table is None):
            raise ValueError("a Program takes either commands or a command table")
        self._commands = None if commands is None else list(commands)
        self._table = None if table is None else np.asarray(table, np.int64)
        self.dram_bytes = dram_bytes
        self.tensors = dict(tensors or {})
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)

    @property
    def commands(self) -> list[isa.Command]:
        """The commands as ISA objects (built from the table on first use)."""
        if self._commands is None:
            self._commands = table_to_commands(self._table)
        return self._commands

    @property
    def table(self) -> np.ndarray:
        """The command table (built from the commands on first use)."""
        if self._table is None:
            self._table = commands_to_table(self._commands)
        return self._table

    def __len__(self) -> int:
        return len(self._table) if self._table is not None else len(self._commands)

    def binary(self) -> bytes:
        return isa.encode_program(self.commands)

    def dram_image(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """A zeroed DRAM image with the named input tensors written in place."""
        missing = [n for n in self.inputs if n not in values]
        if missing:
            raise ValueError(f"program inputs {missing} were not given")
        dram = np.zeros(self.dram_bytes, np.uint8)
        for name in self.inputs:
            self.tensors[name].write(dram, values[name])
        return dram

    def read_outputs(self, dram: np.ndarray) -> dict[str, np.ndarray]:
        return {n: self.tensors[n].read(dram) for n in self.outputs}
