"""Target statistics and one-hot blocks: correct values, fallbacks, and leave-one-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbkit.features import FeatureBuilder
from perturbkit.features.target_stats import TargetStatistics, _leave_one_out_statistics


def _toy():
    X = pd.DataFrame(
        {
            "cell_type": pd.Categorical(["a", "a", "b", "b", "b", "c"], categories=["a", "b", "c", "d"]),
            "sm_name": pd.Categorical(["x", "y", "x", "y", "z", "z"], categories=["x", "y", "z", "w"]),
        }
    )
    y = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    return X, y


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_leave_one_out_statistics_match_direct_computation(n):
    block = np.random.default_rng(n).normal(size=(n, 9))
    stats = _leave_one_out_statistics(block)
    for row in range(n):
        others = np.delete(block, row, axis=0)
        np.testing.assert_allclose(stats["mean"][row], others.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(stats["std"][row], others.std(axis=0), atol=1e-7)  # sums of squares: float cancellation
        np.testing.assert_allclose(stats["median"][row], np.median(others, axis=0), atol=1e-12)


def test_unseen_group_falls_back_to_global_statistics():
    X, y = _toy()
    stats = TargetStatistics(by=("sm_name",), statistics=("mean",), n_components=2).fit(X, y)
    unseen = pd.DataFrame({"sm_name": ["w"], "cell_type": ["d"]})
    expected = stats.pcas_["sm_name", "mean"].transform(y.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(stats.transform(unseen), expected, rtol=1e-5)


def test_training_rows_see_their_group_statistics():
    X, y = _toy()
    stats = TargetStatistics(by=("cell_type",), statistics=("mean",), n_components=3)
    features = stats.fit_transform(X, y)
    # rows of one group get identical features; transform of the same rows agrees with fit_transform
    np.testing.assert_allclose(features[2], features[3])
    np.testing.assert_allclose(stats.transform(X), features, rtol=1e-5, atol=1e-6)


def test_unknown_statistic_is_named():
    X, y = _toy()
    with pytest.raises(ValueError, match=r"unknown target statistic\(s\) \['mode'\]"):
        TargetStatistics(statistics=("mean", "mode")).fit(X, y)


def test_one_hot_knows_categories_absent_from_the_fold():
    X, y = _toy()
    builder = FeatureBuilder(target_stats=())
    features = builder.fit_transform(X, y)
    assert features.shape == (6, 4 + 4)
    new = pd.DataFrame({"cell_type": pd.Categorical(["d"], categories=["a", "b", "c", "d"]), "sm_name": pd.Categorical(["w"], categories=["x", "y", "z", "w"])})
    assert builder.transform(new).sum() == 2  # the unseen-in-fold categories have their own columns


def test_every_block_off_is_an_error():
    X, y = _toy()
    with pytest.raises(ValueError, match="every feature block is switched off"):
        FeatureBuilder(onehot=(), target_stats=()).fit(X, y)


def test_wide_pca_matches_sklearn_pca():
    from sklearn.decomposition import PCA

    from perturbkit.features.pca import WidePCA

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(60, 500)) * np.linspace(3, 0.1, 500)).astype(np.float32)
    reference, wide = PCA(8, svd_solver="full").fit(X), WidePCA(8).fit(X)
    np.testing.assert_allclose(wide.components_, reference.components_, atol=1e-4)
    np.testing.assert_allclose(wide.explained_variance_, reference.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(wide.inverse_transform(wide.transform(X)), reference.inverse_transform(reference.transform(X)), atol=1e-3)


def test_wide_pca_with_fewer_distinct_rows_than_components():
    from perturbkit.features.pca import WidePCA

    rows = np.repeat(np.random.default_rng(1).normal(size=(3, 40)), 4, axis=0).astype(np.float32)
    pca = WidePCA(8).fit(rows)
    assert pca.components_.shape == (8, 40)
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(rows)), rows, atol=1e-5)


def test_group_statistics_keep_no_noise_directions():
    """k groups span k - 1 directions: a noise component would blow up fallback rows once standardised."""
    X, y = _toy()
    stats = TargetStatistics(by=("cell_type",), statistics=("mean",), n_components=5)  # at most the rows - 1; k - 1 = 2 is kept
    features = stats.fit_transform(X, y)
    assert features.shape[1] == 2  # 3 cell types in the training rows
    spread = features.std(axis=0)
    assert (spread > 1e-3 * spread.max()).all()


def test_wide_pca_zeroes_directions_below_rank_tolerance():
    from perturbkit.features.pca import WidePCA

    rng = np.random.default_rng(2)
    rows = np.repeat(rng.normal(size=(3, 200)), 5, axis=0).astype(np.float32)
    pca = WidePCA(6).fit(rows)
    scores = pca.transform(rows)
    assert np.abs(scores[:, 2:]).max() == 0.0  # 3 distinct rows: 2 directions of variance
    assert np.abs(pca.transform(rng.normal(size=(4, 200)) * 100)[:, 2:]).max() == 0.0


def test_pca_ridge_stays_bounded_when_a_row_falls_back_to_global_statistics(small_dataset):
    from perturbkit.config import load_config
    from perturbkit.cv import FEATURE_COLUMNS
    from perturbkit.models import build_model

    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    compound = X["sm_name"].astype(str) == str(small_dataset.test["sm_name"].iloc[0])
    model = build_model(load_config("pca_ridge"), seed=0).fit(X[~compound], y[~compound.to_numpy()])
    prediction = model.predict(small_dataset.test[FEATURE_COLUMNS].iloc[:1])
    assert np.abs(prediction).max() < np.abs(y).max()
