"""Feature blocks declare themselves: a toy compound block registers and runs through cv; requirements come from declarations."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS, run_cv
from perturbkit.errors import ConfigError
from perturbkit.features import FEATURE_BLOCKS, FeatureBuilder, register_feature_block
from perturbkit.kernel.deps import block_packages
from perturbkit.kernel.pipeline import spec_from_configs
from perturbkit.models import feature_requirements

TOY = "chemberta_like_toy"


class CharNgramEmbedding(TransformerMixin, BaseEstimator):
    """A stand-in for a learned SMILES embedding: L2-normalised hashed character n-gram counts."""

    def __init__(self, n: int = 3, dim: int = 32):
        self.n = n
        self.dim = dim

    def fit(self, smiles, y=None):
        self.n_compounds_ = len(smiles)
        return self

    def transform(self, smiles) -> np.ndarray:
        out = np.zeros((len(smiles), self.dim), dtype=np.float32)
        for i, text in enumerate(smiles):
            text = text if isinstance(text, str) else ""
            for j in range(len(text) - self.n + 1):
                out[i, zlib.crc32(text[j : j + self.n].encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture(autouse=True)
def toy_block(monkeypatch):
    """The toy block is registered for this module's tests only (copies of the registry's tables are restored after)."""
    monkeypatch.setattr(FEATURE_BLOCKS, "_items", dict(FEATURE_BLOCKS._items))
    monkeypatch.setattr(FEATURE_BLOCKS, "_help", dict(FEATURE_BLOCKS._help))
    register_feature_block(TOY, lambda params: CharNgramEmbedding(), needs_smiles=True, help="hashed SMILES character 3-grams (test)")

COMPOUND_FROM_CHEMISTRY = ['features.onehot=["cell_type"]', "features.target_stats=[]", "params.n_components=8"]


def test_toy_compound_block_runs_through_cv(small_dataset):
    """Extending perturbkit: a new compound block is one registration and a name in features.chemistry."""
    toy = load_config("pca_ridge", overrides=[*COMPOUND_FROM_CHEMISTRY, f'features.chemistry=["{TOY}"]'])
    plain = load_config("pca_ridge", overrides=COMPOUND_FROM_CHEMISTRY)
    with_toy, without = run_cv(small_dataset, toy, progress=False), run_cv(small_dataset, plain, progress=False)
    # Without the block a row knows only its cell type; the embedding tells compounds apart.
    assert with_toy.meta["config"]["features"]["chemistry"] == [TOY]
    rows = without.oof_keys["cell_type"].astype(str).to_numpy() == without.oof_keys["cell_type"].astype(str).iloc[0]
    assert np.ptp(without.oof[rows], axis=0).max() < 1e-5 < np.ptp(with_toy.oof[rows], axis=0).max()


def test_block_is_fitted_on_the_distinct_smiles_and_keeps_row_order(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    builder = FeatureBuilder(onehot=[], target_stats=[], chemistry=[TOY]).fit(X, y)
    assert builder.blocks_[TOY].n_compounds_ == X["SMILES"].nunique()
    expected = CharNgramEmbedding().transform(list(X["SMILES"].astype(str)))
    np.testing.assert_allclose(builder.transform(X), expected, rtol=1e-6)


def test_requirements_come_from_the_declarations():
    assert feature_requirements(load_config("pca_ridge", overrides=[f'features.chemistry=["{TOY}"]'])) == (True, set())
    assert feature_requirements(load_config("pca_ridge", overrides=['features.chemistry=["morgan"]'])) == (True, {"rdkit"})
    assert feature_requirements(load_config("pca_ridge")) == (False, set())
    # A model's own blocks count: lowrank's fingerprint ridge, and mlp's default features when [features] is absent.
    assert feature_requirements(load_config("lowrank", overrides=["params.chemistry=true"])) == (True, {"rdkit"})
    mlp = load_config("mlp")
    del mlp["features"]
    assert feature_requirements(mlp) == (True, {"rdkit"})
    configs = [load_config("pca_ridge", overrides=[f'features.chemistry=["{TOY}", "substructures"]']), load_config("compound_mean")]
    assert block_packages(spec_from_configs(configs)) == {"rdkit": "for pca_ridge (substructures)"}


def test_unknown_block_names_the_known_ones(small_dataset):
    with pytest.raises(ConfigError, match=rf"unknown feature block 'maccs'; known: \[.*'morgan'.*'{TOY}'"):
        FeatureBuilder(chemistry=["maccs"]).fit(small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets)
    with pytest.raises(ConfigError, match=rf"unknown chemistry blocks \['maccs'\]; known: \[.*'{TOY}'\]"):
        load_config("pca_ridge", overrides=['features.chemistry=["maccs"]'])
