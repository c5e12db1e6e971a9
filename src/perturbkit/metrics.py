"""MRRMSE, the competition metric, and the row-wise metrics openproblems reports beside it.

Every metric is computed per row (one cell type x compound profile across genes) and then
averaged over rows, accumulating in float64.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"expected two rows x genes matrices of one shape, got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def rowwise_rmse(y_true, y_pred) -> np.ndarray:
    y_true, y_pred = _pair(y_true, y_pred)
    return np.sqrt(np.mean(np.square(y_true - y_pred), axis=1))


def mrrmse(y_true, y_pred) -> float:
    """Mean over rows of the root-mean-square error across genes."""
    return float(rowwise_rmse(y_true, y_pred).mean())


def rowwise_mae(y_true, y_pred) -> np.ndarray:
    y_true, y_pred = _pair(y_true, y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=1)


def _rowwise_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, 0.0)


def rowwise_pearson(y_true, y_pred) -> np.ndarray:
    return _rowwise_correlation(*_pair(y_true, y_pred))


def rowwise_spearman(y_true, y_pred) -> np.ndarray:
    y_true, y_pred = _pair(y_true, y_pred)
    return _rowwise_correlation(rankdata(y_true, axis=1), rankdata(y_pred, axis=1))


def rowwise_cosine(y_true, y_pred) -> np.ndarray:
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


def score_table(y_true, y_pred, groups) -> pd.DataFrame:
    """Each metric's mean per group (e.g. cell type) and over all rows (the ``all`` row)."""
    per_row = pd.DataFrame({name: metric(y_true, y_pred) for name, metric in ROWWISE_METRICS.items()})
    per_row["group"] = np.asarray(groups, dtype=object)
    table = per_row.groupby("group", sort=True).mean()
    table.loc["all"] = per_row.drop(columns="group").mean()
    table.insert(0, "rows", per_row.groupby("group").size().reindex(table.index).fillna(len(per_row)).astype(int))
    return table
