"""``substructures``: counts of BRICS fragments shared by the fitted compounds (``features.substructure_min_count``)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from perturbkit.constraints import Interval
from perturbkit.features.blocks import register_feature_block


class SubstructureBlock(TransformerMixin, BaseEstimator):
    """Counts of the BRICS fragments found in at least ``min_count`` of the fitted compounds (vocabulary fixed in ``fit``)."""

    _parameter_constraints = {"min_count": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, min_count: int = 2):
        self.min_count = min_count

    def fit(self, smiles, y=None) -> SubstructureBlock:
        counts = self._counts(smiles)
        self.fragments_ = counts.columns[(counts.to_numpy() > 0).sum(axis=0) >= self.min_count]
        return self

    def transform(self, smiles) -> np.ndarray:
        return self._counts(smiles).reindex(columns=self.fragments_, fill_value=0).to_numpy().astype(np.float32)

    @staticmethod
    def _counts(smiles) -> pd.DataFrame:
        from perturbkit.features.chemistry import substructure_counts  # RDKit, imported only when the block runs

        return substructure_counts(list(smiles), min_count=1)


register_feature_block("substructures", SubstructureBlock, prefix="substructure", packages=("rdkit",),
                       help="BRICS fragment counts (substructure_min_count)")
