"""MRRMSE, the competition metric, the row-wise metrics openproblems reports beside it, cell-eval's
DE-centric metrics, and a bootstrap over compounds.

A row is one (cell type, compound) profile across genes: ``y`` is the truth, ``ŷ`` the prediction,
``n`` the number of genes. Every ``rowwise_*`` function returns one value per row; a score is the
mean over rows (openproblems' ``mean_rowwise_*``), accumulated in float64. Non-finite values are
refused (openproblems replaces a NaN prediction by 0 with a warning; here it is an error).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

from perturbkit.errors import DataValidationError

CLIP = 4.0  # openproblems' clipped_sign_log10_pval layer: values clipped to ±4 (-log10 of p = 1e-4)
DE_THRESHOLD = 2.0  # a gene is truly DE in a row when |signed -log10 p| > 2, i.e. p < 0.01
TOP_K = (50, 100, 200)


def _finite(matrix: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataValidationError(f"{what} holds {matrix[row, column]} at row {row}, gene column {column}: "
                                  "non-finite values are refused, not replaced")


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"expected two rows x genes matrices of one shape, got {y_true.shape} and {y_pred.shape}")
    _finite(y_true, "the truth")
    _finite(y_pred, "the prediction")
    return y_true, y_pred


def clip_layer(values) -> np.ndarray:
    """openproblems' clipped layer: ``clip(v, -4, 4)``."""
    return np.clip(values, -CLIP, CLIP)


def rowwise_rmse(y_true, y_pred) -> np.ndarray:
    """``RMSE_i = sqrt(1/n · Σ_j (y_ij − ŷ_ij)²)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.sqrt(np.mean(np.square(y_true - y_pred), axis=1))


def mrrmse(y_true, y_pred) -> float:
    """Mean over rows of the root-mean-square error across genes: ``1/R · Σ_i RMSE_i``."""
    return float(rowwise_rmse(y_true, y_pred).mean())


def rowwise_mae(y_true, y_pred) -> np.ndarray:
    """``MAE_i = 1/n · Σ_j |y_ij − ŷ_ij|``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=1)


def _rowwise_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, 0.0)


def rowwise_pearson(y_true, y_pred) -> np.ndarray:
    """``r_i = Σ_j (y_ij − ȳ_i)(ŷ_ij − ŷ̄_i) / sqrt(Σ_j (y_ij − ȳ_i)² · Σ_j (ŷ_ij − ŷ̄_i)²)``; 0 for a constant row
    (openproblems replaces the undefined correlation by 0)."""
    return _rowwise_correlation(*_pair(y_true, y_pred))


def rowwise_spearman(y_true, y_pred) -> np.ndarray:
    """Pearson's ``r_i`` of the rows' ranks (ties get their average rank, as R's ``cor(method="spearman")``);
    0 for a constant row."""
    y_true, y_pred = _pair(y_true, y_pred)
    return _rowwise_correlation(rankdata(y_true, axis=1), rankdata(y_pred, axis=1))


def rowwise_cosine(y_true, y_pred) -> np.ndarray:
    """``cos_i = Σ_j y_ij ŷ_ij / (‖y_i‖ · ‖ŷ_i‖)``; 0 for an all-zero row."""
    y_true, y_pred = _pair(y_true, y_pred)
    denominator = np.linalg.norm(y_true, axis=1) * np.linalg.norm(y_pred, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (y_true * y_pred).sum(axis=1) / denominator, 0.0)


ROWWISE_METRICS = {
    "mrrmse": rowwise_rmse,
    "mae": rowwise_mae,
    "pearson": rowwise_pearson,
    "spearman": rowwise_spearman,
    "cosine": rowwise_cosine,
}


def rowwise_sign_agreement(y_true, y_pred, threshold: float = DE_THRESHOLD) -> np.ndarray:
    """cell-eval's direction match: over the row's truly DE genes ``D_i = {j : |y_ij| > threshold}``,
    ``1/|D_i| · Σ_{j∈D_i} [sign(ŷ_ij) = sign(y_ij)]`` (a prediction of exactly 0 never agrees);
    NaN for a row without DE genes (left out of the mean, as cell-eval leaves the perturbation out)."""
    y_true, y_pred = _pair(y_true, y_pred)
    de = np.abs(y_true) > threshold
    agree = (np.sign(y_pred) == np.sign(y_true)) & de
    n_de = de.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_de > 0, agree.sum(axis=1) / n_de, np.nan)


def _top_shares(magnitude: np.ndarray, descending: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per row, each gene's share of the row's top ``k`` places by ``magnitude``: 1 above the k-th largest
    value, 0 below it, and the genes tied with it share the places left (their chance of a place under
    random tie-breaking), so a constant prediction such as zeros gets its expected overlap, not the
    overlap of whichever genes come first."""
    kth = np.take_along_axis(descending, np.maximum(k - 1, 0)[:, None], axis=1)
    above = magnitude > kth
    tied = magnitude == kth
    places_left = k - above.sum(axis=1)
    shares = above + tied * (places_left / np.maximum(tied.sum(axis=1), 1))[:, None]
    shares[k == 0] = 0.0
    return shares


def rowwise_top_k(y_true, y_pred, ks=TOP_K, threshold: float = DE_THRESHOLD) -> dict[str, np.ndarray]:
    """cell-eval's top-k overlap and precision, with the signed -log10 p-values as the DE statistic.

    ``T_i(m)`` is the row's m genes of largest ``|y|`` (all truly DE, ``|y| > threshold``, while
    ``m ≤ |D_i|``); ``P_i(m)`` the m genes of largest ``|ŷ|`` (no threshold: a prediction shrunk
    toward zero still ranks genes). With ``k' = min(k, |D_i|)``:

    - ``overlap@k_i = |T_i(k') ∩ P_i(k')| / k'`` (cell-eval: intersection / k_real),
    - ``precision@k_i = |T_i(k') ∩ P_i(k)| / k`` (cell-eval: intersection / k_pred),

    both 0 for a row without DE genes. Ties at the k-th place count by their share (``_top_shares``).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    n_rows, n_genes = y_true.shape
    true_size, pred_size = np.abs(y_true), np.abs(y_pred)
    true_desc, pred_desc = -np.sort(-true_size, axis=1), -np.sort(-pred_size, axis=1)
    n_de = (true_size > threshold).sum(axis=1)
    out = {}
    for k in ks:
        k_all = np.full(n_rows, min(k, n_genes))
        k_true = np.minimum(k_all, n_de)
        true_top = _top_shares(true_size, true_desc, k_true)
        overlap = (true_top * _top_shares(pred_size, pred_desc, k_true)).sum(axis=1)
        precision = (true_top * _top_shares(pred_size, pred_desc, k_all)).sum(axis=1)
        out[f"precision@{k}"] = precision / k_all
        out[f"overlap@{k}"] = np.where(k_true > 0, overlap / np.maximum(k_true, 1), 0.0)
    return out


def rowwise_discrimination(y_true, y_pred, groups) -> np.ndarray:
    """cell-eval's discrimination score, within each group (cell type) of ``g`` rows:
    ``1 − r_i / g`` with ``r_i = #{j in the group : ‖ŷ_i − y_j‖₁ < ‖ŷ_i − y_i‖₁}``, the number of other
    compounds' true profiles closer (L1, cell-eval's default) to row i's prediction than its own.
    1: the prediction is closest to its own compound's profile; 1/g: farthest."""
    y_true, y_pred = _pair(y_true, y_pred)
    groups = np.asarray(groups, dtype=object)
    scores = np.empty(len(y_true))
    for group in pd.unique(groups):
        rows = np.flatnonzero(groups == group)
        distances = cdist(y_pred[rows], y_true[rows], metric="cityblock")
        own = np.arange(len(rows))
        rank = rankdata(distances, axis=1, method="min")[own, own] - 1  # how many are strictly closer
        scores[rows] = 1.0 - rank / len(rows)
    return scores


def bootstrap_means(per_row: pd.DataFrame, clusters, *, ratios: dict[str, tuple[str, str]] | None = None,
                    resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Resampled means of each column of ``per_row``: ``resamples`` rows, one column per metric.

    Each resample draws the clusters (compounds) with replacement, ``C`` of ``C``, and takes every
    row of each drawn cluster as often as it was drawn; a column's resampled value is the mean of
    its non-NaN rows. ``ratios`` adds ``name: (numerator, denominator)`` columns, the ratio of two
    columns' means in the same resample (e.g. MRRMSE / MRRMSE of zeros). Seeded: the same seed gives
    the same resamples. One matrix product over per-cluster sums, so it is fast at any gene count.
    """
    codes, uniques = pd.factorize(np.asarray(clusters, dtype=object))
    values = per_row.to_numpy(dtype=np.float64)
    present = ~np.isnan(values)
    sums = np.zeros((len(uniques), values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, codes, np.where(present, values, 0.0))
    np.add.at(counts, codes, present)
    draws = np.random.default_rng(seed).multinomial(len(uniques), np.full(len(uniques), 1.0 / len(uniques)), size=resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = pd.DataFrame((draws @ sums) / (draws @ counts), columns=per_row.columns)
        for name, (numerator, denominator) in (ratios or {}).items():
            means[name] = means[numerator] / means[denominator]
    return means


def percentile_interval(resampled: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per column, the ``level`` percentile interval of the resampled values (columns ``low``, ``high``)."""
    tail = (1.0 - level) / 2 * 100
    with warnings.catch_warnings():  # a score no row defines (e.g. sign agreement without DE genes) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(resampled.to_numpy(), [tail, 100 - tail], axis=0)
    return pd.DataFrame({"low": low, "high": high}, index=resampled.columns)


def ratio_interval(numerator, denominator, clusters, *, weights=None, resamples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Bootstrap percentile interval of ``Σ_i w_i·a_i / Σ_i w_i·b_i`` (e.g. a weighted MRRMSE over zeros'),
    the clusters (compounds) resampled as in :func:`bootstrap_means`."""
    weights = np.ones(len(numerator)) if weights is None else np.asarray(weights, dtype=np.float64)
    per_row = pd.DataFrame({"a": weights * np.asarray(numerator), "b": weights * np.asarray(denominator)})
    resampled = bootstrap_means(per_row, clusters, ratios={"ratio": ("a", "b")}, resamples=resamples, seed=seed)
    low, high = percentile_interval(resampled[["ratio"]], level).loc["ratio"]
    return float(low), float(high)
