"""Reference predictors: zeros, the gene-wise mean, and means over a compound's or cell type's rows."""

from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from perturbkit.constraints import Interval, StrOptions, validate_params
from perturbkit.models.registry import register_model


class GroupMeanRegressor(RegressorMixin, BaseEstimator):
    """Predicts the mean training profile of the row's group; the gene-wise mean when the group is unseen.

    ``by=None`` predicts the gene-wise mean everywhere; ``shrink=0`` predicts zeros.
    """

    _parameter_constraints = {
        "by": [StrOptions({"sm_name", "cell_type"}), None],
        "shrink": [Interval(Real, 0, None, closed="left")],  # 0 predicts zeros; a negative factor flips every sign
    }

    def __init__(self, by: str | None = None, shrink: float = 1.0):
        self.by = by
        self.shrink = shrink

    def fit(self, X: pd.DataFrame, y) -> GroupMeanRegressor:
        validate_params(self)
        y = np.asarray(y, dtype=np.float32)
        self.gene_mean_ = y.mean(axis=0)
        self.n_features_out_ = y.shape[1]
        if self.by is not None:
            frame = pd.DataFrame(y).groupby(X[self.by].astype(str).to_numpy()).mean()
            self.groups_ = pd.Index(frame.index)
            self.group_means_ = frame.to_numpy(dtype=np.float32)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        prediction = np.tile(self.gene_mean_, (len(X), 1))
        if self.by is not None:
            codes = self.groups_.get_indexer(X[self.by].astype(str))
            known = codes >= 0
            prediction[known] = self.group_means_[codes[known]]
        return (self.shrink * prediction).astype(np.float32)


@register_model("zeros")
def zeros() -> GroupMeanRegressor:
    return GroupMeanRegressor(by=None, shrink=0.0)


@register_model("gene_mean")
def gene_mean() -> GroupMeanRegressor:
    return GroupMeanRegressor(by=None)


@register_model("compound_mean")
def compound_mean(shrink: float = 1.0) -> GroupMeanRegressor:
    return GroupMeanRegressor(by="sm_name", shrink=shrink)


@register_model("celltype_mean")
def celltype_mean(shrink: float = 1.0) -> GroupMeanRegressor:
    return GroupMeanRegressor(by="cell_type", shrink=shrink)
