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
# # Sweep analysis: the DuckDB store and the latency-energy Pareto front
#
# `satmem sweep` writes one row per (config, workload) point into a DuckDB file. This notebook
# runs a small sweep into a temporary store (in this process: `workers=0`, no Dask cluster),
# queries it with SQL, and finds for each computation (a GEMM shape and its sparsity) the design
# points, config and dataflow, that no other point beats on both latency and energy.
#
# To analyse a store of your own instead, set `STORE` to its path (or the environment variable
# `SATMEM_SWEEP_DB`): the sweep below is then skipped.

# %% tags=["parameters"]
import os

# SATMEM_NOTEBOOK_QUICK=1 (the test suite) runs a 16-point sweep.
QUICK = os.environ.get("SATMEM_NOTEBOOK_QUICK", "0") == "1"
STORE = os.environ.get("SATMEM_SWEEP_DB") or None
SPEC = {
    "name": "notebook",
    "base": "vcu1525",  # 32x32 fp16 array at 200 MHz, 4 DRAM channels
    "grid": {"clock_mhz": [150, 250] if QUICK else [100, 150, 200, 250, 300],
             "dram.channels": [1, 4] if QUICK else [1, 2, 4]},
    "workloads": [{"gemm": [1024, 1024, 1024], "dataflow": df, **sp}
                  for sp in ([{}, {"sparsity": "2:8"}] if QUICK else
                             [{}, {"sparsity": "2:4"}, {"sparsity": "2:8"}])
                  for df in ("ws", "os")],
}

# %%
import tempfile
from pathlib import Path

import duckdb
import matplotlib.pyplot as plt
import numpy as np

from reports.sweep import parse_spec, run_sweep

workdir = None
if STORE is None:
    workdir = tempfile.TemporaryDirectory(prefix="satmem-sweep-")
    STORE = Path(workdir.name) / "results.duckdb"
    spec = parse_spec(SPEC, name=SPEC["name"])
    first = run_sweep(spec, STORE, workers=0)
    print(f"{first.computed} points in {first.wall_s:.1f} s {first.where}, stored in {STORE}")
    assert first.computed == first.total == len(spec.points()) and first.failed == 0, first
    # The store is the resume state: a rerun finds every point stored and computes none.
    again = run_sweep(spec, STORE, workers=0)
    assert (again.skipped, again.computed) == (first.total, 0), again

# %% [markdown]
# ## Query the store
#
# One row per point; config fields are columns under their dotted names (quote them:
# `"dram.channels"`). A *problem* is what was computed; a *design point* is how (config and
# dataflow). Points that failed are stored with their `error` and left out.

# %%
con = duckdb.connect(str(STORE), read_only=True)
con.sql("""
    CREATE TEMP VIEW points AS
    SELECT *,
           CASE kind WHEN 'gemm'
                THEN format('gemm {}x{}x{} {}', m, n, k, coalesce(sparsity, 'dense'))
                ELSE format('{} {} {} b{} {}', model, method, coalesce(pattern, ''), batch,
                            coalesce(model_options, '')) END AS problem,
           seconds * 1e3 AS latency_ms, energy_pj * 1e-9 AS energy_mj
    FROM results WHERE error IS NULL
""")
print(con.sql("""
    SELECT problem, count(*) AS points,
           round(min(latency_ms), 3) AS best_ms, round(max(latency_ms), 3) AS worst_ms,
           round(min(energy_mj), 3) AS best_mj, round(max(energy_mj), 3) AS worst_mj
    FROM points GROUP BY problem ORDER BY problem
"""))

# %% [markdown]
# ## The Pareto front, in SQL
#
# A point is on the front when no point of the same problem is at least as good on both
# latency and energy and strictly better on one.

# %%
df = con.sql("""
    SELECT p.problem, p.workload, p.dataflow, p.clock_mhz, p."dram.channels" AS channels,
           p.cycles, p.latency_ms, p.energy_mj, p.dram_bytes,
           NOT EXISTS (
               SELECT 1 FROM points q
               WHERE q.problem = p.problem
                 AND q.seconds <= p.seconds AND q.energy_pj <= p.energy_pj
                 AND (q.seconds < p.seconds OR q.energy_pj < p.energy_pj)) AS on_front
    FROM points p ORDER BY p.problem, p.latency_ms, p.energy_mj
""").df()
con.close()
print(df[df.on_front].to_string(index=False, float_format="{:.4g}".format))

# %% [markdown]
# ## Check the front independently
#
# The same dominance relation in NumPy, pairwise: the SQL front is exactly the set of
# non-dominated points; every other point is dominated by a point on the front; along the front
# a lower latency costs more energy.

# %%
for problem, g in df.groupby("problem"):
    lat, en = g.latency_ms.to_numpy(), g.energy_mj.to_numpy()
    # dom[i, j]: point i dominates point j
    dom = ((lat[:, None] <= lat[None, :]) & (en[:, None] <= en[None, :])
           & ((lat[:, None] < lat[None, :]) | (en[:, None] < en[None, :])))
    front = ~dom.any(axis=0)
    assert (front == g.on_front.to_numpy()).all(), problem
    assert front.any(), problem
    assert not dom[np.ix_(front, front)].any(), problem
    assert dom[np.ix_(front, ~front)].any(axis=0).all(), problem
    f = g[front].drop_duplicates(["latency_ms", "energy_mj"]).sort_values("latency_ms")
    assert (np.diff(f.energy_mj) < 0).all() and (np.diff(f.latency_ms) > 0).all(), problem
    print(f"{problem}: {front.sum()} of {len(g)} points on the front, "
          f"{len(f)} distinct (latency, energy)")

# %% [markdown]
# On `vcu1525`, with its DMA timed as the RTL's (`dram.dma: wide`: a LOAD of whole contiguous
# entries asks for a 256-byte bus word of them a request), a 2:8 sparse GEMM trades latency for
# energy between the dataflows: weight-stationary is the faster, output-stationary the more
# frugal, because weight-stationary's sparse tiles reload their compressed weights and indices
# and move more than twice the DRAM bytes. (With the entry DMA, one 64-byte entry a request,
# those reloads made weight-stationary the slower one too, and the trade-off was gone.) The
# fastest clock of the grid is on every front: the energy model prices static power by the
# second and has no voltage scaling, so a faster clock never costs energy here.

# %%
if workdir is not None:  # our own sweep: what its result is known to show
    sparse = df[df.problem == "gemm 1024x1024x1024 2:8"]
    on = sparse[sparse.on_front]
    assert set(on.dataflow) == {"os", "ws"}, on
    fast, frugal = on.sort_values("latency_ms").iloc[0], on.sort_values("energy_mj").iloc[0]
    assert (fast.dataflow, frugal.dataflow) == ("ws", "os"), on
    ws = sparse[sparse.dataflow == "ws"]
    assert ws.dram_bytes.min() > 2 * sparse[sparse.dataflow == "os"].dram_bytes.max(), sparse
    assert (df[df.on_front].clock_mhz == max(SPEC["grid"]["clock_mhz"])).all()
    print(f"2:8: fastest {fast.latency_ms:.3f} ms / {fast.energy_mj:.3f} mJ ({fast.dataflow}, "
          f"{fast.clock_mhz:g} MHz, {fast.channels} ch); most frugal {frugal.latency_ms:.3f} ms "
          f"/ {frugal.energy_mj:.3f} mJ ({frugal.dataflow}); weight-stationary moves "
          f"{ws.dram_bytes.min() / frugal.dram_bytes:.1f}x the DRAM bytes")

# %% [markdown]
# ## The figure

# %%
problems = list(dict.fromkeys(df.problem))
fig, axes = plt.subplots(1, len(problems), figsize=(4.5 * len(problems), 4), squeeze=False)
for ax, problem in zip(axes[0], problems, strict=True):
    g = df[df.problem == problem]
    for i, (dfl, h) in enumerate(g.groupby("dataflow", dropna=False)):
        ax.scatter(h.latency_ms, h.energy_mj, marker="os^"[i % 3], color=f"C{i}", alpha=0.6,
                   label=f"dataflow {dfl}")
    f = g[g.on_front].sort_values("latency_ms")
    ax.step(f.latency_ms, f.energy_mj, where="post", color="k", lw=1)
    ax.scatter(f.latency_ms, f.energy_mj, facecolors="none", edgecolors="k", s=120,
               label="Pareto front")
    ax.set(xlabel="latency, ms", ylabel="energy, mJ", title=problem)
    ax.legend(fontsize=7)
fig.suptitle("Sweep design points: latency against energy")
fig.tight_layout()
plt.show()

# %%
if workdir is not None:
    workdir.cleanup()
