"""AcceleratorConfig: presets, YAML round trips, hashing, and the errors users see."""

from __future__ import annotations

import dataclasses

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


# --- the lookup engine's section ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("lookup: {tiers: [{name: x, kind: dram}]}",
     "config field 'lookup.tiers[0].kind' = 'dram' is not allowed: expected one of ('sram', "
     "'hbm', 'ddr', 'cxl', 'pmem')"),
    ("lookup: {tiers: [{name: x, interleave_bytes: 16384}]}",
     "config field 'lookup.tiers[0].interleave_bytes' = 16384 is not allowed: expected a power "
     "of two from access_bytes (64) to row_bytes (8192)"),
    ("lookup: {tiers: [{name: x, access_bytes: 48}]}",
     "config field 'lookup.tiers[0].access_bytes' = 48 is not allowed: expected a power of two"),
    ("lookup: {tiers: [{name: s, kind: sram, row_miss_ns: 5}]}",
     "config field 'lookup.tiers[0].row_miss_ns' = 5 is not allowed: expected 0 for an sram tier"),
    ("lookup: {tiers: [{name: a}, {name: a}]}",
     "config field 'lookup.tiers[1].name' = 'a' is not allowed: expected a name no other tier "
     "has (tiers: ['a', 'a'])"),
    ("lookup: {tiers: [{name: x, outstanding: 0}]}",
     "config field 'lookup.tiers[0].outstanding' = 0 is not allowed: expected a positive integer"),
    ("lookup: {tiers: [{name: x, write_bandwidth_gbps: 0}]}",
     "config field 'lookup.tiers[0].write_bandwidth_gbps' = 0 is not allowed: expected a "
     "positive number"),
    ("lookup: {tiers: [{name: x, pj_per_byte: 3}]}", "config field 'lookup.tiers[0].pj_per_byte'"),
    ("lookup: {placement: [hbm]}",
     "config field 'lookup.placement' = ('hbm',) is not allowed: expected distinct tier names "
     "from ('ddr',), or () for all in order"),
    ("lookup: {placement: [ddr, ddr]}", "config field 'lookup.placement' = ('ddr', 'ddr')"),
    ("lookup: {element: fp32}",
     "config field 'lookup.element' = 'fp32' is not allowed: expected one of ('fp16', 'int8')"),
    ("lookup: {hot_rows: -1}",
     "config field 'lookup.hot_rows' = -1 is not allowed: expected a non-negative integer"),
    ("lookup: {tiers: []}", "config field 'lookup.tiers' = () is not allowed: expected at least "
                            "one memory tier"),
])
def test_bad_lookup_fields_name_field_and_allowed_values(text, message):
    with pytest.raises(ConfigError) as err:
        AcceleratorConfig.from_yaml(text)
    assert message in str(err.value)


def test_lookup_section_with_every_tier_preset_round_trips_through_yaml():
    from hwsim.config import LookupConfig
    from hwsim.tiers import TIER_PRESETS, tier_preset

    lookup = LookupConfig(hash_lanes=8, gather_lanes=64, tiers=tuple(
        tier_preset(n) for n in TIER_PRESETS), placement=("sram", "hbm2e", "pmem"), hot_rows=4096,
        element="int8", request_ports=2, inflight_kib=32)
    cfg = dataclasses.replace(preset("tiny"), lookup=lookup)
    cfg.__post_init__()  # validates
    again = AcceleratorConfig.from_yaml(cfg.to_yaml())
    assert again == cfg and again.key() == cfg.key()
    assert again.lookup.tiers[5].access_bytes == 256 and again.lookup.element_bytes == 1
    slower = cfg.replace(lookup__tiers=tuple(dataclasses.replace(t, read_latency_ns=1.0)
                                             for t in lookup.tiers))
    assert slower.key() != cfg.key() and slower.lookup.placement == lookup.placement


def test_lookup_presets_documented_values():
    tiny, vcu = preset("tiny").lookup, preset("vcu1525")
    assert (tiny.hash_lanes, tiny.gather_lanes, len(tiny.tiers), tiny.hot_rows) == (4, 4, 1, 0)
    assert tiny.placement_order == ("ddr",)
    uram, ddr = vcu.lookup.tiers
    assert (uram.kind, uram.capacity_gib * 1024, uram.row_miss_ns) == ("sram", 16, 0.0)
    # the card's four DDR4-2400 channels, as the SAT's dram section has them
    assert (ddr.kind, ddr.channels, ddr.bandwidth_gbps) == ("ddr", 4, vcu.dram.bandwidth_gbps)
    assert (ddr.banks, ddr.row_bytes, ddr.read_latency_ns, ddr.row_miss_ns) == (
        vcu.dram.banks, vcu.dram.row_bytes, vcu.dram.latency_ns, vcu.dram.row_miss_ns)
    assert vcu.lookup.placement_order == ("uram", "ddr")
    # gathers stay memory-bound: the lanes consume fp16 rows faster than the DDR delivers them
    lanes_gbps = vcu.lookup.gather_lanes * vcu.lookup.element_bytes * vcu.clock_mhz / 1000
    assert lanes_gbps > ddr.peak_gbps == pytest.approx(76.8)
    assert vcu.lookup.rows_in_flight(1024) == 64
    with pytest.raises(KeyError, match="no memory tier 'hbm'"):
        vcu.lookup.tier("hbm")


def test_replacing_tiers_keeps_the_default_placement():
    from hwsim.tiers import tier_preset

    cfg = preset("vcu1525").replace(lookup__tiers=(tier_preset("hbm2e"), tier_preset("ddr4")))
    assert cfg.lookup.placement == () and cfg.lookup.placement_order == ("hbm2e", "ddr4")
