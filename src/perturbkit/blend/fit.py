"""One weight set fitted on Gram matrices, its optional global scale, and the blend's formula.

The formula, the same for OOF rows, test rows and the kernel: ``clip?(scale * sum_m w_m * member_m[row])``.
Clipping uses, for the rows of fold k, each gene's range over the training rows of fold k (every
de_train row not in fold k), so it never sees the truth it is scored on; test predictions are
clipped to the range of all rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perturbkit.blend import choice, objective
from perturbkit.blend.options import BlendOptions
from perturbkit.blend.search import SearchResult, search


@dataclass(frozen=True)
class Fit:
    """The member weights (on the simplex), the global scale, and the search that gave them."""

    weights: np.ndarray
    scale: float
    search: SearchResult


def fixed_fit(weights: np.ndarray, candidate: choice.Candidate) -> Fit:
    """A weight set that no search produced (the simple average or a single member)."""
    result = SearchResult(method=candidate, weights=weights, score=float("nan"), evaluations=0, seconds=0.0, chosen=candidate)
    return Fit(weights=weights, scale=1.0, search=result)


def fit_scale(gram: np.ndarray, weights: np.ndarray, low: float, high: float) -> float:
    """The global factor ``s`` minimising the MRRMSE of ``s * blend``; 1 unless it does better."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda s: objective.score(gram, weights, s), bounds=(low, high), method="bounded",
                             options={"xatol": 1e-6})
    return float(result.x) if result.fun < objective.score(gram, weights, 1.0) else 1.0


def fit_weights(gram: np.ndarray, options: BlendOptions, *, storage: str | None = None, study_name: str | None = None) -> Fit:
    """Search the weights on the rows of ``gram`` (then the scale, when asked); an optuna study is kept in ``storage``
    (the nested fits keep theirs in memory)."""
    result = search(gram, options.method, **{**options.settings, "storage": storage}, seed=options.seed, study_name=study_name)
    scale = fit_scale(gram, result.weights, options.scale_min, options.scale_max) if options.scale else 1.0
    return Fit(weights=result.weights, scale=scale, search=result)


def gram_row_rmse(gram: np.ndarray, weights: np.ndarray, scale: float) -> np.ndarray:
    """Row RMSE of ``scale * sum_m w_m member_m`` from the Gram matrices."""
    return objective.row_rmse(gram, weights, scale)


def weighted_sum(predictions: np.ndarray, weights: np.ndarray, scale: float) -> np.ndarray:
    """``scale * sum_m w_m p_m`` for member predictions (M, n, G); float32 (n, G)."""
    coef = (np.asarray(weights, dtype=np.float64) * scale).astype(np.float32)
    out = np.zeros(predictions.shape[1:], dtype=np.float32)
    for m in range(predictions.shape[0]):
        out += predictions[m] * coef[m]
    return out


def clip_ranges(targets: np.ndarray, dataset_folds: np.ndarray, folds) -> dict:
    """Per fold k: each gene's (min, max) over the de_train rows not in fold k; key None: all rows."""
    ranges = {None: (targets.min(axis=0), targets.max(axis=0))}
    for k in folds:
        train = targets[dataset_folds != k]
        ranges[int(k)] = (train.min(axis=0), train.max(axis=0))
    return ranges


def clip_by_fold(matrix: np.ndarray, folds: np.ndarray, ranges: dict) -> np.ndarray:
    out = matrix.copy()
    for k in np.unique(folds):
        rows = folds == k
        out[rows] = np.clip(out[rows], *ranges[int(k)])
    return out
