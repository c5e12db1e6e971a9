"""Fold-safe target statistics: per-compound and per-cell-type mean, std and median of the targets.

Fitted on one fold's training rows only. A row whose group has no training rows (or, with
``leave_one_out``, no other training rows) gets the global statistics of the training rows. Each
(group, statistic) block has as many columns as genes, so each is reduced by its own PCA fitted
on the training rows' block.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from perturbkit.errors import ConfigError
from perturbkit.features.pca import WidePCA

STATISTICS = ("mean", "std", "median")


def _group_statistics(block: np.ndarray) -> dict[str, np.ndarray]:
    return {"mean": block.mean(axis=0), "std": block.std(axis=0), "median": np.median(block, axis=0)}


def _leave_one_out_statistics(block: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of a group (n >= 2 rows), each statistic over the group's other rows."""
    n = block.shape[0]
    block = block.astype(np.float64)
    total, total_sq = block.sum(axis=0), np.square(block).sum(axis=0)
    mean = (total - block) / (n - 1)
    variance = (total_sq - np.square(block)) / (n - 1) - np.square(mean)
    # The median of the others, from the sorted group and each row's rank in it.
    order = np.argsort(block, axis=0, kind="stable")
    ordered = np.take_along_axis(block, order, axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n)[:, None], order.shape), axis=0)

    def without_self(i: int) -> np.ndarray:
        return np.where(i < rank, ordered[i], ordered[min(i + 1, n - 1)])

    others = n - 1
    median = without_self(others // 2) if others % 2 else 0.5 * (without_self(others // 2 - 1) + without_self(others // 2))
    return {"mean": mean, "std": np.sqrt(np.maximum(variance, 0.0)), "median": median}


class TargetStatistics(TransformerMixin, BaseEstimator):
    """Group statistics of the training targets as features, one PCA-reduced block per (group, statistic).

    ``fit_transform`` featurises the training rows; with ``leave_one_out`` each training row's
    statistics exclude its own target, as they will for a row being predicted. A block keeps
    ``n_components`` components, or ``k - 1`` for a grouping of ``k`` groups (their centred statistics
    span no more); more than any grouping of the fitted rows could give is a :class:`ConfigError`.
    """

    def __init__(
        self,
        by=("sm_name", "cell_type"),
        statistics=STATISTICS,
        n_components: int = 16,
        leave_one_out: bool = False,
    ):
        self.by = by
        self.statistics = statistics
        self.n_components = n_components
        self.leave_one_out = leave_one_out

    def fit(self, X: pd.DataFrame, y) -> TargetStatistics:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y) -> np.ndarray:
        unknown = sorted(set(self.statistics) - set(STATISTICS))
        if unknown:
            raise ValueError(f"unknown target statistic(s) {unknown}; known: {list(STATISTICS)}")
        y = np.asarray(y, dtype=np.float32)
        self.global_ = {name: value.astype(np.float32) for name, value in _group_statistics(y).items()}
        self.groups_: dict[str, tuple[pd.Index, dict[str, np.ndarray]]] = {}
        blocks = {(column, name): np.empty_like(y) for column in self.by for name in self.statistics}
        for column in self.by:
            labels = X[column].astype(str).to_numpy()
            names, codes = np.unique(labels, return_inverse=True)
            stats = {name: np.empty((len(names), y.shape[1]), dtype=np.float32) for name in self.statistics}
            for code in range(len(names)):
                rows = np.flatnonzero(codes == code)
                group_stats = _group_statistics(y[rows])
                for name in self.statistics:
                    stats[name][code] = group_stats[name]
                if not self.leave_one_out:
                    row_stats = {name: np.broadcast_to(stats[name][code], (len(rows), y.shape[1])) for name in self.statistics}
                elif len(rows) > 1:
                    row_stats = _leave_one_out_statistics(y[rows])
                else:
                    row_stats = {name: np.broadcast_to(self.global_[name], (1, y.shape[1])) for name in self.statistics}
                for name in self.statistics:
                    blocks[column, name][rows] = row_stats[name]
            self.groups_[column] = (pd.Index(names), stats)
        most = max(len(y) - 1, 1)
        if self.n_components > most:  # no grouping of these rows could use them: a typo, not a request to clamp
            raise ConfigError(f"features.stats_components={self.n_components}: at most {most} here "
                              f"(k groups' statistics span k - 1 directions; the fold has {len(y)} training rows)")
        self.pcas_ = {}
        for key, block in blocks.items():
            # k groups' centred statistics span at most k - 1 directions
            distinct_groups = len(self.groups_[key[0]][0])
            n_components = max(1, min(self.n_components, distinct_groups - 1))
            self.pcas_[key] = WidePCA(n_components).fit(block)
        return self._project(blocks)

    def _project(self, blocks: dict[tuple[str, str], np.ndarray]) -> np.ndarray:
        return np.hstack([self.pcas_[key].transform(blocks[key]) for key in self.pcas_]).astype(np.float32)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        blocks = {}
        for column in self.by:
            names, stats = self.groups_[column]
            codes = names.get_indexer(X[column].astype(str))
            known = codes >= 0
            for name in self.statistics:
                block = np.broadcast_to(self.global_[name], (len(X), len(self.global_[name]))).copy()
                block[known] = stats[name][codes[known]]
                blocks[column, name] = block
        return self._project(blocks)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.array(
            [f"{column}_{name}_pc{i}" for (column, name), pca in self.pcas_.items() for i in range(pca.n_components_)]
        )
