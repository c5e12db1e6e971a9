"""``morgan``: Morgan (ECFP-like) fingerprint bits of each compound (``features.morgan_radius``, ``features.morgan_bits``)."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from perturbkit.constraints import Interval
from perturbkit.features.blocks import register_feature_block


class MorganBlock(TransformerMixin, BaseEstimator):
    """Morgan bits of radius ``radius`` in ``bits`` columns."""

    _parameter_constraints = {"radius": [Interval(Integral, 0, None, closed="left")], "bits": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, radius: int = 2, bits: int = 2048):
        self.radius = radius
        self.bits = bits

    def fit(self, smiles, y=None) -> MorganBlock:
        return self

    def transform(self, smiles) -> np.ndarray:
        from perturbkit.chem import morgan_fingerprints  # RDKit, imported only when the block runs

        return morgan_fingerprints(list(smiles), radius=self.radius, n_bits=self.bits).astype(np.float32)


register_feature_block("morgan", MorganBlock, packages=("rdkit",), help="Morgan fingerprint bits (morgan_bits, morgan_radius)")
