"""Each metric against its formula on hand-built rows, NaN refused, the bootstrap seeded and sound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from perturbkit.errors import DataValidationError
from perturbkit.metrics import (
    bootstrap_means,
    clip_layer,
    mrrmse,
    percentile_interval,
    ratio_interval,
    rowwise_cosine,
    rowwise_discrimination,
    rowwise_mae,
    rowwise_pearson,
    rowwise_rmse,
    rowwise_sign_agreement,
    rowwise_spearman,
    rowwise_top_k,
)
from perturbkit.scorecard import ScoreSettings, score_predictions


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    truth = rng.standard_t(3, size=(7, 40)).astype(np.float32)
    return truth, (truth + rng.normal(size=truth.shape)).astype(np.float32)


def test_mrrmse_is_mean_of_row_rmse(pair):
    truth, prediction = pair
    expected = np.mean([np.sqrt(np.mean((t.astype(float) - p) ** 2)) for t, p in zip(truth, prediction)])
    assert mrrmse(truth, prediction) == pytest.approx(expected, rel=1e-12)
    assert mrrmse(truth, truth) == 0.0


def test_hand_built_rows():
    truth = np.array([[1.0, -2.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    prediction = np.array([[2.0, -2.0, 1.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(rowwise_rmse(truth, prediction), [np.sqrt(5 / 4), np.sqrt(6 / 4)])
    np.testing.assert_allclose(rowwise_mae(truth, prediction), [3 / 4, 4 / 4])
    # row 0: centred (0.5, -2.5, 2.5, -0.5) and (1.75, -2.25, 0.75, -0.25)
    a, b = np.array([0.5, -2.5, 2.5, -0.5]), np.array([1.75, -2.25, 0.75, -0.25])
    # row 1 has a constant truth: its correlations are 0, as openproblems replaces the undefined value
    np.testing.assert_allclose(rowwise_pearson(truth, prediction), [a @ b / np.sqrt((a @ a) * (b @ b)), 0.0])
    # ranks: truth (3, 1, 4, 2), prediction (4, 1, 3, 2) -> centred (0.5, -1.5, 1.5, -0.5) and (1.5, -1.5, 0.5, -0.5)
    np.testing.assert_allclose(rowwise_spearman(truth, prediction), [(0.75 + 2.25 + 0.75 + 0.25) / 5.0, 0.0])
    np.testing.assert_allclose(rowwise_cosine(truth, prediction)[0], (2 + 4 + 3) / (np.sqrt(14) * 3))
    assert rowwise_cosine(truth, np.zeros_like(truth)).tolist() == [0.0, 0.0]


def test_rowwise_metrics_match_scipy(pair):
    truth, prediction = pair
    for row in range(len(truth)):
        assert rowwise_pearson(truth, prediction)[row] == pytest.approx(pearsonr(truth[row], prediction[row])[0], rel=1e-6)
        assert rowwise_spearman(truth, prediction)[row] == pytest.approx(spearmanr(truth[row], prediction[row])[0], rel=1e-6)


def test_spearman_gives_ties_their_average_rank():
    truth = np.array([[5.0, 4.0, 4.0, 4.0, -4.0, -4.0]])  # a clipped row: ties at the clip
    prediction = np.array([[1.0, 3.0, 2.0, 0.5, -1.0, -2.0]])
    assert rowwise_spearman(truth, prediction)[0] == pytest.approx(spearmanr(truth[0], prediction[0])[0])


def test_clip_layer_is_plus_minus_four():
    np.testing.assert_array_equal(clip_layer(np.array([-9.0, -4.0, 3.5, 4.0, 12.0])), [-4.0, -4.0, 3.5, 4.0, 4.0])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_predictions_are_refused_not_replaced(pair, bad):
    truth, prediction = pair
    prediction = prediction.copy()
    prediction[3, 5] = bad
    for metric in (rowwise_rmse, rowwise_pearson, rowwise_sign_agreement, rowwise_top_k):
        with pytest.raises(DataValidationError, match="prediction holds .* row 3, gene column 5"):
            metric(truth, prediction)


def test_shape_mismatch_is_an_error(pair):
    truth, prediction = pair
    with pytest.raises(ValueError, match="one shape"):
        mrrmse(truth, prediction[:, :-1])


def test_sign_agreement_counts_only_the_truly_de_genes():
    truth = np.array([[3.0, -2.5, 1.0, -5.0, 2.0], [1.0, 0.5, -1.0, 0.0, 2.0]])
    prediction = np.array([[0.1, 0.2, -9.0, -0.3, -1.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    # row 0: DE genes |y| > 2 are 0, 1, 3 (gene 4 sits on the threshold): signs agree on 0 and 3
    agreement = rowwise_sign_agreement(truth, prediction, threshold=2.0)
    assert agreement[0] == pytest.approx(2 / 3)
    assert np.isnan(agreement[1])  # no DE gene: left out of the mean
    assert rowwise_sign_agreement(truth, np.zeros_like(truth))[0] == 0.0  # a zero never agrees


def test_top_k_precision_and_overlap():
    # 10 genes, DE (|y| > 2): genes 0-3, ordered by |y|: 0, 1, 2, 3
    truth = np.array([[9.0, -8.0, 7.0, -6.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1]])
    prediction = np.array([[5.0, 0.0, 0.1, -4.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    scores = rowwise_top_k(truth, prediction, ks=(2, 3, 6), threshold=2.0)
    # k=2: T(2)={0,1}, P(2)={0,3}: 1 shared of 2, for both
    assert scores["overlap@2"][0] == pytest.approx(1 / 2) and scores["precision@2"][0] == pytest.approx(1 / 2)
    # k=3: T(3)={0,1,2}, P(3)={0,3,4}: 1 of 3
    assert scores["overlap@3"][0] == pytest.approx(1 / 3) and scores["precision@3"][0] == pytest.approx(1 / 3)
    # k=6 > 4 DE genes: k'=4, T(4)={0,1,2,3}; overlap P(4)={0,3,4,2}: 3 of 4;
    # precision P(6) = {0,3,4,2} + 2 of the 6 genes tied at 0 (gene 1 among them: share 2/6): (3 + 2/6) / 6
    assert scores["overlap@6"][0] == pytest.approx(3 / 4)
    assert scores["precision@6"][0] == pytest.approx((3 + 2 / 6) / 6)


def test_top_k_of_a_constant_prediction_is_its_chance_overlap():
    rng = np.random.default_rng(1)
    truth = rng.normal(scale=3.0, size=(4, 200))
    scores = rowwise_top_k(truth, np.zeros_like(truth), ks=(10,), threshold=2.0)
    # every gene holds a 10/200 share of the top 10: the expected overlap of a random pick
    np.testing.assert_allclose(scores["overlap@10"], 10 / 200)
    np.testing.assert_allclose(scores["precision@10"], 10 / 200)
    assert (rowwise_top_k(truth, truth, ks=(10,))["overlap@10"] == 1.0).all()


def test_top_k_without_de_genes_is_zero():
    truth = np.full((1, 20), 0.5)
    scores = rowwise_top_k(truth, truth, ks=(5,), threshold=2.0)
    assert scores["overlap@5"][0] == 0.0 and scores["precision@5"][0] == 0.0


def test_discrimination_ranks_the_own_profile_within_each_cell_type():
    truth = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    groups = ["B", "B", "B", "M", "M"]
    # B row 0 predicted nearest row 1's profile: one profile closer -> 1 - 1/3; rows 1, 2 perfect
    prediction = np.array([[9.0, 0.0], [10.0, 0.0], [19.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(rowwise_discrimination(truth, prediction, groups), [2 / 3, 1.0, 1.0, 1.0, 0.5])


def test_bootstrap_is_seeded_weighs_clusters_and_contains_the_point():
    rng = np.random.default_rng(2)
    compounds = np.repeat(np.arange(30), 2)
    per_row = pd.DataFrame({"a": rng.normal(1.0, 0.3, 60), "b": rng.normal(2.0, 0.3, 60)})
    per_row.loc[5, "a"] = np.nan
    first = bootstrap_means(per_row, compounds, ratios={"a/b": ("a", "b")}, resamples=500, seed=7)
    again = bootstrap_means(per_row, compounds, ratios={"a/b": ("a", "b")}, resamples=500, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(bootstrap_means(per_row, compounds, ratios={"a/b": ("a", "b")}, resamples=500, seed=8))
    interval = percentile_interval(first)
    point = {"a": np.nanmean(per_row["a"]), "b": per_row["b"].mean()}
    point["a/b"] = point["a"] / point["b"]
    for name, value in point.items():
        assert interval.loc[name, "low"] < value < interval.loc[name, "high"]
    # one resample by hand: compounds drawn with their multiplicities, every row of a drawn compound counted
    draws = np.random.default_rng(7).multinomial(30, np.full(30, 1 / 30), size=500)
    weights = draws[0][compounds]
    present = per_row["a"].notna()
    assert first.loc[0, "a"] == pytest.approx((weights * per_row["a"].fillna(0)).sum() / (weights * present).sum())
    # a constant statistic has a zero-width interval
    low, high = ratio_interval(np.ones(60), np.ones(60), compounds)
    assert low == high == 1.0


def test_scorecard_groups_names_and_intervals(pair):
    truth, prediction = pair
    truth = truth * 2.0
    keys = pd.DataFrame({"cell_type": ["B cells"] * 3 + ["Myeloid cells"] * 4, "sm_name": list("abcabcd")})
    card = score_predictions(truth, prediction, keys, settings=ScoreSettings(top_k=(5, 10), resamples=200))
    assert list(card.table.index.get_level_values("group").unique()) == ["B cells", "Myeloid cells", "all"]
    assert card.value("mrrmse") == pytest.approx(mrrmse(truth, prediction))
    assert card.value("clipped_mrrmse") == pytest.approx(mrrmse(clip_layer(truth), clip_layer(prediction)))
    assert card.value("mrrmse_rel") == pytest.approx(mrrmse(truth, prediction) / mrrmse(truth, np.zeros_like(truth)))
    assert card.value("mrrmse", "B cells") == pytest.approx(mrrmse(truth[:3], prediction[:3]))
    assert {"precision@5", "overlap@10", "sign_agreement", "discrimination", "clipped_spearman"} <= set(card.table.index.get_level_values("metric"))
    overall = card.table.xs("all", level="group")
    assert (overall["low"] <= overall["value"] + 1e-12).all() and (overall["value"] <= overall["high"] + 1e-12).all()
    assert "|truth| > 2" in card.text() and "k = 5, 10" in card.text()
