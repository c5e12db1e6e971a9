"""Feature blocks declare themselves: a toy compound block registers and runs through cv; requirements come from declarations."""

from __future__ import annotations

import dataclasses
import zlib
from numbers import Integral

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA

from perturbkit.config import load_config
from perturbkit.constraints import Interval
from perturbkit.cv import FEATURE_COLUMNS, run_cv
from perturbkit.errors import ConfigError
from perturbkit.folds import make_splitter
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


class CompoundResponse(TransformerMixin, BaseEstimator):
    """docs/extending.md: a row gets its compound's mean response on the rows the block is fitted on (a fold's
    training rows), as ``n_components`` target-PCA scores; zeros for a compound without such rows."""

    _parameter_constraints = {"n_components": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, n_components: int = 4):
        self.n_components = n_components

    def fit(self, X, y):
        self.pca_ = PCA(self.n_components, random_state=0).fit(y)
        scores = pd.DataFrame(self.pca_.transform(y), index=X["sm_name"].astype(str).to_numpy())
        self.means_ = scores.groupby(level=0).mean()
        return self

    def transform(self, X) -> np.ndarray:
        return self.means_.reindex(X["sm_name"].astype(str).to_numpy()).fillna(0.0).to_numpy(np.float32)


@pytest.fixture(autouse=True)
def toy_block(monkeypatch):
    """The toy blocks are registered for this module's tests only (copies of the registry's tables are restored after)."""
    monkeypatch.setattr(FEATURE_BLOCKS, "_items", dict(FEATURE_BLOCKS._items))
    monkeypatch.setattr(FEATURE_BLOCKS, "_help", dict(FEATURE_BLOCKS._help))
    register_feature_block("compound_response", CompoundResponse, input="targets", help="the compound's mean training response")
    register_feature_block(TOY, CharNgramEmbedding, input="smiles", help="hashed SMILES character 3-grams (test)")

COMPOUND_FROM_CHEMISTRY = ['features.onehot=["cell_type"]', "features.target_stats=[]", "params.n_components=8"]


def test_toy_compound_block_runs_through_cv(small_dataset):
    """Extending perturbkit: a new compound block is one registration and a name in features.blocks."""
    toy = load_config("pca_ridge", overrides=[*COMPOUND_FROM_CHEMISTRY, f'features.blocks=["{TOY}"]'])
    plain = load_config("pca_ridge", overrides=COMPOUND_FROM_CHEMISTRY)
    with_toy, without = run_cv(small_dataset, toy, progress=False), run_cv(small_dataset, plain, progress=False)
    # Without the block a row knows only its cell type; the embedding tells compounds apart.
    assert with_toy.meta["config"]["features"]["blocks"] == [TOY]
    rows = without.oof_keys["cell_type"].astype(str).to_numpy() == without.oof_keys["cell_type"].astype(str).iloc[0]
    assert np.ptp(without.oof[rows], axis=0).max() < 1e-5 < np.ptp(with_toy.oof[rows], axis=0).max()


def test_block_is_fitted_on_the_distinct_smiles_and_keeps_row_order(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    builder = FeatureBuilder(onehot=[], target_stats=[], blocks=[TOY]).fit(X, y)
    assert builder.blocks_[TOY].n_compounds_ == X["SMILES"].nunique()
    expected = CharNgramEmbedding().transform(list(X["SMILES"].astype(str)))
    np.testing.assert_allclose(builder.transform(X), expected, rtol=1e-6)


def test_requirements_come_from_the_declarations():
    assert feature_requirements(load_config("pca_ridge", overrides=[f'features.blocks=["{TOY}"]'])) == (True, set())
    assert feature_requirements(load_config("pca_ridge", overrides=['features.blocks=["morgan"]'])) == (True, {"rdkit"})
    assert feature_requirements(load_config("pca_ridge")) == (False, set())
    # A model's own blocks count: lowrank's fingerprint ridge, and mlp's default features when [features] is absent.
    assert feature_requirements(load_config("lowrank", overrides=["params.chemistry=true"])) == (True, {"rdkit"})
    mlp = load_config("mlp")
    del mlp["features"]
    assert feature_requirements(mlp) == (True, {"rdkit"})
    configs = [load_config("pca_ridge", overrides=[f'features.blocks=["{TOY}", "substructures"]']), load_config("compound_mean")]
    assert block_packages(spec_from_configs(configs)) == {"rdkit": "for pca_ridge (substructures)"}


def test_unknown_block_names_the_known_ones(small_dataset):
    with pytest.raises(ConfigError, match=rf"unknown feature block 'maccs'; known: \[.*'morgan'.*'{TOY}'"):
        FeatureBuilder(blocks=["maccs"]).fit(small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets)
    with pytest.raises(ConfigError, match=rf"unknown feature blocks \['maccs'\]; known: \[.*'{TOY}'\]"):
        load_config("pca_ridge", overrides=['features.blocks=["maccs"]'])


RESPONSE = ['features.onehot=["cell_type"]', "features.target_stats=[]", 'features.blocks=["compound_response"]',
            "params.n_components=4", "features.compound_response_n_components=3"]


def test_block_with_its_own_parameter(small_dataset):
    """docs/extending.md: a block's parameter is a config key, reaches the block, and is validated like a model's
    (its run through the harness: the next test)."""
    config = load_config("pca_ridge", overrides=RESPONSE)
    assert config["features"]["compound_response_n_components"] == 3
    builder = FeatureBuilder(**config["features"]).fit(small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets)
    assert builder.blocks_["compound_response"].n_components == 3
    assert builder.transform(small_dataset.obs[FEATURE_COLUMNS]).shape[1] == small_dataset.obs["cell_type"].nunique() + 3
    with pytest.raises(ConfigError, match=r"feature block 'compound_response': features\.compound_response_n_components: .*in the range \[1, inf\)"):
        load_config("pca_ridge", overrides=[*RESPONSE, "features.compound_response_n_components=0"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['features\.compound_response_bogus'\]"):
        load_config("pca_ridge", overrides=[*RESPONSE, "features.compound_response_bogus=1"])


def test_a_block_fed_training_targets_is_fitted_inside_each_fold(small_dataset):
    """Through the harness: a sentinel in fold k's validation targets moves none of fold k's predictions, for every fold."""
    dataset = dataclasses.replace(small_dataset, targets=small_dataset.targets[:, :40].copy(), genes=small_dataset.genes[:40])
    config = load_config("pca_ridge", overrides=RESPONSE)
    fold_ids = make_splitter(config["cv"]["scheme"], test_compounds=dataset.test["sm_name"].astype(str)).fold_ids(dataset.obs)
    clean = run_cv(dataset, config, progress=False)
    folds = clean.oof_keys["fold"].to_numpy()
    moved_elsewhere = False
    for fold in np.unique(folds):
        targets = dataset.targets.copy()
        targets[fold_ids == fold] = 1e4
        planted = run_cv(dataclasses.replace(dataset, targets=targets), config, progress=False)
        np.testing.assert_array_equal(clean.oof[folds == fold], planted.oof[folds == fold])
        moved_elsewhere |= not np.array_equal(clean.oof[folds != fold], planted.oof[folds != fold])
    assert moved_elsewhere  # the sentinel reaches the folds that train on those rows: the check can fail
