"""The torch models at full scale (614 x 18,211 demo): 4-fold CV under the default scheme (test_like) with the default
configs (all genes as outputs, and 64 target-PCA scores), beside a seed-style loop (batch 32, per-batch AdamW, same
network) timed on a lymphoid_holdout fold."""

from __future__ import annotations

from common import measure

CV = """
import statistics, time
from perturbkit.config import load_config
from perturbkit.cv import run_cv
from perturbkit.data import load
dataset = load("demo")
config = load_config("{model}", overrides={overrides!r})
start = time.perf_counter()
meta = run_cv(dataset, config, progress=False).meta
total = time.perf_counter() - start
folds = meta["folds"]
result = {{
    "cv_seconds": total,
    "fold_seconds": statistics.median(f["seconds"] for f in folds),
    "epoch_seconds": statistics.median(s for f in folds for s in f["history"]["seconds"]),
    "epochs": statistics.median(len(f["history"]["epoch"]) for f in folds),
    "refit_epochs": statistics.median(len(f["history"].get("refit", {{}}).get("epoch", [])) for f in folds),
    "parameters": folds[0]["history"]["parameters"],
    "mrrmse": meta["scores"]["overall"],
}}
"""

# The seed's loop on the same network and inputs: a DataLoader of batch 32, AdamW stepping per batch
# (its default implementation), validation scored every epoch. Timed for a few epochs of fold 0.
SEED = """
import time, numpy as np, torch
from sklearn.base import clone
from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS, build_model
from perturbkit.data import load
from perturbkit.folds import make_splitter
from perturbkit.models.torch_loop import resolve_device, set_threads
dataset = load("demo")
train_idx, valid_idx = next(make_splitter("lymphoid_holdout", test_compounds=dataset.test["sm_name"].astype(str)).split(dataset.obs))
X, y = dataset.obs[FEATURE_COLUMNS], dataset.targets
model = build_model(load_config("{model}"), 0)
model.device_ = resolve_device("auto")
set_threads(0)
model.features_ = clone(model.features)
continuous, tokens = model._tensors(X.iloc[train_idx], y[train_idx])
valid = model._tensors(X.iloc[valid_idx])
torch.manual_seed(0)
module = model._build_module(continuous.shape[1], [len(model.vocabularies_[c]) + 1 for c in model.token_fields], y.shape[1])
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(continuous, tokens, torch.from_numpy(y[train_idx])), batch_size=32, shuffle=True)
optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
seconds = []
for epoch in range({epochs}):
    start = time.perf_counter()
    module.train()
    for c, t, target in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(module(c, t), target)
        loss.backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        module(*valid)
    seconds.append(time.perf_counter() - start)
result = {{"epoch_seconds": float(np.median(seconds))}}
"""

SETTINGS = (("mlp", []), ("mlp", ["params.target_components=64"]), ("transformer", []),
            ("transformer", ["params.target_components=64"]))


def run(repeats: int, seed_epochs: int = 3) -> str:
    lines = [
        "## Torch models (full-size demo, 614 x 18,211, 4-fold test_like, default configs)",
        "",
        "Ours: `perturbkit.models.torch_loop` (batch 128, fused Adam, inputs prepared once per fold; selection epochs on an",
        "inner split of the fold's training rows, then a refit on all of them for the selected epochs). Seed-style: the same",
        f"network and inputs, a DataLoader of batch 32 and AdamW stepping per batch, timed over {seed_epochs} epochs of fold 0.",
        "A fold is features + selection + refit + predicting its validation and test rows.",
        "",
        "| model | outputs | parameters | selection + refit epochs (median) | per epoch | per fold | 4-fold CV | peak RSS | MRRMSE | seed-style per epoch | seed / ours per epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    seed_style = {}
    for model, overrides in SETTINGS:
        ours = measure(CV.format(model=model, overrides=overrides), repeats)
        if model not in seed_style:  # the seed's loop trains on all genes: one measurement per network
            seed_style[model] = measure(SEED.format(model=model, epochs=seed_epochs), repeats)
        seed = seed_style[model]
        ratio = seed["epoch_seconds"] / ours["epoch_seconds"]
        outputs = "64 PCA scores" if overrides else "all genes"
        lines.append(
            f"| `{model}` | {outputs} | {ours['parameters'] / 1e6:.1f} M | {ours['epochs']:.0f} + {ours['refit_epochs']:.0f} | "
            f"{ours['epoch_seconds']:.2f} s | {ours['fold_seconds']:.1f} s | {ours['cv_seconds']:.1f} s | {ours['peak_rss_mib']:.0f} MiB | "
            f"{ours['mrrmse']:.4f} | {seed['epoch_seconds']:.2f} s | {ratio:.1f}x |"
        )
    lines.append("")
    return "\n".join(lines)
