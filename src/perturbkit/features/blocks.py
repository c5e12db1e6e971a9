"""Compound feature blocks by name: each declares how it is built and what it needs.

A block is a transformer of SMILES: ``fit(smiles)`` on the distinct SMILES of the rows given to
:meth:`FeatureBuilder.fit <perturbkit.features.FeatureBuilder.fit>`, then ``transform(smiles)`` ->
one float row per SMILES. Its ``builder`` makes it from the FeatureBuilder's parameters (a dict),
so a new block is one registration (:func:`register_feature_block`) and a name in
``features.chemistry``. What a config needs (SMILES in the data, packages such as RDKit) comes from
these declarations: :func:`feature_requirements`.

RDKit is imported inside the RDKit blocks' methods only, so this module loads without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from perturbkit.registry import Registry

__all__ = [
    "FEATURE_BLOCKS",
    "FeatureBlock",
    "block_requirements",
    "estimator_feature_blocks",
    "image_packages",
    "register_feature_block",
]


@dataclass(frozen=True)
class FeatureBlock:
    name: str
    builder: Callable[[dict], TransformerMixin]  # the FeatureBuilder's parameters -> an unfitted block
    needs_smiles: bool = True
    packages: tuple[str, ...] = ()  # optional packages it imports (the kernel ships wheels for them)


FEATURE_BLOCKS = Registry("feature block")


def register_feature_block(name: str, builder, *, needs_smiles: bool = True, packages=(), help: str = "") -> FeatureBlock:
    block = FeatureBlock(name=name, builder=builder, needs_smiles=needs_smiles, packages=tuple(packages))
    return FEATURE_BLOCKS.register(name, help)(block)


def block_requirements(names: Iterable[str]) -> tuple[bool, set[str]]:
    """Whether the named blocks need SMILES, and the packages they import."""
    blocks = [FEATURE_BLOCKS.get(name) for name in names]
    return any(b.needs_smiles for b in blocks), {p for b in blocks for p in b.packages}


def estimator_feature_blocks(estimator) -> list[str]:
    """The block names an estimator and its nested estimators compute (each object that has ``feature_blocks()``)."""
    parts = [estimator, *estimator.get_params(deep=True).values()] if hasattr(estimator, "get_params") else [estimator]
    names: list[str] = []
    for part in parts:
        if callable(getattr(part, "feature_blocks", None)) and not isinstance(part, type):
            names.extend(n for n in part.feature_blocks() if n not in names)
    return names


def image_packages() -> list[str]:
    """Every optional package a registered block imports: what the kernel's wheels dataset holds by default."""
    return sorted({p for name in FEATURE_BLOCKS.names() for p in FEATURE_BLOCKS.get(name).packages})


class MorganBlock(TransformerMixin, BaseEstimator):
    """Morgan (ECFP-like) bits of radius ``radius`` in ``n_bits`` columns."""

    def __init__(self, radius: int = 2, n_bits: int = 2048):
        self.radius = radius
        self.n_bits = n_bits

    def fit(self, smiles, y=None) -> MorganBlock:
        return self

    def transform(self, smiles) -> np.ndarray:
        from perturbkit.chem import morgan_fingerprints

        return morgan_fingerprints(list(smiles), radius=self.radius, n_bits=self.n_bits).astype(np.float32)


class SubstructureBlock(TransformerMixin, BaseEstimator):
    """Counts of the BRICS fragments found in at least ``min_count`` of the fitted compounds (vocabulary fixed in ``fit``)."""

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
        from perturbkit.features.chemistry import substructure_counts

        return substructure_counts(list(smiles), min_count=1)


register_feature_block(
    "morgan",
    lambda p: MorganBlock(radius=p["morgan_radius"], n_bits=p["morgan_bits"]),
    packages=("rdkit",),
    help="Morgan fingerprint bits (morgan_bits, morgan_radius)",
)
register_feature_block(
    "substructures",
    lambda p: SubstructureBlock(min_count=p["substructure_min_count"]),
    packages=("rdkit",),
    help="BRICS fragment counts (substructure_min_count)",
)


def transform_once_warned(blocks, smiles, *, fit: bool) -> list[np.ndarray]:
    """Each block's rows for ``smiles`` (fitted first with ``fit``); a warning several blocks give is given once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matrices = [(block.fit(smiles) if fit else block).transform(smiles) for block in blocks]
    seen = set()
    for warning in caught:
        key = (warning.category, str(warning.message))
        if key not in seen:
            seen.add(key)
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return matrices
