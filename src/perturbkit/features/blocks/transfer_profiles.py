"""``transfer_profiles``: each row's compound profiles in the other cell types (``features.transfer_profiles_n_components``).

What :mod:`perturbkit.models.transfer` regresses on, as features for any model: the table is a
:class:`~perturbkit.features.profiles.ProfileTable` (the code ``transfer_ridge`` and
``transfer_net`` fit theirs with) fitted on the rows the block is fitted on (a fold's training keys
and targets), so its target PCA, its compound x cell type table of scores and its imputation of a
profile a compound lacks (the cell type's mean plus the compound's mean deviation over its other
rows) are theirs. A row gets one block of ``n_components`` scores per cell type of the table: the
compound's scores there, or the imputed ones, and zeros in its own cell type's block, so a row's own
target (and any row of its own pair) never enters its features except through the fold's shared PCA
basis. Rows of a compound the table has not seen (a test compound in a fold that holds it out) get
each type's mean scores.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from perturbkit.constraints import Interval, validate_params
from perturbkit.features.blocks import register_feature_block
from perturbkit.features.pca import check_components
from perturbkit.features.profiles import ProfileTable


class TransferProfiles(TransformerMixin, BaseEstimator):
    """A row's compound scores in every other cell type of the fitted rows (``n_components`` per type)."""

    _parameter_constraints = {"n_components": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, n_components: int = 16):
        self.n_components = n_components

    def fit(self, X: pd.DataFrame, y) -> TransferProfiles:
        validate_params(self)
        check_components(self.n_components, np.shape(y), "features.transfer_profiles_n_components")
        self.table_ = ProfileTable(n_components=self.n_components).fit(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y) -> np.ndarray:
        return self.fit(X, y).transform(X)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        table = self.table_
        n_cells, width = len(table.cell_types_), table.profiles_.shape[2]
        cells = pd.Index(table.cell_types_).get_indexer(X["cell_type"].astype(str))
        compounds = pd.Index(table.compounds_).get_indexer(X["sm_name"].astype(str))
        features = np.zeros((len(X), n_cells, width))
        features[compounds < 0] = table.type_scores_  # an unseen compound: each type's mean
        for t in range(-1, n_cells):  # -1: a cell type the table has not seen, whose rows have no own block
            rows = np.flatnonzero((cells == t) & (compounds >= 0))
            if not len(rows):
                continue
            others = [k for k in range(n_cells) if k != t]
            features[np.ix_(rows, others)] = table.source_inputs(compounds[rows], t, others).reshape(len(rows), len(others), width)
        features[np.arange(len(X))[cells >= 0], cells[cells >= 0]] = 0.0  # every row, unseen compounds too: its own type's block stays empty
        return features.reshape(len(X), -1).astype(np.float32)


register_feature_block("transfer_profiles", TransferProfiles, input="targets", needs_smiles=False,
                       help="the compound's target-PCA scores in the other cell types, imputed as transfer_ridge imputes (transfer_profiles_n_components)")
