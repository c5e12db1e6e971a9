"""MRRMSE and the row-wise metrics against direct formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from perturbkit.metrics import mrrmse, rowwise_cosine, rowwise_mae, rowwise_pearson, rowwise_spearman, score_table


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


def test_mrrmse_accumulates_in_float64():
    truth = np.full((1, 100_000), 1e4, dtype=np.float32)
    prediction = truth + np.float32(1.0)
    assert mrrmse(truth, prediction) == pytest.approx(1.0, rel=1e-9)


def test_rowwise_metrics_match_scipy(pair):
    truth, prediction = pair
    for row in range(len(truth)):
        assert rowwise_pearson(truth, prediction)[row] == pytest.approx(pearsonr(truth[row], prediction[row])[0], rel=1e-6)
        assert rowwise_spearman(truth, prediction)[row] == pytest.approx(spearmanr(truth[row], prediction[row])[0], rel=1e-6)
        cosine = truth[row] @ prediction[row] / np.linalg.norm(truth[row]) / np.linalg.norm(prediction[row])
        assert rowwise_cosine(truth, prediction)[row] == pytest.approx(cosine, rel=1e-5)
    np.testing.assert_allclose(rowwise_mae(truth, prediction), np.abs(truth - prediction).mean(axis=1), rtol=1e-6)


def test_shape_mismatch_is_an_error(pair):
    truth, prediction = pair
    with pytest.raises(ValueError, match="one shape"):
        mrrmse(truth, prediction[:, :-1])


def test_score_table_groups_and_overall(pair):
    truth, prediction = pair
    groups = ["B cells"] * 3 + ["Myeloid cells"] * 4
    table = score_table(truth, prediction, groups)
    assert list(table.index) == ["B cells", "Myeloid cells", "all"]
    assert table.loc["all", "mrrmse"] == pytest.approx(mrrmse(truth, prediction))
    assert table.loc["B cells", "rows"] == 3 and table.loc["all", "rows"] == 7
