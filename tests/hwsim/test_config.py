"""AcceleratorConfig: presets, YAML round trips, hashing, and the errors users see."""

from __future__ import annotations

import pytest

from hwsim.config import AcceleratorConfig, ConfigError, load_config, preset, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_preset_yaml_round_trip_is_identical_and_hash_stable(name):
    cfg = preset(name)
    again = AcceleratorConfig.from_yaml(cfg.to_yaml())
    assert again == cfg
    assert hash(again) == hash(cfg)
    assert again.key() == cfg.key()


def test_presets_have_distinct_keys_and_documented_shapes():
    tiny, vcu = preset("tiny"), preset("vcu1525")
    assert (tiny.array.rows, tiny.array.cols, tiny.array.dtype) == (4, 4, "int8")
    assert (vcu.array.rows, vcu.array.cols, vcu.array.dtype) == (32, 32, "fp16")
    assert vcu.dram.channels == 4 and vcu.dram.bandwidth_gbps == 19.2  # the card's DDR4-2400
    assert vcu.sore.lanes == 32  # the paper's SORE
    assert len({preset(n).key() for n in preset_names()}) == len(preset_names())


def test_derived_values_tiny():
    tiny = preset("tiny")
    assert tiny.act_depth == 1024 // 4 == 256
    assert tiny.acc_depth == 2048 // 16 == 128
    assert tiny.dram_latency_cycles == 4  # 40 ns at 100 MHz
    assert tiny.dram_bytes_per_cycle == pytest.approx(16.0)


def test_key_changes_with_any_field():
    tiny = preset("tiny")
    assert tiny.replace(array__rows=8).key() != tiny.key()
    assert tiny.replace(energy__dram_byte=21.0).key() != tiny.key()
    assert tiny.replace(clock_mhz=100.0).key() == tiny.key()


def test_yaml_with_base_preset_overrides_one_field():
    cfg = AcceleratorConfig.from_yaml("base: vcu1525\narray: {cols: 64}\n")
    assert cfg.array.cols == 64 and cfg.array.rows == 32 and cfg.dram.channels == 4


def test_buffer_deeper_than_the_isa_addresses_is_refused():
    with pytest.raises(ConfigError, match="buffers.act_kib.*16 bits"):
        AcceleratorConfig.from_yaml("base: vcu1525\narray: {rows: 16}\n")


@pytest.mark.parametrize(("text", "message"), [
    ("array: {rows: 0}", "config field 'array.rows' = 0 is not allowed: expected a positive "
                         "integer"),
    ("array: {dtype: int4}", "config field 'array.dtype' = 'int4' is not allowed: expected one "
                             "of ('int8', 'fp16')"),
    ("array: {dataflows: [is]}", "config field 'array.dataflows' = ('is',) is not allowed: "
                                 "expected a non-empty subset of ('os', 'ws')"),
    ("array: {patterns: ['3:6']}", "config field 'array.patterns' = '3:6' is not allowed"),
    ("dram: {bus_bytes: 24}", "config field 'dram.bus_bytes' = 24 is not allowed: expected a "
                              "power of two"),
    ("dram: {model: magic}", "config field 'dram.model' = 'magic' is not allowed: expected one "
                             "of ('fixed', 'banked')"),
    ("arrray: {rows: 4}", "config field 'arrray'"),
    ("array: {rowz: 4}", "config field 'array.rowz'"),
    ("clock_mhz: -5", "config field 'clock_mhz' = -5 is not allowed: expected a positive number"),
    ("lookup: {tiers: [{name: ddr, channels: 0}]}", "config field 'lookup.tiers[0].channels'"),
    ("- just\n- a list", "config field '<root>'"),
    ("array: [unclosed", "config field '<yaml>'"),
])
def test_bad_yaml_names_field_and_allowed_values(text, message):
    with pytest.raises(ConfigError) as err:
        AcceleratorConfig.from_yaml(text)
    assert message in str(err.value)


def test_bus_narrower_than_an_accumulator_row_is_refused():
    with pytest.raises(ConfigError, match="dram.bus_bytes"):
        preset("tiny").replace(array__cols=8)  # 8 x int32 = 32 bytes > 16-byte bus


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="'config' = 'nope'"):
        load_config("nope")
    with pytest.raises(ConfigError, match="readable YAML file"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="'preset' = 'huge'"):
        preset("huge")
    good = tmp_path / "c.yaml"
    good.write_text(preset("small8").to_yaml())
    assert load_config(str(good)) == preset("small8")


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        preset("tiny").array.rows = 9  # type: ignore[misc]
