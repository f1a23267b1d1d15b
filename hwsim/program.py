"""Programs: a command list plus where its tensors live in DRAM."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import isa

__all__ = ["Program", "TensorRef"]

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

    def write(self, dram: np.ndarray, value: np.ndarray) -> None:
        value = np.asarray(value)
        if value.shape != tuple(self.shape):
            raise ValueError(f"tensor of shape {value.shape} does not match {self.shape}")
        v = value.astype(self.np_dtype)
        v = v if self.order == "row" else v.T
        dram[self.addr:self.addr + self.nbytes] = np.ascontiguousarray(v).view(np.uint8).ravel()

    def read(self, dram: np.ndarray) -> np.ndarray:
        raw = dram[self.addr:self.addr + self.nbytes].copy().view(self.np_dtype)
        if self.order == "row":
            return raw.reshape(self.shape)
        return raw.reshape(self.shape[::-1]).T.copy()


@dataclass
class Program:
    """What the compiler hands the machine.

    Parameters
    ----------
    commands : list of isa.Command
    dram_bytes : int
        DRAM footprint the program addresses.
    tensors : dict
        Named :class:`TensorRef` placements (inputs and outputs).
    inputs, outputs : tuple of str
        Which tensors the host writes before and reads after the run.
    """

    commands: list[isa.Command]
    dram_bytes: int
    tensors: dict[str, TensorRef] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

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
