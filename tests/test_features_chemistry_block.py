"""FeatureBuilder's chemistry blocks (Morgan bits, BRICS fragment counts) and its optional input PCA."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from perturbkit.cv import FEATURE_COLUMNS
from perturbkit.features import FeatureBuilder
from perturbkit import chem
from perturbkit.features import chemistry
from perturbkit.folds import make_splitter

CHEMISTRY_ONLY = {"onehot": [], "target_stats": [], "blocks": ["morgan", "substructures"]}


def _fold(dataset, fold=0):
    splitter = make_splitter("lymphoid_holdout", test_compounds=dataset.test["sm_name"].astype(str))
    return list(splitter.split(dataset.obs))[fold]


def test_chemistry_blocks_have_the_configured_sizes(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    morgan = FeatureBuilder(onehot=[], target_stats=[], blocks=["morgan"], morgan_bits=512, morgan_radius=3).fit_transform(X, y)
    assert morgan.shape == (len(X), 512) and set(np.unique(morgan)) <= {0.0, 1.0}
    expected = chemistry.morgan_fingerprints(X["SMILES"], radius=3, n_bits=512)
    np.testing.assert_array_equal(morgan, expected.astype(np.float32))
    builder = FeatureBuilder(onehot=[], target_stats=[], blocks=["substructures"], substructure_min_count=3)
    counts = builder.fit_transform(X, y)
    assert counts.shape == (len(X), len(builder.blocks_["substructures"].fragments_)) and counts.sum() > 0
    reference = chemistry.substructure_counts(X["SMILES"].unique(), min_count=3)
    assert list(builder.blocks_["substructures"].fragments_) == list(reference.columns)


def test_chemistry_is_deterministic_and_cached(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    first = FeatureBuilder(**CHEMISTRY_ONLY).fit_transform(X, y)
    before = chem._fingerprint.cache_info()
    builder = FeatureBuilder(**CHEMISTRY_ONLY)
    second = builder.fit_transform(X, y)
    after = chem._fingerprint.cache_info()
    np.testing.assert_array_equal(first, second)
    assert after.misses == before.misses and after.hits > before.hits  # every SMILES came from the cache
    np.testing.assert_array_equal(builder.transform(X), second)
    # Rows of one compound share its features, whatever the cell type.
    compound = X["sm_name"].astype(str).to_numpy()
    rows = np.flatnonzero(compound == compound[0])
    assert len(rows) > 1 and (second[rows] == second[rows[0]]).all()


def test_fragment_vocabulary_comes_from_the_fitted_rows(small_dataset):
    train_idx, valid_idx = _fold(small_dataset)
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    builder = FeatureBuilder(onehot=[], target_stats=[], blocks=["substructures"], substructure_min_count=1)
    builder.fit(X.iloc[:50], y[:50])
    vocabulary = set(chemistry.substructure_counts(X["SMILES"].iloc[:50].unique(), min_count=1).columns)
    assert set(builder.blocks_["substructures"].fragments_) == vocabulary
    assert builder.transform(small_dataset.test[FEATURE_COLUMNS]).shape[1] == len(vocabulary)


def test_bad_smiles_warns_and_gets_zero_features(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS].copy(), small_dataset.targets
    X["SMILES"] = X["SMILES"].astype(object)
    X.iloc[0, X.columns.get_loc("SMILES")] = "C1CC(not a molecule"
    X.iloc[1, X.columns.get_loc("SMILES")] = None
    with pytest.warns(UserWarning, match="cannot parse") as caught:
        features = FeatureBuilder(**CHEMISTRY_ONLY).fit_transform(X, y)
    assert len([w for w in caught if "cannot parse" in str(w.message)]) == 1  # one warning per call, not per block
    assert not features[:2].any() and features[2].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FeatureBuilder(**CHEMISTRY_ONLY).fit_transform(X.iloc[2:], y[2:])  # good SMILES do not warn


def test_unknown_chemistry_block_is_named(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    with pytest.raises(ValueError, match="maccs"):
        FeatureBuilder(blocks=["maccs"]).fit(X, y)


def test_defaults_keep_the_original_blocks(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    builder = FeatureBuilder()
    features = builder.fit_transform(X, y)
    assert builder.blocks_ == {} and features.shape[1] == len(builder.onehot_.get_feature_names_out()) + len(
        builder.target_stats_.get_feature_names_out()
    )


def test_input_pca_is_fitted_on_the_training_rows_only(small_dataset):
    train_idx, valid_idx = _fold(small_dataset, fold=2)
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    config = {"blocks": ["morgan", "substructures"], "pca_components": 12}
    outputs = []
    for targets in (y, np.where(np.isin(np.arange(len(y)), valid_idx[:1])[:, None], 1e6, y).astype(np.float32)):
        builder = FeatureBuilder(**config)
        train_features = builder.fit_transform(X.iloc[train_idx], targets[train_idx])
        outputs.append((train_features, builder.transform(X), builder.transform(small_dataset.test[FEATURE_COLUMNS])))
    for clean, planted in zip(*outputs):
        np.testing.assert_array_equal(clean, planted)
    train_features = outputs[0][0]
    assert train_features.shape == (len(train_idx), 12)
    np.testing.assert_allclose(train_features.mean(axis=0), 0, atol=1e-3)  # centred on the training rows
    # The PCA itself changes when the fitted rows do (the check above can fail).
    other = FeatureBuilder(**config).fit(X.iloc[train_idx[::2]], y[train_idx[::2]]).transform(X)
    assert not np.allclose(other, outputs[0][1])
