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
    block_parameters,
    register_feature_block,
    transform_once_warned,
)
from perturbkit.features.pca import WidePCA, check_components
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
    """One-hot keys, target statistics and registered feature blocks, as one float32 matrix.

    Blocks are switched off with an empty value (``onehot=[]``, ``target_stats=[]``,
    ``blocks=[]``). ``blocks`` names blocks of :data:`~perturbkit.features.blocks.FEATURE_BLOCKS`,
    e.g. ``"morgan"`` (``morgan_bits`` fingerprint bits of radius ``morgan_radius``) and
    ``"substructures"`` (counts of the BRICS fragments found in at least ``substructure_min_count``
    of the fitted rows' compounds; the vocabulary is fixed in ``fit``). Every registered block's
    parameters are this builder's parameters too (keyword arguments, in ``get_params``).
    An unparseable SMILES warns and gets zeros. ``pca_components > 0`` replaces the blocks by
    that many principal components of the standardised blocks, scaler and PCA fitted on the rows
    given to ``fit``.
    """

    def __init__(
        self,
        onehot=("cell_type", "sm_name"),
        target_stats=STATISTICS,
        stats_by=("sm_name", "cell_type"),
        stats_components: int = 16,
        leave_one_out: bool = False,
        blocks=(),
        pca_components: int = 0,
        **block_params,
    ):
        self.onehot = onehot
        self.target_stats = target_stats
        self.stats_by = stats_by
        self.stats_components = stats_components
        self.leave_one_out = leave_one_out
        self.blocks = blocks
        self.pca_components = pca_components
        known = block_parameters()
        unknown = sorted(set(block_params) - set(known))
        if unknown:
            raise TypeError(f"FeatureBuilder got unexpected parameter(s) {unknown}")
        for key, parameter in known.items():
            setattr(self, key, block_params.get(key, parameter.default))

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The builder's own parameters and every registered block's (scikit-learn reads these in get_params)."""
        return sorted([*super()._get_param_names(), *block_parameters()])

    def fit(self, X: pd.DataFrame, y) -> FeatureBuilder:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y) -> np.ndarray:
        # An unknown block name fails here, with the known ones, before anything is fitted.
        params = self.get_params(deep=False)
        self.blocks_ = {name: FEATURE_BLOCKS.get(name).build(params) for name in self.blocks or ()}
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
        blocks.extend(self._block_matrices(X, y, fit=True))
        if not blocks:
            raise ValueError("features: every feature block is switched off")
        return self._reduce(np.hstack(blocks).astype(np.float32), fit=True)

    def feature_blocks(self) -> list[str]:
        """The compound blocks this builder computes (what :func:`perturbkit.models.feature_requirements` reads)."""
        return list(self.blocks or ())

    def _block_matrices(self, X: pd.DataFrame, y=None, fit: bool = False) -> list[np.ndarray]:
        """Each named block's rows for ``X``, in the order named; ``fit``: the blocks are fitted on ``X`` (and ``y``) first."""
        by_input = {name: FEATURE_BLOCKS.get(name).input for name in self.blocks_}
        matrices = {}
        smiles_blocks = [name for name, kind in by_input.items() if kind == "smiles"]
        if smiles_blocks:  # fitted on the distinct SMILES; their rows go back to X's rows by code
            codes, smiles = _unique_smiles(X)
            fitted = transform_once_warned([self.blocks_[name] for name in smiles_blocks], smiles, fit=fit)
            matrices.update({name: np.asarray(m, dtype=np.float32)[codes] for name, m in zip(smiles_blocks, fitted)})
        for name, kind in by_input.items():
            block = self.blocks_[name]
            if kind == "keys":
                matrices[name] = (block.fit(X) if fit else block).transform(X)
            elif kind == "targets":  # y: the targets of the rows the builder is fitted on, a fold's training rows
                matrices[name] = block.fit_transform(X, y) if fit else block.transform(X)
        return [np.asarray(matrices[name], dtype=np.float32) for name in self.blocks_]

    def _reduce(self, features: np.ndarray, fit: bool = False) -> np.ndarray:
        """The optional input PCA (on standardised columns), fitted on the ``fit`` rows only."""
        if not self.pca_components:
            return features
        if fit:
            check_components(self.pca_components, features.shape, "features.pca_components")
            self.scaler_ = StandardScaler().fit(features)
            self.pca_ = WidePCA(self.pca_components).fit(self.scaler_.transform(features))
        return self.pca_.transform(self.scaler_.transform(features)).astype(np.float32)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        blocks = []
        if self.onehot_ is not None:
            blocks.append(self.onehot_.transform(X[list(self.onehot)].astype(str)))
        if self.target_stats_ is not None:
            blocks.append(self.target_stats_.transform(X))
        blocks.extend(self._block_matrices(X))
        return self._reduce(np.hstack(blocks).astype(np.float32))
