"""Features, each block fitted inside a fold on that fold's training rows only.

``X`` everywhere is a key frame (``cell_type``, ``sm_name``, ``SMILES``) whose key columns are
categoricals over train and test keys, so one-hot encoders know test compounds' columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from perturbkit.features.blocks import (
    FEATURE_BLOCKS,
    register_feature_block,
    transform_once_warned,
)
from perturbkit.features.pca import WidePCA
from perturbkit.features.target_stats import STATISTICS, TargetStatistics

__all__ = [
    "FEATURE_BLOCKS",
    "FeatureBuilder",
    "TargetStatistics",
    "one_hot_encoder",
    "register_feature_block",
]


def _unique_smiles(X: pd.DataFrame) -> tuple[np.ndarray, list]:
    """Row codes into the distinct SMILES (a missing SMILES is one more value, featurised as invalid)."""
    codes, uniques = pd.factorize(X["SMILES"].astype(object), use_na_sentinel=False)
    return codes, list(uniques)


def one_hot_encoder(X: pd.DataFrame, columns) -> OneHotEncoder:
    """An encoder whose categories come from the columns' categorical dtype (train + test keys)."""
    categories = [
        list(X[c].cat.categories) if isinstance(X[c].dtype, pd.CategoricalDtype) else sorted(X[c].astype(str).unique())
        for c in columns
    ]
    return OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False, dtype=np.float32)


class FeatureBuilder(TransformerMixin, BaseEstimator):
    """One-hot keys, target statistics and compound chemistry, as one float32 matrix.

    Blocks are switched off with an empty value (``onehot=[]``, ``target_stats=[]``,
    ``chemistry=[]``). ``chemistry`` names compound blocks of the row's SMILES from
    :data:`~perturbkit.features.blocks.FEATURE_BLOCKS`: ``"morgan"`` (``morgan_bits`` fingerprint
    bits of radius ``morgan_radius``) and ``"substructures"`` (counts of the BRICS fragments found
    in at least ``substructure_min_count`` of the fitted rows' compounds; the vocabulary is fixed
    in ``fit``), or any registered block. An unparseable SMILES warns and gets zeros.
    ``pca_components > 0`` replaces the blocks by that many principal components of the
    standardised blocks, scaler and PCA fitted on the rows given to ``fit``.
    """

    def __init__(
        self,
        onehot=("cell_type", "sm_name"),
        target_stats=STATISTICS,
        stats_by=("sm_name", "cell_type"),
        stats_components: int = 16,
        leave_one_out: bool = False,
        chemistry=(),
        morgan_radius: int = 2,
        morgan_bits: int = 2048,
        substructure_min_count: int = 2,
        pca_components: int = 0,
    ):
        self.onehot = onehot
        self.target_stats = target_stats
        self.stats_by = stats_by
        self.stats_components = stats_components
        self.leave_one_out = leave_one_out
        self.chemistry = chemistry
        self.morgan_radius = morgan_radius
        self.morgan_bits = morgan_bits
        self.substructure_min_count = substructure_min_count
        self.pca_components = pca_components

    def fit(self, X: pd.DataFrame, y) -> FeatureBuilder:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y) -> np.ndarray:
        # An unknown block name fails here, with the known ones, before anything is fitted.
        self.blocks_ = {name: FEATURE_BLOCKS.get(name).builder(self.get_params(deep=False)) for name in self.chemistry or ()}
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
            )
            blocks.append(self.target_stats_.fit_transform(X, y))
        blocks.extend(self._chemistry_blocks(X, fit=True))
        if not blocks:
            raise ValueError("features: every feature block is switched off")
        return self._reduce(np.hstack(blocks).astype(np.float32), fit=True)

    def feature_blocks(self) -> list[str]:
        """The compound blocks this builder computes (what :func:`perturbkit.models.feature_requirements` reads)."""
        return list(self.chemistry or ())

    def _chemistry_blocks(self, X: pd.DataFrame, fit: bool = False) -> list[np.ndarray]:
        if not self.blocks_:
            return []
        codes, smiles = _unique_smiles(X)
        matrices = transform_once_warned(list(self.blocks_.values()), smiles, fit=fit)
        return [np.asarray(matrix, dtype=np.float32)[codes] for matrix in matrices]

    def _reduce(self, features: np.ndarray, fit: bool = False) -> np.ndarray:
        """The optional input PCA (on standardised columns), fitted on the ``fit`` rows only."""
        if not self.pca_components:
            return features
        if fit:
            self.scaler_ = StandardScaler().fit(features)
            self.pca_ = WidePCA(self.pca_components).fit(self.scaler_.transform(features))
        return self.pca_.transform(self.scaler_.transform(features)).astype(np.float32)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        blocks = []
        if self.onehot_ is not None:
            blocks.append(self.onehot_.transform(X[list(self.onehot)].astype(str)))
        if self.target_stats_ is not None:
            blocks.append(self.target_stats_.transform(X))
        blocks.extend(self._chemistry_blocks(X))
        return self._reduce(np.hstack(blocks).astype(np.float32))
