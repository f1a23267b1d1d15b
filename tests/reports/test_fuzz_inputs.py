"""Generated bad input through the CLI: config YAML, topology CSVs and sweep specs give a result
(exit 0) or one line and exit 2, never a traceback, and a file that is not text is refused at
once (issue 18, item 1)."""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwsim.config import _SECTIONS, AcceleratorConfig, preset
from reports.cli import main

FIELDS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in _SECTIONS.items()}
TOP = [f.name for f in dataclasses.fields(AcceleratorConfig) if f.name not in _SECTIONS]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.text(string.printable, max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(string.ascii_lowercase, max_size=8),
                                                 inner, max_size=3)), max_leaves=8)
section = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda sec: st.tuples(st.just(sec), st.dictionaries(
        st.sampled_from(FIELDS[sec] + ["bogus"]), values, max_size=3)))
configs = st.builds(
    lambda base, secs, top: {**({"base": base} if base is not None else {}), **dict(secs),
                             **top},
    st.one_of(st.none(), st.sampled_from(["tiny", "small8", "vcu1525", "nope"]), values),
    st.lists(section, max_size=3),
    st.dictionaries(st.sampled_from(TOP), values, max_size=2))

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_or_result(code, out, err):
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("satmem: error:") and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    else:
        assert out


@SETTINGS
@given(data=configs)
def test_generated_configs_give_a_result_or_one_line(tmp_path, capsys, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    _one_line_or_result(*_cli(capsys, "simulate-gemm", "8", "8", "8", "--config", str(path),
                              "--json"))


def test_config_values_of_the_wrong_type_name_the_field(capsys, tmp_path):
    for text, field in (("base: tiny\narray: {dataflows: 3}\n", "array.dataflows"),
                        ("base: tiny\narray: {patterns: 1.5}\n", "array.patterns"),
                        ("base: [vcu1525]\n", "base"), ("base: tiny\nclock_mhz: fast\n",
                                                        "clock_mhz"),
                        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "<yaml>")):
        path = tmp_path / "c.yaml"
        path.write_text(text)
        code, _, err = _cli(capsys, "simulate-gemm", "8", "8", "8", "--config", str(path))
        assert code == 2 and f"config field '{field}'" in err and len(err.splitlines()) == 1
    # a config written by satmem itself still loads
    path.write_text(preset("small8").to_yaml())
    assert AcceleratorConfig.from_yaml(path.read_text()) == preset("small8")


rows = st.lists(st.lists(st.text(string.printable.replace("\r", ""), max_size=6), max_size=9),
                max_size=5)
HEADERS = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
           "Num Filter, Strides,", "Layer, M, N, K,", "", "x,y"]


@SETTINGS
@given(header=st.sampled_from(HEADERS), body=rows, bom=st.booleans())
def test_generated_topologies_give_a_result_or_one_line(tmp_path, capsys, header, body, bom):
    text = header + "\n" + "\n".join(",".join(r) for r in body) + "\n"
    path = tmp_path / "t.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    _one_line_or_result(*_cli(capsys, "simulate", "--topology", str(path), "--config", "tiny",
                              "--json"))


def test_topologies_that_are_empty_binary_or_endless_are_refused_in_one_line(capsys, tmp_path):
    cases = {"header.csv": b"Layer, M, N, K,\n", "blank.csv": b"\n\n\n",
             "binary.csv": b"Layer, M\x00, N, K\n",
             "latin1.csv": b"Layer, M, N, K\n\xe9, 1, 2, 3\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        for extra in ((), ("--json",)):
            code, out, err = _cli(capsys, "simulate", "--topology", str(tmp_path / name),
                                  "--config", "tiny", *extra)
            assert code == 2 and out == "" and len(err.splitlines()) == 1, (name, err)
    code, _, err = _cli(capsys, "simulate", "--topology", "/dev/zero", "--config", "tiny")
    assert code == 2 and "larger than 16 MiB" in err
    code, _, err = _cli(capsys, "simulate-gemm", "8", "8", "8", "--config", "/dev/zero")
    assert code == 2 and "larger than 16 MiB" in err
    # a byte-order mark is not a missing column
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfLayer, M, N, K,\nfc, 8, 8, 8,\n")
    code, out, err = _cli(capsys, "simulate", "--topology", str(bom), "--config", "tiny")
    assert code == 0 and "fc" in out, err


@SETTINGS
@given(data=values)
def test_generated_sweep_specs_give_a_result_or_one_line(tmp_path, capsys, data):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(data))
    code, out, err = _cli(capsys, "sweep", str(spec), "--db", str(tmp_path / "s.duckdb"),
                          "--workers", "0", "--max-points", "1", "--quiet")
    _one_line_or_result(code, out or "-", err)


def test_a_deeply_nested_sweep_spec_is_one_line(capsys, tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")
    code, _, err = _cli(capsys, "sweep", str(spec))
    assert code == 2 and "nested too deeply" in err and len(err.splitlines()) == 1
    assert Path(spec).exists()


# --- SCALE-Sim .cfg files, through `simulate --topology` and `scalesim` -------------------------

SCALESIM = Path(__file__).resolve().parents[1] / "dataflow" / "data" / "scalesim_v3"


def _cfg_keys():
    from dataflow.scalesim import SCALESIM_CFG_KEYS

    return {sec: list(keys) for sec, keys in SCALESIM_CFG_KEYS.items()}


cfg_value = st.one_of(st.integers(-5, 2**66).map(str), st.sampled_from(
    ["os", "ws", "is", "true", "False", "", "2:4", "ellpack_block", "x" * 40, "1e3", "-0",
     "64 # comment", "\x00"]), st.text(string.printable, max_size=10))
cfg_section = st.sampled_from(sorted(_cfg_keys()) + ["bogus"]).flatmap(
    lambda sec: st.tuples(st.just(sec), st.dictionaries(
        st.sampled_from(_cfg_keys().get(sec, ["Whatever"]) + ["Unknown"]), cfg_value,
        max_size=6)))


def _cfg_text(sections, sep) -> str:
    lines = []
    for sec, kv in sections:
        lines.append(f"[{sec}]")
        lines += [f"{k}{sep}{v}" for k, v in kv.items()]
    return "\n".join(lines) + "\n"


@SETTINGS
@given(sections=st.lists(cfg_section, max_size=4), sep=st.sampled_from([" : ", "=", ": "]),
       base=st.booleans())
def test_generated_scalesim_cfgs_give_a_result_or_one_line(tmp_path, capsys, sections, sep,
                                                          base):
    text = _cfg_text(sections, sep)
    if base:  # on top of a valid file, so that some runs get past the first error
        text = (SCALESIM / "os8.cfg").read_text() + text
    cfg = tmp_path / "g.cfg"
    cfg.write_text(text, errors="surrogateescape")
    topo = str(SCALESIM / "small_gemm.csv")
    _one_line_or_result(*_cli(capsys, "simulate", "--topology", topo, "--scalesim-cfg",
                              str(cfg), "--config", "tiny"))
    _one_line_or_result(*_cli(capsys, "scalesim", "-c", str(cfg), "-t", topo, "-p",
                              str(tmp_path / "out")))


# --- command lines ------------------------------------------------------------------------------

_ARGS = {
    "info": [["--config"], ["tiny", "vcu1525", "small8", "nope", ""], ["--json"]],
    "simulate-gemm": [["0", "1", "7", "-3", "x", "65536", str(2**40)], ["--dataflow"],
                      ["os", "ws", "is"], ["--sparsity"], ["2:8", "3:8", "2:4", "a:b", "0:4"],
                      ["--config"], ["tiny", "small8"], ["--max-commands"], ["0", "-1", "5"],
                      ["--json"]],
    "export-topology": [["--model"], ["resnet18", "nope", "x.py:f", "bert_base"], ["--pass"],
                        ["fwd", "all", "grad"], ["--method"], ["dense", "bdwp", "magic"],
                        ["--seq-len"], ["0", "16", "x"], ["--batch"], ["1", "-2"],
                        ["--phase"], ["train", "prefill", "decode"]],
}


@st.composite
def _argv(draw):
    cmd = draw(st.sampled_from(sorted(_ARGS)))
    pools = _ARGS[cmd]
    words = [draw(st.sampled_from(pool)) for pool in draw(st.lists(
        st.sampled_from(pools), max_size=8))]
    return [cmd, *words]


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=_argv())
def test_generated_command_lines_give_a_result_or_one_line(tmp_path, capsys, argv):
    if argv[0] == "export-topology":
        argv = [*argv, "--out", str(tmp_path / "t.csv")]
        if "resnet18" in argv or "bert_base" in argv:  # keep each run short
            argv = [*argv, "--seq-len", "16"] if "bert_base" in argv else argv
    code, out, err = _cli(capsys, *argv)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert err.startswith("satmem: error:") and len(err.strip().splitlines()) == 1, (argv,
                                                                                         err)
