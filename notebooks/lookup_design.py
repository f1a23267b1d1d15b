# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lookup-engine design: memory tier x gather lanes -> MemoryFormer step time
#
# MemoryFormer replaces the projections of a transformer with hashed table lookups, so its
# training step streams table rows from big memory: the lookup engine's GATHERs (forward),
# SCATTERs (table gradients) and row updates. This notebook puts every table of
# MemoryFormer-tiny in one memory tier preset (`hwsim.tiers.tier_preset`: on-chip SRAM, HBM2e,
# DDR4, DDR5, CXL-attached DRAM, persistent memory), the rest of the `vcu1525` machine
# unchanged, and varies the engine's fp32 accumulate lanes (`lookup.gather_lanes`: table-row
# elements weighted and accumulated per cycle). Each point is one whole training step compiled
# by `dataflow` and timed by `hwsim` (`dataflow.simulate_model`).

# %% tags=["parameters"]
import os

# SATMEM_NOTEBOOK_QUICK=1 (the test suite) runs three tiers, three lane counts, 128 tokens.
QUICK = os.environ.get("SATMEM_NOTEBOOK_QUICK", "0") == "1"
TIERS = ("sram", "ddr4", "pmem") if QUICK else ("sram", "hbm2e", "ddr4", "ddr5", "cxl", "pmem")
LANES = (16, 64, 256) if QUICK else (16, 32, 64, 128, 256, 512)
SEQ_LEN = 128 if QUICK else 512

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dataflow import simulate_model
from dataflow.workload import extract
from dataflow.zoo import get_model
from hwsim import preset
from reports.memoryformer_report import sweep_config

base = preset("vcu1525")
# The tables' footprint on the meta device (no weights built): the fp16 table T the forward
# reads plus the fp32 master copy, gradient and momentum a training step touches, and a row of
# alignment per table (what `satmem report memoryformer` sizes its tier sweep by).
model, tokens = get_model("memoryformer_tiny", device="meta", seq_len=SEQ_LEN)
tables = extract(model, tokens, training=False).lookup_totals()
need = tables["entries"] * (2 + 3 * 4) + 4 * tables["tables"] * 8192
print(f"MemoryFormer-tiny: {tables['tables']} tables, {tables['entries']:,} entries, "
      f"{tables['gathered_bytes_per_token']:,} B of rows gathered a token; "
      f"{need / 2**30:.1f} GiB with training state")

# %% [markdown]
# ## The sweep
#
# `sweep_config` gives `vcu1525` a single lookup tier (grown to the next power of two of GiB
# when the preset is too small for the tables); the lane count is then set on that config.

# %%
rows = []
for tier in TIERS:
    cfg, grown = sweep_config(base, tier, need)
    t = cfg.lookup.tiers[0]
    for lanes in LANES:
        c = dataclasses.replace(cfg, lookup=dataclasses.replace(cfg.lookup, gather_lanes=lanes))
        res = simulate_model("memoryformer_tiny", "dense", None, c, 1, compare_dense=False,
                             phase="train", seq_len=SEQ_LEN)
        tt = res.totals
        moved = tt.get(f"tier_{tier}_read", 0) + tt.get(f"tier_{tier}_write", 0)
        rows.append({
            "tier": tier, "lanes": lanes, "cycles": int(tt["cycles"]),
            "step_ms": tt["seconds"] * 1e3, "path_lookup": int(tt["path_lookup"]),
            "busy_lookup": int(tt["busy_lookup"]), "tier_bytes": int(moved),
            "tier_read": int(tt.get(f"tier_{tier}_read", 0)),
            "tier_write": int(tt.get(f"tier_{tier}_write", 0)),
            "peak_gbps": t.peak_gbps, "peak_write_gbps": t.peak_write_gbps,
            "clock_mhz": c.clock_mhz})
df = pd.DataFrame(rows)
# tier bytes (row reads, and the table updates' writes) over the time the lookup engine was
# busy: what the engine drew from and wrote to the tier
df["engine_gbps"] = df.tier_bytes * df.clock_mhz / 1e3 / df.busy_lookup
df["lookup_share"] = df.path_lookup / df.cycles
print(df[["tier", "lanes", "cycles", "step_ms", "lookup_share", "engine_gbps", "peak_gbps"]]
      .to_string(index=False, float_format="{:.3f}".format))

# %% [markdown]
# ## What the numbers must satisfy
#
# More lanes should never slow a step down; this allows 0.1%, since the full run finds CXL
# 0.007% slower at 512 lanes than at 256 (the lookup engine's busy cycles in the backward
# passes grow: a timing anomaly of its model, not explained yet; printed below when it
# happens). At every lane count on-chip SRAM is the fastest tier and persistent memory the
# slowest. The engine never draws rows faster than the tier can give
# them (the time the tier needs for its bytes at peak read and write bandwidth fits in the
# engine's busy time). Lanes help a fast tier more than a slow one: on PMem the step is bound by
# the tier, so going from the fewest to the most lanes gains less there than on SRAM.

# %%
step = df.pivot(index="lanes", columns="tier", values="cycles").loc[list(LANES), list(TIERS)]
slower = step.diff().iloc[1:]
if (slower > 0).any().any():
    print("more lanes, more cycles:\n" + slower.stack().loc[lambda v: v > 0].to_string())
assert (slower <= 1e-3 * step.shift(1).iloc[1:]).all().all(), step
assert (step.idxmin(axis=1) == "sram").all() and (step.idxmax(axis=1) == "pmem").all(), step
at_peak_s = df.tier_read / (df.peak_gbps * 1e9) + df.tier_write / (df.peak_write_gbps * 1e9)
busy_s = df.busy_lookup / (df.clock_mhz * 1e6)
assert (at_peak_s <= busy_s * (1 + 1e-9)).all(), df
assert ((df.path_lookup > 0) & (df.path_lookup <= df.cycles)).all()
gain = step.iloc[0] / step.iloc[-1]
print("step speedup from", LANES[0], "to", LANES[-1], "lanes:",
      ", ".join(f"{k} {v:.2f}x" for k, v in gain.items()))
assert gain["sram"] > gain["pmem"] >= 1.0, gain

# %% [markdown]
# ## Step time against lanes, and where the step's critical path goes

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
for i, tier in enumerate(TIERS):
    ax0.plot(step.index, step[tier] / (base.clock_mhz * 1e3), "o-", color=f"C{i}", label=tier)
ax0.set_xscale("log", base=2)
ax0.set_xticks(list(LANES), [str(n) for n in LANES])
ax0.set(xlabel="gather lanes (fp32 accumulates a cycle)", ylabel="training step, ms",
        title=f"MemoryFormer-tiny, sequence {SEQ_LEN}, vcu1525")
ax0.legend(title="all tables in")
top = df[df.lanes == LANES[-1]].set_index("tier").loc[list(TIERS)]
ms = 1e3 / (base.clock_mhz * 1e6)
ax1.bar(top.index, (top.cycles - top.path_lookup) * ms, label="rest of the critical path")
ax1.bar(top.index, top.path_lookup * ms, bottom=(top.cycles - top.path_lookup) * ms,
        label="lookup engine", color="C3")
ax1.set(ylabel="training step, ms", title=f"Critical path at {LANES[-1]} gather lanes")
ax1.legend()
fig.tight_layout()
plt.show()
np.testing.assert_allclose(top.step_ms, top.cycles * ms)
