"""SCALE-Sim compatibility: read its topology CSVs and ``.cfg`` architecture files.

Topology CSVs are read by header name (case and spacing ignored), so column order does not
matter, trailing commas and empty trailing columns (as SCALE-Sim's own files have) are
tolerated, and extra annotation columns (e.g. ``Eh, Ew`` in SCALE-Sim's ``Resnet50.csv``) are
ignored. Two formats:

- conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides[, Sparsity]`` (``Stride height, Stride width`` instead of ``Strides``,
  as SCALE-Sim writes them, also work);
- GEMM (SCALE-Sim's ``GEMM_mnk`` topologies): ``Layer, M, N, K[, Sparsity]``.

``Sparsity`` is ``N:M`` (e.g. ``2:4``); blank or ``dense`` is dense.

Lowering convention (SCALE-Sim's, :meth:`Layer.gemm_shape`): a conv layer is the GEMM
``ofmap (M x N) = ifmap windows (M x K) . filters (K x N)`` with

- ``M = ofmap_h * ofmap_w`` with ``ofmap = ceil((ifmap - filter) / stride) + 1``, no padding
  (SCALE-Sim topologies give the already padded IFMAP size). This is SCALE-Sim's own formula,
  ``ceil((ifmap - filter + stride) / stride)`` in its ``topology_utils.py``; it differs from the
  usual ``(ifmap - filter) // stride + 1`` when the stride does not divide ``ifmap - filter``
  (SCALE-Sim then counts one more, partial, window: a 224 x 224 IFMAP with a 7 x 7 filter at
  stride 2 gives 110, not 109), and we keep it so that shapes and MAC counts match SCALE-Sim's,
- ``N = Num Filter``,
- ``K = filter_h * filter_w * channels``.

A GEMM row ``M, N, K`` is that GEMM directly (SCALE-Sim loads it as a ``M x K`` ifmap with one
``1 x K`` filter per output column, which lowers to the same shape). N:M sparsity prunes the
filter operand along ``K``.

Depthwise layers, marked by ``DP`` in the name, are read as ordinary conv layers;
:func:`split_depthwise` makes SCALE-Sim's one layer per channel of them (``satmem scalesim``
does).

SCALE-Sim's own compute model (:func:`scalesim_folds`, :func:`scalesim_cycles`) is here too, so
that satmem's cycles can be put beside the cycles SCALE-Sim counts for the same layer.
"""

from __future__ import annotations

import configparser
import csv
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from hwsim.config import AcceleratorConfig, ConfigError, parse_nm, preset
from hwsim.textfile import TextFileError, read_text

__all__ = [
    "CONV_COLUMNS",
    "EXPORT_PASSES",
    "GEMM_COLUMNS",
    "SCALESIM_CFG_KEYS",
    "STALL_MODEL_KEYS",
    "Layer",
    "ScaleSimRun",
    "TopologyError",
    "condensed_rows",
    "export_gemm_topology",
    "read_scalesim_cfg",
    "read_scalesim_run",
    "read_topology",
    "scalesim_cycles",
    "scalesim_folds",
    "split_depthwise",
]


class TopologyError(ValueError):
    """A SCALE-Sim topology or ``.cfg`` file that cannot be read.

    Parameters
    ----------
    path : str
        The file.
    line : int
        1-based line number (0 when the problem is the file as a whole).
    column : str
        The column (CSV header name) or ``[section] key`` (cfg) at fault; empty if none.
    why : str
        What is wrong and what was expected.
    """

    def __init__(self, path: str | Path, line: int, column: str, why: str):
        self.path, self.line, self.column, self.why = str(path), line, column, why
        where = f"{self.path}:{line}" if line else self.path
        col = f" column {column!r}:" if column else ""
        super().__init__(f"{where}:{col} {why}")


CONV_COLUMNS = ("layer name", "ifmap height", "ifmap width", "filter height", "filter width",
                "channels", "num filter", "strides")
"""Required conv columns, normalised (``strides`` may instead be ``stride height`` and
``stride width``)."""

GEMM_COLUMNS = ("layer", "m", "n", "k")
"""Required GEMM columns, normalised (``layer name`` is accepted for ``layer``)."""

_CONV_INTS = {"ifmap height": "ifmap_h", "ifmap width": "ifmap_w", "filter height": "filter_h",
              "filter width": "filter_w", "channels": "channels", "num filter": "num_filters"}
_INT = re.compile(r"\+?\d+")


@dataclass(frozen=True)
class Layer:
    """One row of a SCALE-Sim topology.

    Attributes
    ----------
    name : str
    kind : str
        ``"conv"`` or ``"gemm"``.
    ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride_h, stride_w : int
        Conv fields (0 for GEMM rows).
    m, n, k : int
        GEMM fields (0 for conv rows).
    sparsity : tuple of int or None
        ``(n, m)`` of an N:M pattern on the filter operand, ``None`` for dense.
    line : int
        Line of the file the layer came from (not part of equality).
    """

    name: str
    kind: str
    ifmap_h: int = 0
    ifmap_w: int = 0
    filter_h: int = 0
    filter_w: int = 0
    channels: int = 0
    num_filters: int = 0
    stride_h: int = 0
    stride_w: int = 0
    m: int = 0
    n: int = 0
    k: int = 0
    sparsity: tuple[int, int] | None = None
    line: int = field(default=0, compare=False)

    def ofmap_dims(self) -> tuple[int, int]:
        """``(ofmap_h, ofmap_w)`` of a conv layer with SCALE-Sim's formula
        ``ceil((ifmap - filter) / stride) + 1`` (no padding); ``(m, 1)`` for a GEMM row."""
        if self.kind == "gemm":
            return self.m, 1
        return (-(-(self.ifmap_h - self.filter_h) // self.stride_h) + 1,
                -(-(self.ifmap_w - self.filter_w) // self.stride_w) + 1)

    def gemm_shape(self) -> tuple[int, int, int]:
        """``(M, N, K)`` of the lowered GEMM (see the module docstring for the convention)."""
        if self.kind == "gemm":
            return self.m, self.n, self.k
        oh, ow = self.ofmap_dims()
        return oh * ow, self.num_filters, self.filter_h * self.filter_w * self.channels

    def macs(self) -> int:
        """Dense multiply-accumulates, ``M * N * K``."""
        M, N, K = self.gemm_shape()
        return M * N * K


def _norm(cell: str) -> str:
    return " ".join(cell.split()).lower()


def read_topology(path: str | Path) -> list[Layer]:
    """Read a SCALE-Sim topology CSV (conv or GEMM format, told apart by the header).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of Layer
        In file order; blank rows are skipped.

    Raises
    ------
    TopologyError
        Unreadable or empty file, a header naming neither format, a missing or repeated
        column, a missing or non-positive-integer value, a bad ``Sparsity``, a filter larger
        than its IFMAP, or a row with more values than the header has columns. The message
        names the file, the line and the column.
    """
    path = Path(path)
    try:
        text = read_text(path)
    except TextFileError as e:
        raise TopologyError(path, 0, "", f"cannot read the file ({e})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(c.strip() for c in rows[0]):
        raise TopologyError(path, 1 if rows else 0, "", "expected a header line, the file "
                            "starts with an empty line" if rows else "the file is empty")
    header = rows[0]
    cols: dict[str, int] = {}
    for i, cell in enumerate(header):
        key = _norm(cell)
        if not key:
            continue
        if key in cols:
            raise TopologyError(path, 1, cell.strip(), f"repeated column (also column "
                                f"{cols[key] + 1})")
        cols[key] = i
    if "ifmap height" in cols:
        kind = "conv"
        cols.setdefault("layer name", cols.get("layer", -1))
        required = [c for c in CONV_COLUMNS if c != "strides"]
        if "strides" not in cols:
            required += ["stride height", "stride width"]
        else:
            required.append("strides")
    elif "m" in cols or "k" in cols:
        kind = "gemm"
        cols.setdefault("layer", cols.get("layer name", -1))
        required = list(GEMM_COLUMNS)
    else:
        raise TopologyError(path, 1, "", "the header names neither the conv columns "
                            f"{CONV_COLUMNS} nor the GEMM columns {GEMM_COLUMNS}")
    for c in required:
        if cols.get(c, -1) < 0:
            raise TopologyError(path, 1, c, f"missing column in the {kind} header "
                                f"(expected {required})")
    names = {_norm(c): c.strip() for c in header}
    names.setdefault("layer name", names.get("layer", "Layer name"))
    names.setdefault("layer", names["layer name"])
    width = max(i for i, c in enumerate(header) if c.strip()) + 1

    layers = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        extra = [c for c in row[width:] if c.strip()]
        if extra:
            raise TopologyError(path, lineno, "", f"{len(extra)} value(s) beyond the header's "
                                f"{width} columns, first {extra[0].strip()!r}")

        def cell(key: str, row=row) -> str:
            i = cols[key]
            return row[i].strip() if i < len(row) else ""

        def integer(key: str, lineno=lineno) -> int:
            v = cell(key)
            if not _INT.fullmatch(v) or int(v) < 1:
                why = "missing value" if not v else f"expected a positive integer, not {v!r}"
                raise TopologyError(path, lineno, names[key], why)
            return int(v)

        name = cell("layer name" if kind == "conv" else "layer")
        if not name:
            raise TopologyError(path, lineno, names["layer name" if kind == "conv" else "layer"],
                                "missing layer name")
        sparsity = None
        if "sparsity" in cols:
            s = cell("sparsity")
            if s and s.lower() != "dense":
                try:
                    sparsity = parse_nm(s, "Sparsity")
                except ConfigError as e:
                    raise TopologyError(path, lineno, names["sparsity"],
                                        f"{s!r} is not a pattern: expected {e.allowed}, "
                                        "or blank or 'dense'") from None
        if kind == "gemm":
            layers.append(Layer(name, "gemm", m=integer("m"), n=integer("n"), k=integer("k"),
                                sparsity=sparsity, line=lineno))
            continue
        vals = {attr: integer(key) for key, attr in _CONV_INTS.items()}
        if "strides" in cols:
            vals["stride_h"] = vals["stride_w"] = integer("strides")
        else:
            vals["stride_h"], vals["stride_w"] = integer("stride height"), integer("stride width")
        for dim in ("height", "width"):
            f, i = vals[f"filter_{dim[0]}"], vals[f"ifmap_{dim[0]}"]
            if f > i:
                raise TopologyError(path, lineno, names[f"filter {dim}"],
                                    f"filter {dim} {f} is larger than the IFMAP {dim} {i}")
        layers.append(Layer(name, "conv", **vals, sparsity=sparsity, line=lineno))
    if not layers:
        raise TopologyError(path, len(rows), "", "no layers: the file has a header and no "
                            "layer rows")
    return layers


def split_depthwise(layers: list[Layer]) -> list[Layer]:
    """SCALE-Sim's reading of depthwise conv layers: a layer whose name contains ``DP`` becomes
    one layer per channel, named ``<name>Channel_<i>``, each with ``Channels = 1`` and the
    row's ``Num Filter`` (``topology_utils.load_arrays_conv``); other layers are unchanged."""
    out = []
    for ly in layers:
        if ly.kind == "conv" and "DP" in ly.name:
            out += [dataclasses.replace(ly, name=f"{ly.name}Channel_{i}", channels=1)
                    for i in range(ly.channels)]
        else:
            out.append(ly)
    return out


# --- .cfg architecture files ---------------------------------------------------------------------

_LAYOUT_KEYS = ("IfmapCustomLayout", "FilterCustomLayout", "IfmapSRAMBankBandwidth",
                "IfmapSRAMBankNum", "IfmapSRAMBankPort", "FilterSRAMBankBandwidth",
                "FilterSRAMBankNum", "FilterSRAMBankPort")

SCALESIM_CFG_KEYS: dict[str, tuple[str, ...]] = {
    "general": ("run_name",),
    "architecture_presets": (
        "ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB",
        "IfmapOffset", "FilterOffset", "OfmapOffset", "Dataflow", "Bandwidth",
        "ReadRequestBuffer", "WriteRequestBuffer", "MemoryBanks", "OnChipMemoryBanks",
        "OnChipMemoryBankPorts", *_LAYOUT_KEYS),
    "layout": _LAYOUT_KEYS,
    "sparsity": ("SparsitySupport", "SparseRep", "OptimizedMapping", "BlockSize",
                 "RandomNumberGeneratorSeed", "NonZeroElems"),
    "run_presets": ("InterfaceBandwidth", "UseRamulatorTrace"),
    "network_presets": ("TopologyCsvLoc",),
}
"""The sections and keys SCALE-Sim (v2, v3) reads; :func:`read_scalesim_run` honours or
refuses every one (its docstring)."""

STALL_MODEL_KEYS = ("ReadRequestBuffer", "WriteRequestBuffer", "MemoryBanks", "OnChipMemoryBanks",
                    "OnChipMemoryBankPorts", "IfmapCustomLayout", "FilterCustomLayout",
                    "IfmapSRAMBankBandwidth", "IfmapSRAMBankNum", "IfmapSRAMBankPort",
                    "FilterSRAMBankBandwidth", "FilterSRAMBankNum", "FilterSRAMBankPort")
"""Parameters of SCALE-Sim's own SRAM-bank, layout and DRAM-request stall model (a custom layout
only changes which SRAM bank an operand sits in, so its bank conflicts). satmem's stalls come
from hwsim's DMA and DRAM model instead; these keys are checked and, when set (the layouts: to
True), listed as not modelled."""

# key (lower case) -> kind of value: "int" positive, "int0" non-negative, "bool", or choices
_VALUES: dict[str, object] = {
    "arrayheight": "int", "arraywidth": "int", "ifmapsramszkb": "int", "filtersramszkb": "int",
    "ofmapsramszkb": "int", "ifmapoffset": "int0", "filteroffset": "int0", "ofmapoffset": "int0",
    "readrequestbuffer": "int", "writerequestbuffer": "int", "memorybanks": "int",
    "onchipmemorybanks": "int", "onchipmemorybankports": "int",
    "ifmapsrambankbandwidth": "int", "ifmapsrambanknum": "int", "ifmapsrambankport": "int",
    "filtersrambankbandwidth": "int", "filtersrambanknum": "int", "filtersrambankport": "int",
    "ifmapcustomlayout": "bool", "filtercustomlayout": "bool", "sparsitysupport": "bool",
    "optimizedmapping": "bool", "useramulatortrace": "bool", "blocksize": "int",
    "randomnumbergeneratorseed": "int0", "nonzeroelems": "int",
    "sparserep": ("csr", "csc", "ellpack_block"), "interfacebandwidth": ("user", "calc"),
}
# value True of these switches on what satmem does not model: why, in one line
_REFUSED_TRUE = {
    "useramulatortrace": "Ramulator DRAM traces are not read: satmem's DRAM model times the "
                         "DMA (set it to False)",
    "optimizedmapping": "SCALE-Sim's row-wise random-N sparse mapping is not modelled: "
                        "satmem runs the topology's N:M per layer (set it to false)",
}

_KNOWN = {sec: {k.lower(): k for k in keys} for sec, keys in SCALESIM_CFG_KEYS.items()}
_SECTION_RE = re.compile(r"^\s*\[([^\]]*)\]")
_OPTION_RE = re.compile(r"^([^\s:=;#\[][^:=]*?)\s*[:=]")


@dataclass(frozen=True)
class ScaleSimRun:
    """A SCALE-Sim ``.cfg`` file read by :func:`read_scalesim_run`.

    Attributes
    ----------
    config : AcceleratorConfig
        The machine (one dataflow, the file's).
    run_name : str
        ``[general] run_name`` (SCALE-Sim writes its reports under ``<logpath>/<run_name>/``).
    dataflow : str
        ``"os"`` or ``"ws"``.
    sparsity_support : bool
        ``[sparsity] SparsitySupport`` (default false, as in SCALE-Sim): the topology's
        ``Sparsity`` column is used only when true.
    sparse_rep : str
        ``[sparsity] SparseRep`` (``""`` without sparsity support).
    topology : str or None
        ``[network_presets] TopologyCsvLoc``, quotes removed.
    not_modelled : tuple of str
        The :data:`STALL_MODEL_KEYS` the file sets.
    """

    config: AcceleratorConfig
    run_name: str
    dataflow: str
    sparsity_support: bool = False
    sparse_rep: str = ""
    topology: str | None = None
    not_modelled: tuple[str, ...] = ()


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """``(section, key)`` (lower case) -> 1-based line, and ``(section, "")`` -> its header."""
    where, sec = {}, ""
    for no, line in enumerate(text.splitlines(), start=1):
        if m := _SECTION_RE.match(line):
            sec = m.group(1).strip().lower()
            where.setdefault((sec, ""), no)
        elif m := _OPTION_RE.match(line):
            where.setdefault((sec, m.group(1).strip().lower()), no)
    return where


def read_scalesim_cfg(path: str | Path, base: AcceleratorConfig | None = None
                      ) -> AcceleratorConfig:
    """The :class:`AcceleratorConfig` of a SCALE-Sim ``.cfg`` file: ``read_scalesim_run(path,
    base).config`` (see :func:`read_scalesim_run`)."""
    return read_scalesim_run(path, base).config


def read_scalesim_run(path: str | Path, base: AcceleratorConfig | None = None) -> ScaleSimRun:
    """Read a SCALE-Sim ``.cfg`` file; every key is honoured or refused by name.

    Honoured (everything else of the machine comes from ``base``, by default ``tiny``):

    ========================================  ==============================================
    SCALE-Sim                                 satmem
    ========================================  ==============================================
    ``[general] run_name``                    ``name``; the reports' folder
    ``ArrayHeight``, ``ArrayWidth``           ``array.rows``, ``array.cols``
    ``IfmapSramSzkB``                         ``buffers.act_kib`` = kB x operand bytes
    ``FilterSramSzkB``                        ``buffers.wgt_kib`` = kB x operand bytes
    ``OfmapSramSzkB``                         ``buffers.acc_kib`` = kB x accumulator bytes
    (SCALE-Sim has no metadata SRAM)          ``buffers.idx_kib`` = ``FilterSramSzkB`` (an
                                              index byte a weight word), at most 65,536
                                              entries
    ``Dataflow`` ``os`` or ``ws``             ``array.dataflows = (dataflow,)``; ``is`` is
                                              refused (the machine has no input-stationary
                                              mode)
    ``Bandwidth`` (words per cycle)           ``dram.bandwidth_gbps`` per channel, so that
                                              ``dram_bytes_per_cycle`` = words x operand
                                              bytes at ``base.clock_mhz``; a comma list
                                              uses its minimum
    ``[run_presets] InterfaceBandwidth``      ``USER``: ``Bandwidth`` as above; ``CALC``
                                              (SCALE-Sim sizes the bandwidth so nothing
                                              stalls): ``base``'s DRAM
    ``[sparsity] SparsitySupport``            ``false`` (or absent, SCALE-Sim's default):
                                              dense machine, a topology ``Sparsity`` other
                                              than dense is refused; ``true``: ``base``'s
                                              N:M patterns, taken per layer from the topology
    ``[network_presets] TopologyCsvLoc``      :attr:`ScaleSimRun.topology`
    ========================================  ==============================================

    SCALE-Sim counts SRAM and bandwidth in one-byte words (``word_size = 1`` in its
    ``single_layer_sim.py``; its kB are KiB): a buffer keeps the number of elements SCALE-Sim's
    SRAM holds, and the bandwidth the elements per cycle, whatever the machine's element size
    (fp16 operands: 2 bytes; int32/fp32 accumulators: 4 bytes for each output word).

    Checked and without effect on any number, as in SCALE-Sim's reports: ``IfmapOffset``,
    ``FilterOffset``, ``OfmapOffset`` (trace addresses), ``SparseRep`` (named in the sparse
    report; satmem stores its own N:M format), ``BlockSize``, ``RandomNumberGeneratorSeed`` and
    ``NonZeroElems`` (read by SCALE-Sim only for its optimized mapping), ``UseRamulatorTrace``
    false.

    Checked and listed in :attr:`ScaleSimRun.not_modelled`: :data:`STALL_MODEL_KEYS`, the
    parameters of SCALE-Sim's SRAM-bank and DRAM-request stall model (satmem's memory stalls
    come from hwsim's DMA and DRAM model).

    Refused, naming the key: ``Dataflow = is``, ``UseRamulatorTrace = True``,
    ``OptimizedMapping = true`` (:data:`_REFUSED_TRUE`), and unknown sections or keys.

    ``dram.bus_bytes`` grows to the next power of two that holds one buffer entry when the
    array is wider than ``base`` allows.

    Parameters
    ----------
    path : str or Path
    base : AcceleratorConfig, optional
        Supplies every field the file does not set (default: ``preset("tiny")``).

    Raises
    ------
    TopologyError
        Unreadable or malformed INI, a missing ``[architecture_presets]`` section or key, a
        value of the wrong kind, a refused value, or a section or key SCALE-Sim does not know;
        the message names the file, line and key.
    ConfigError
        ``Dataflow = is``, or mapped values that the config rejects (the field names the satmem
        field and the file).
    """
    path = Path(path)
    base = preset("tiny") if base is None else base
    try:
        text = read_text(path)
    except TextFileError as e:
        raise TopologyError(path, 0, "", f"cannot read the file ({e})") from None
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(text, source=str(path))
    except configparser.Error as e:
        line = getattr(e, "lineno", 0) or (e.errors[0][0] if getattr(e, "errors", None) else 0)
        raise TopologyError(path, line, "", f"not a valid INI file: {e.message.splitlines()[0]}"
                            ) from None
    lines = _key_lines(text)

    values: dict[tuple[str, str], tuple[str, int, str]] = {}
    for sec in cp.sections():
        s = sec.strip().lower()
        if s not in _KNOWN:
            raise TopologyError(path, lines.get((s, ""), 0), f"[{sec}]", "unknown section: "
                                f"SCALE-Sim knows {sorted(SCALESIM_CFG_KEYS)}")
        for key, value in cp.items(sec):
            line = lines.get((s, key), 0)
            if key not in _KNOWN[s]:
                raise TopologyError(path, line, f"[{sec}] {key}", "unknown key: SCALE-Sim's "
                                    f"[{s}] keys are {list(SCALESIM_CFG_KEYS[s])}")
            v = (value.strip(), line, f"[{sec}] {_KNOWN[s][key]}")
            _check_value(path, key, v)
            # the layout keys may sit in [architecture_presets] or [layout]: one entry each
            values[("layout" if key in _KNOWN["layout"] else s, key)] = v

    def get(sec: str, key: str, required: bool = False) -> tuple[str, int, str] | None:
        v = values.get((sec, key.lower()))
        if v is None and required:
            line = lines.get((sec, ""), 0)
            raise TopologyError(path, line, f"[{sec}] {key}", "missing key" if line
                                else f"missing key (and no [{sec}] section)")
        return v

    arch = "architecture_presets"
    changes: dict[str, object] = {}
    run_name = "scale_run"  # SCALE-Sim's default
    if (v := get("general", "run_name")) is not None:
        run_name = changes["name"] = v[0]
    eb = base.array.elem_bytes
    rows = int(get(arch, "ArrayHeight", True)[0])
    cols = int(get(arch, "ArrayWidth", True)[0])
    changes.update(array__rows=rows, array__cols=cols,
                   # SCALE-Sim's SRAMs hold kB x 1024 one-byte words: keep that many elements
                   buffers__act_kib=int(get(arch, "IfmapSramSzkB", True)[0]) * eb,
                   buffers__wgt_kib=int(get(arch, "FilterSramSzkB", True)[0]) * eb,
                   buffers__acc_kib=int(get(arch, "OfmapSramSzkB", True)[0])
                   * base.array.acc_bytes,
                   # an in-group index byte for every weight word, within 16-bit addresses
                   buffers__idx_kib=min(int(get(arch, "FilterSramSzkB", True)[0]),
                                        (1 << 16) * cols // 1024))

    df_text, df_line, df_col = get(arch, "Dataflow", True)
    if df_text.lower() == "is":
        raise ConfigError(f"{arch}.Dataflow", df_text, f"'os' or 'ws' ({path}:{df_line}: input "
                          "stationary is not a dataflow of this machine)")
    if df_text.lower() not in ("os", "ws"):
        raise TopologyError(path, df_line, df_col, f"expected one of ('os', 'ws'), not "
                            f"{df_text!r}")
    dataflow = df_text.lower()
    changes["array__dataflows"] = (dataflow,)

    mode = get("run_presets", "InterfaceBandwidth")
    if (v := get(arch, "Bandwidth")) is not None:
        words = min(_positive(path, (w.strip(), v[1], v[2])) for w in v[0].split(","))
    if (mode is None or mode[0].lower() == "user") and v is not None:
        bytes_per_cycle = words * base.array.elem_bytes
        changes["dram__bandwidth_gbps"] = (
            bytes_per_cycle * base.clock_mhz / 1000.0 / base.dram.channels)

    v = get("sparsity", "SparsitySupport")
    sparse = v is not None and v[0].lower() == "true"
    if not sparse:
        changes["array__patterns"] = ()
    rep = v[0].lower() if sparse and (v := get("sparsity", "SparseRep")) is not None else ""
    if sparse and not rep:
        rep = "ellpack_block"
    topo = get("network_presets", "TopologyCsvLoc")
    topo = topo[0].strip().strip("\"'") if topo is not None else None

    entry = max(rows, cols) * base.array.elem_bytes
    entry = max(entry, cols * base.array.acc_bytes)
    if entry > base.dram.bus_bytes:
        changes["dram__bus_bytes"] = 1 << (entry - 1).bit_length()
    try:
        config = base.replace(**changes)
    except ConfigError as e:
        raise ConfigError(f"{e.field} (from {path})", e.value, e.allowed) from None
    present = {k for (_, k), v in values.items()
               if not k.endswith("customlayout") or v[0].lower() == "true"}
    return ScaleSimRun(config, run_name, dataflow, sparse, rep, topo or None,
                       tuple(k for k in STALL_MODEL_KEYS if k.lower() in present))


def _positive(path: Path, v: tuple[str, int, str], low: int = 1) -> int:
    text, line, col = v
    if not _INT.fullmatch(text) or int(text) < low:
        what = "a positive" if low else "a non-negative"
        raise TopologyError(path, line, col, f"expected {what} integer, not {text!r}")
    return int(text)


def _check_value(path: Path, key: str, v: tuple[str, int, str]) -> None:
    """Check one key's value by its kind (:data:`_VALUES`); refuse what satmem does not model."""
    kind = _VALUES.get(key)
    text, line, col = v
    if kind in ("int", "int0"):
        _positive(path, v, 1 if kind == "int" else 0)
    elif kind == "bool":
        # SCALE-Sim reads these with getboolean or compares lower-cased text to 'true'
        if text.lower() not in ("true", "false"):
            raise TopologyError(path, line, col, f"expected True or False, not {text!r}")
        if text.lower() == "true" and key in _REFUSED_TRUE:
            raise TopologyError(path, line, col, _REFUSED_TRUE[key])
    elif isinstance(kind, tuple) and text.lower() not in kind:
        raise TopologyError(path, line, col, f"expected one of {kind}, not {text!r}")


# --- SCALE-Sim's analytical compute model -----------------------------------------------------

def condensed_rows(k: int, sparsity: tuple[int, int] | None) -> int:
    """Reduction rows SCALE-Sim's condensed N:M filter keeps: ``N`` of every whole group of
    ``M`` and ``min(N, K mod M)`` of a partial last group (its ``operand_matrix`` packs each
    group's kept weights and drops trailing all-zero rows); ``K`` when dense."""
    if sparsity is None:
        return k
    n, m = sparsity
    return k // m * n + min(n, k % m)


def scalesim_folds(m: int, n: int, k: int, rows: int, cols: int, dataflow: str,
                   sparsity: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(folds, cycles of one fold)`` of SCALE-Sim's compute model (v2, v3:
    ``systolic_compute_os.py``, ``systolic_compute_ws.py``) for the GEMM ``M x K . K x N``.

    - OS: the array holds an ``R x C`` block of outputs; ``ceil(M/R) * ceil(N/C)`` folds of
      ``K + R + C - 2`` cycles (``K`` operand steps, skewed over ``R - 1`` rows and ``C - 1``
      columns; the outputs' drain is not counted).
    - WS: the array holds an ``R x C`` block of weights; ``ceil(K/R) * ceil(N/C)`` folds of
      ``2R + C + M - 2`` cycles (``R`` to load weights, whatever rows the fold uses; ``M``
      input rows skewed over ``R - 1`` rows; ``C - 1`` for the partial sums to leave).

    ``K`` is :func:`condensed_rows` with N:M ``sparsity`` (SCALE-Sim's ``SparsitySupport``; it
    runs sparse layers in WS only, and the OS count with the condensed ``K`` is what an OS array
    streaming compressed steps would take).
    """
    kc = condensed_rows(k, sparsity)
    if dataflow == "os":
        return -(-m // rows) * -(-n // cols), kc + rows + cols - 2
    if dataflow == "ws":
        return -(-kc // rows) * -(-n // cols), 2 * rows + cols + m - 2
    raise ValueError(f"SCALE-Sim's model here covers 'os' and 'ws', not {dataflow!r}")


def scalesim_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str,
                    sparsity: tuple[int, int] | None = None) -> int:
    """Cycles SCALE-Sim's compute model counts without memory stalls: folds x cycles of a fold
    (:func:`scalesim_folds`). Its demand matrices have this many rows; its COMPUTE_REPORT's
    ``Total Cycles`` is the last row's 0-based cycle, one less, when nothing stalls."""
    folds, per_fold = scalesim_folds(m, n, k, rows, cols, dataflow, sparsity)
    return folds * per_fold


# --- export: a whole training step as SCALE-Sim GEMM topologies ----------------------------------

EXPORT_PASSES = ("fwd", "bgrad", "wgrad")


def export_gemm_topology(workload, path: str | Path, passes=EXPORT_PASSES) -> int:
    """Write the GEMMs of ``workload`` (a :class:`dataflow.workload.Workload`) in ``passes`` as a
    SCALE-Sim GEMM topology (``Layer, M, N, K, Sparsity``); returns the rows written.

    The conventions are the same on both sides (``C[M, N] = A[M, K] · B[K, N]``, the weight B,
    N:M along K), so each GEMM is one row; a GEMM repeated ``r`` times (conv groups, batch x
    heads) is ``r`` rows named ``NAME#i`` (SCALE-Sim has no repeat column). ``Sparsity`` is
    ``N:M`` for the N:M GEMMs (the forward and, with BDWP, the backward-data pass), blank for
    dense ones. SCALE-Sim users write backward topologies by hand; this writes them from the
    model, as :func:`read_topology` reads them back.
    """
    bad = [p for p in passes if p not in EXPORT_PASSES]
    if bad or not passes:
        raise ValueError(f"passes must be a non-empty subset of {EXPORT_PASSES}, not {passes}")
    rows = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Layer", "M", "N", "K", "Sparsity"])
        for op in workload.gemms():
            if op.pass_ not in passes:
                continue
            sp = "" if op.sparsity is None else "{}:{}".format(*op.sparsity)
            for i in range(op.repeat):
                name = op.name if op.repeat == 1 else f"{op.name}#{i}"
                w.writerow([name, op.m, op.n, op.k, sp])
                rows += 1
    return rows
