"""No target leakage: a sentinel planted in one validation row's targets changes nothing in that fold."""

from __future__ import annotations

import numpy as np
import pytest

from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS
from perturbkit.models import build_model
from perturbkit.features import FeatureBuilder
from helpers import lymphoid_fold, with_sentinel


def test_sentinel_in_validation_row_changes_no_feature(small_dataset):
    train_idx, valid_idx = lymphoid_fold(small_dataset)
    X = small_dataset.obs[FEATURE_COLUMNS]
    sentinel_row = valid_idx[0]
    outputs = []
    for targets in (small_dataset.targets, with_sentinel(small_dataset.targets, sentinel_row)):
        builder = FeatureBuilder(leave_one_out=True)
        train_features = builder.fit_transform(X.iloc[train_idx], targets[train_idx])
        outputs.append((train_features, builder.transform(X.iloc[valid_idx]), builder.transform(small_dataset.test[FEATURE_COLUMNS])))
    for clean, planted in zip(*outputs):
        np.testing.assert_array_equal(clean, planted)


@pytest.mark.parametrize("model", ["compound_mean", "celltype_mean", "pca_ridge", "pca_knn"])
def test_sentinel_in_validation_row_changes_no_prediction(small_dataset, model):
    train_idx, valid_idx = lymphoid_fold(small_dataset, fold=1)
    X = small_dataset.obs[FEATURE_COLUMNS]
    config = load_config(model)
    predictions = []
    for targets in (small_dataset.targets, with_sentinel(small_dataset.targets, valid_idx[3])):
        fitted = build_model(config, seed=0).fit(X.iloc[train_idx], targets[train_idx])
        predictions.append(fitted.predict(X.iloc[valid_idx]))
    np.testing.assert_array_equal(*predictions)


def test_sentinel_in_training_row_does_reach_the_features(small_dataset):
    """The check above can fail: the same sentinel in a training row changes the features."""
    train_idx, _ = lymphoid_fold(small_dataset)
    X = small_dataset.obs[FEATURE_COLUMNS].iloc[train_idx]
    clean = FeatureBuilder().fit_transform(X, small_dataset.targets[train_idx])
    planted = FeatureBuilder().fit_transform(X, with_sentinel(small_dataset.targets, train_idx[0])[train_idx])
    assert not np.array_equal(clean, planted)
