"""Pseudo-labelling (3rd place's decisive step) as a wrapper around any registered model.

``fit(X, y, X_test=...)``: stage 1 fits the wrapped model on the rows given (a fold's training
rows) and predicts the test rows; each further stage refits a fresh copy on the training rows plus
the test rows labelled by the previous stage, the pseudo rows weighted by ``weight`` (as
``sample_weight`` when the wrapped model's ``fit`` takes one, else by repeating them, which needs a
whole ``weight``). The pseudo-labels therefore come only from models fitted on the rows given,
never from a fold's validation targets. Without ``X_test`` it is the wrapped model.

Why it can help here: the test compounds' B/Myeloid rows enter training with the stage-1 model's
labels, so statistics that see only the 17 panel compounds (a strong panel on real data) are
pulled toward typical test compounds.
"""

from __future__ import annotations

import inspect
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone

from perturbkit.constraints import HasMethods, Interval, validate_params
from perturbkit.errors import ConfigError
from perturbkit.models.registry import create_model, register_model


def _takes(estimator, argument: str) -> bool:
    return argument in inspect.signature(estimator.fit).parameters


class PseudoLabelRegressor(RegressorMixin, BaseEstimator):
    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"])],
        "weight": [Interval(Real, 0, None, closed="neither")],
        "stages": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, estimator, weight: float = 1.0, stages: int = 2):
        self.estimator = estimator
        self.weight = weight
        self.stages = stages

    def fit(self, X: pd.DataFrame, y, X_test: pd.DataFrame | None = None) -> PseudoLabelRegressor:
        validate_params(self)
        weighted = _takes(self.estimator, "sample_weight")
        if not weighted and float(self.weight) != int(self.weight):
            raise ValueError(
                f"pseudo: {type(self.estimator).__name__}.fit takes no sample_weight, so pseudo rows are repeated: "
                f"weight must be a whole number, got {self.weight}"
            )
        y = np.asarray(y, dtype=np.float32)
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.pseudo_labels_ = []
        if X_test is None or len(X_test) == 0:
            return self
        X_test = X_test[list(X.columns)]
        for _ in range(1, self.stages):
            labels = self.estimator_.predict(X_test).astype(np.float32)
            self.pseudo_labels_.append(labels)
            copies = 1 if weighted else int(self.weight)
            X_all = pd.concat([X, *[X_test] * copies], ignore_index=True)
            y_all = np.vstack([y, *[labels] * copies])
            model = clone(self.estimator)
            if weighted:
                sample_weight = np.r_[np.ones(len(X)), np.full(len(X_test), float(self.weight))]
                model.fit(X_all, y_all, sample_weight=sample_weight)
            else:
                model.fit(X_all, y_all)
            self.estimator_ = model
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator_.predict(X), dtype=np.float32)


@register_model("pseudo")
def pseudo(base: str = "transfer_ridge", base_params: dict | None = None, weight: float = 1.0, stages: int = 2, features: dict | None = None) -> PseudoLabelRegressor:
    """``features`` (the config's [features] table) goes to the wrapped model."""
    if base == "pseudo":
        raise ConfigError("params.base = 'pseudo': pseudo-labelling wraps another registered model, not itself")
    params = dict(base_params or {})
    if features is not None:
        params["features"] = features
    return PseudoLabelRegressor(create_model(base, **params), weight=weight, stages=stages)
