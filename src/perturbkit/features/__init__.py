"""Features, each block fitted inside a fold on that fold's training rows only.

``X`` everywhere is a key frame (``cell_type``, ``sm_name``, ``SMILES``) whose key columns are
categoricals over train and test keys, so one-hot encoders know test compounds' columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import OneHotEncoder

from perturbkit.features.target_stats import STATISTICS, TargetStatistics

__all__ = ["FeatureBuilder", "TargetStatistics", "one_hot_encoder"]


def one_hot_encoder(X: pd.DataFrame, columns) -> OneHotEncoder:
    """An encoder whose categories come from the columns' categorical dtype (train + test keys)."""
    categories = [
        list(X[c].cat.categories) if isinstance(X[c].dtype, pd.CategoricalDtype) else sorted(X[c].astype(str).unique())
        for c in columns
    ]
    return OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False, dtype=np.float32)


class FeatureBuilder(TransformerMixin, BaseEstimator):
    """One-hot keys and target statistics, as one float32 matrix.

    Blocks are switched off with an empty value (``onehot=[]``, ``target_stats=[]``).
    """

    def __init__(
        self,
        onehot=("cell_type", "sm_name"),
        target_stats=STATISTICS,
        stats_by=("sm_name", "cell_type"),
        stats_components: int = 16,
        leave_one_out: bool = False,
        random_state: int = 0,
    ):
        self.onehot = onehot
        self.target_stats = target_stats
        self.stats_by = stats_by
        self.stats_components = stats_components
        self.leave_one_out = leave_one_out
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y) -> FeatureBuilder:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y) -> np.ndarray:
        blocks = []
        self.onehot_ = None
        if self.onehot:
            columns = list(self.onehot)
            self.onehot_ = one_hot_encoder(X, columns).fit(X[columns].astype(str))
            blocks.append(self.onehot_.transform(X[columns].astype(str)))
        self.target_stats_ = None
        if self.target_stats:
            self.target_stats_ = TargetStatistics(
                by=tuple(self.stats_by),
                statistics=tuple(self.target_stats),
                n_components=self.stats_components,
                leave_one_out=self.leave_one_out,
                random_state=self.random_state,
            )
            blocks.append(self.target_stats_.fit_transform(X, y))
        if not blocks:
            raise ValueError("features: every feature block is switched off")
        return np.hstack(blocks).astype(np.float32)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        blocks = []
        if self.onehot_ is not None:
            blocks.append(self.onehot_.transform(X[list(self.onehot)].astype(str)))
        if self.target_stats_ is not None:
            blocks.append(self.target_stats_.transform(X))
        return np.hstack(blocks).astype(np.float32)
