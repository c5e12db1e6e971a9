"""A demo world's figures next to the real ones (docs/demo.md shows them for every variant)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from perturbkit.data.layout import celltype_means, gene_names, nk_per_gene_std


REAL_TEST_SCORES: dict[str, float] = {"zeros": 1.57, "compound_mean": 1.47, "celltype_mean": 2.50}
"""Published MRRMSE on the real private test (B/Myeloid rows; openproblems' re-run, unclipped)."""
_QUANTILES = {"median": 50, "p90": 90, "p99": 99}


def _summary(std: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(std.mean()),
        **{name: float(np.percentile(std, q)) for name, q in _QUANTILES.items()},
        "max": float(std.max()),
    }


def calibration(world: str | os.PathLike) -> pd.DataFrame:
    """A demo world's figures next to the real ones: columns ``generated`` and ``real``.

    Rows: MRRMSE on the hidden test (``test_truth.parquet``) of predicting zeros, the compound mean
    (mean of the compound's training rows) and the cell-type mean (mean of the cell type's training
    rows), absolute and as a ratio to zeros; the largest per-gene difference between the training
    rows' per-cell-type means and ``celltype_means()`` (real: 0); the distribution of the per-gene
    std over the NK training rows and its Pearson r with the real one across genes (real: 1).
    """
    world = Path(world)
    train = pd.read_parquet(world / "de_train.parquet")
    truth = pd.read_parquet(world / "test_truth.parquet")
    genes = [c for c in train.columns if c in set(gene_names())]
    values = train[genes].to_numpy()
    target = truth[genes].to_numpy(dtype=np.float64)
    celltype_mean = pd.DataFrame(values).groupby(train["cell_type"].to_numpy()).mean()
    compound_mean = pd.DataFrame(values).groupby(train["sm_name"].to_numpy()).mean()
    predictions = {
        "zeros": np.zeros_like(target),
        "compound_mean": compound_mean.loc[truth["sm_name"]].to_numpy(),
        "celltype_mean": celltype_mean.loc[truth["cell_type"]].to_numpy(),
    }
    scores = {name: float(np.sqrt(((p - target) ** 2).mean(axis=1)).mean()) for name, p in predictions.items()}
    rows: dict[str, tuple[float, float]] = {}
    for name, score in scores.items():
        rows[f"test {name}"] = (score, REAL_TEST_SCORES[name])
    for name in ("compound_mean", "celltype_mean"):
        rows[f"test {name} / zeros"] = (scores[name] / scores["zeros"], REAL_TEST_SCORES[name] / REAL_TEST_SCORES["zeros"])
    real_means = celltype_means().loc[genes]
    difference = np.abs(celltype_mean.loc[list(real_means.columns)].to_numpy().T - real_means.to_numpy())
    rows["celltype means max |diff|"] = (float(difference.max()), 0.0)
    nk = values[(train["cell_type"] == "NK cells").to_numpy()]
    generated_std, real_std = nk.std(axis=0), nk_per_gene_std().loc[genes].to_numpy()
    for name, (ours, theirs) in zip(_summary(real_std), zip(_summary(generated_std).values(), _summary(real_std).values())):
        rows[f"NK per-gene std {name}"] = (ours, theirs)
    rows["NK per-gene std r"] = (float(np.corrcoef(generated_std, real_std)[0, 1]), 1.0)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["generated", "real"])
