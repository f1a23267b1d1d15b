# %% [markdown]
# # N:M sparse training: accuracy against accelerator cycles
#
# A co-design notebook in percent format (open it in Jupyter with jupytext, or in VS Code as
# cells); the test suite executes it top to bottom. It trains a small MLP on scikit-learn's
# digits dense and with BDWP 2:8, then compiles one training step of each for the `vcu1525`
# preset and compares the simulated speedup with the ideal bound from the MAC counts.

# %%
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from algorithms import sparsify
from algorithms.flops import ideal_speedup, training_macs
from dataflow import CompileOptions, simulate_workload
from dataflow.workload import extract
from hwsim import preset

torch.manual_seed(0)
digits = load_digits()
order = torch.randperm(len(digits.target), generator=torch.Generator().manual_seed(0))
x = torch.tensor(digits.data, dtype=torch.float32)[order] / 16.0
y = torch.tensor(digits.target)[order]
train, test = slice(0, 1400), slice(1400, None)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def fit(model: nn.Module, epochs: int = 15) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(epochs):
        for i in range(0, 1400, 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[train][i:i + 64]), y[train][i:i + 64]).backward()
            opt.step()
    with torch.no_grad():
        return (model(x[test]).argmax(1) == y[test]).float().mean().item()


# %% [markdown]
# ## Accuracy: dense against BDWP 2:8 (the first and last layers stay dense)

# %%
skip = ("0", "4")
dense = mlp()
acc_dense = fit(dense)
sparse = sparsify(mlp(), pattern="2:8", method="bdwp", skip=skip)
acc_sparse = fit(sparse)
print(f"test accuracy: dense {acc_dense:.3f}, BDWP 2:8 {acc_sparse:.3f}")
assert acc_dense > 0.9 and acc_sparse > 0.85

# %% [markdown]
# ## Cycles: one training step at batch 64 on vcu1525

# %%
config = preset("vcu1525")
batch = x[:64]
macs = training_macs(mlp(), batch, method="bdwp", pattern="2:8", skip=skip)
bound = ideal_speedup(macs)
cycles = {}
for method in ("dense", "bdwp"):
    wl = extract(mlp(), batch, method=method, pattern=None if method == "dense" else "2:8",
                 skip=skip)
    _, table, totals = simulate_workload(wl, config, CompileOptions())
    cycles[method] = totals["cycles"]
speedup = cycles["dense"] / cycles["bdwp"]
print(f"simulated step: dense {cycles['dense']:,} cycles, BDWP {cycles['bdwp']:,} cycles; "
      f"speedup {speedup:.2f}x against an ideal {bound:.2f}x")
assert 1.0 < speedup <= bound + 1e-9
np.testing.assert_array_less(0, list(cycles.values()))
