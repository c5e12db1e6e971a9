"""PCA-target models: regress the fold's target PCA scores on keys + target statistics, then invert.

The seed's baselines: the targets (rows x 18,211 genes) are compressed to ``n_components``
principal components fitted on the fold's training rows; a regressor predicts the scores from
the features; ``inverse_transform`` returns to genes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from perturbkit.constraints import HasMethods, Interval, check_values, validate_params
from perturbkit.errors import ConfigError
from perturbkit.features import FeatureBuilder
from perturbkit.features.pca import WidePCA, check_components
from perturbkit.models.registry import register_model
from perturbkit.progress import progress_bar


class PCATargetRegressor(RegressorMixin, BaseEstimator):
    """``n_components`` is never clamped: more than the fold's training rows (or genes) is a :class:`ConfigError` in ``fit``,
    as are more neighbours (``pca_knn``) than training rows; both before anything is fitted."""

    _parameter_constraints = {
        "regressor": [HasMethods(["fit", "predict"])],
        "features": [FeatureBuilder, None],
        "n_components": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, regressor, features: FeatureBuilder | None = None, n_components: int = 64):
        self.regressor = regressor
        self.features = features
        self.n_components = n_components

    def fit(self, X, y) -> PCATargetRegressor:
        validate_params(self)
        y = np.asarray(y, dtype=np.float32)
        check_components(self.n_components, y.shape, "params.n_components")
        neighbours = self.regressor.get_params().get("kneighborsregressor__n_neighbors")
        if neighbours is not None and neighbours > len(y):  # scikit-learn would fail only at the first predict
            raise ConfigError(f"params.n_neighbors={neighbours}: at most {len(y)} here (the fold's training rows)")
        self.features_ = clone(self.features if self.features is not None else FeatureBuilder())
        inputs = self.features_.fit_transform(X, y)
        self.pca_ = WidePCA(self.n_components).fit(y)
        self.regressor_ = clone(self.regressor).fit(inputs, self.pca_.transform(y))
        return self

    def predict(self, X) -> np.ndarray:
        scores = self.regressor_.predict(self.features_.transform(X))
        return self.pca_.inverse_transform(scores).astype(np.float32)


class PerComponentLGBM(RegressorMixin, BaseEstimator):
    """One LightGBM booster per target column, early-stopped on a seeded split of the training rows.

    The fold's validation rows are never used for early stopping, so OOF scores stay honest. Each
    booster runs on one thread and the columns are fitted side by side, one per core: a few hundred
    rows are too few to split across threads, and LightGBM's waiting threads made a loaded machine
    about 20 times slower (docs/experiments.md, pca_lgbm). Inside a CV run with progress on, a bar
    counts the components fitted (``perturbkit.progress``).
    """

    _parameter_constraints = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "num_leaves": [Interval(Integral, 2, None, closed="left")],
        "min_child_samples": [Interval(Integral, 0, None, closed="left")],
        "colsample_bytree": [Interval(Real, 0, 1, closed="right")],
        "early_stopping_rounds": [Interval(Integral, 1, None, closed="left")],
        "early_stopping_fraction": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 10,
        colsample_bytree: float = 0.5,
        early_stopping_rounds: int = 50,
        early_stopping_fraction: float = 0.15,
        random_state: int = 0,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.early_stopping_rounds = early_stopping_rounds
        self.early_stopping_fraction = early_stopping_fraction
        self.random_state = random_state

    def fit(self, X, y) -> PerComponentLGBM:
        validate_params(self)
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.float32)
        fit_rows, stop_rows = train_test_split(
            np.arange(len(X)), test_size=self.early_stopping_fraction, random_state=self.random_state
        )
        params = {
            "objective": "regression",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.colsample_bytree,
            "seed": self.random_state,
            "deterministic": True,
            "num_threads": 1,
            "force_col_wise": True,  # LightGBM would time both layouts on every dataset to pick this one
            "verbosity": -1,
        }

        def fit_column(column: int) -> lgb.Booster:
            train_set = lgb.Dataset(X[fit_rows], y[fit_rows, column], free_raw_data=False)
            stop_set = lgb.Dataset(X[stop_rows], y[stop_rows, column], reference=train_set)
            return lgb.train(
                params,
                train_set,
                num_boost_round=self.n_estimators,
                valid_sets=[stop_set],
                callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
            )

        self.boosters_ = []
        # LightGBM releases the GIL while it trains; each booster is single-threaded and seeded, so the
        # result does not depend on the number of workers or their order.
        with progress_bar(y.shape[1], "components", "booster") as bar, ThreadPoolExecutor(min(os.cpu_count() or 1, y.shape[1])) as pool:
            for booster in pool.map(fit_column, range(y.shape[1])):
                self.boosters_.append(booster)
                bar.set_postfix(trees=booster.best_iteration, refresh=False)
                bar.update()
        return self

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return np.column_stack([b.predict(X, num_iteration=b.best_iteration) for b in self.boosters_])


@register_model("pca_ridge")
def pca_ridge(n_components: int = 64, alpha: float = 10.0, features: dict | None = None) -> PCATargetRegressor:
    # Ridge also takes one alpha per target, which a config cannot mean (the targets are the fold's PCA scores)
    check_values({"alpha": [Interval(Real, 0, None, closed="left")]}, {"alpha": alpha}, "pca_ridge")
    return PCATargetRegressor(
        make_pipeline(StandardScaler(), Ridge(alpha=alpha)), FeatureBuilder(**(features or {})), n_components
    )


@register_model("pca_knn")
def pca_knn(n_components: int = 64, n_neighbors: int = 10, weights: str = "distance", features: dict | None = None) -> PCATargetRegressor:
    return PCATargetRegressor(
        make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=n_neighbors, weights=weights)),
        FeatureBuilder(**(features or {})),
        n_components,
    )


# pca_lgbm's shipped features (configs/pca_lgbm.toml) differ from FeatureBuilder's defaults in this key only.
PCA_LGBM_FEATURES = {"stats_components": 8}


@register_model("pca_lgbm")
def pca_lgbm(n_components: int = 16, features: dict | None = None, **booster_params) -> PCATargetRegressor:
    """Called with no arguments, the shipped config; ``features`` keys override :data:`PCA_LGBM_FEATURES`."""
    return PCATargetRegressor(
        PerComponentLGBM(**booster_params), FeatureBuilder(**{**PCA_LGBM_FEATURES, **(features or {})}), n_components
    )
