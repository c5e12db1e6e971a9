"""How well public rows predict the private score and the leaderboard factor: Kaggle's split against random ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbkit.blend.leaderboard import FACTOR_RANGE, PROBE_SCALES, factor_from_scores
from perturbkit.cli import main
from perturbkit.metrics import mrrmse
from perturbkit.public_split import STATISTICS, RowMoments, compare_splits, random_public_rows, split_statistics


@pytest.fixture(scope="module")
def board():
    """Twelve compounds in two cell types; the second half of the rows four times stronger; three submissions."""
    rng = np.random.default_rng(0)
    compounds = pd.Series(np.repeat([f"c{i}" for i in range(12)], 2))
    strength = np.where(np.arange(24) >= 12, 4.0, 1.0)[:, None]
    truth = strength * rng.normal(size=(24, 50))
    predictions = [np.zeros_like(truth), 0.5 * truth + rng.normal(size=truth.shape), 2.0 * truth + 3 * rng.normal(size=truth.shape)]
    return compounds, truth, predictions


def test_statistics_of_a_split_match_direct_scores(board):
    compounds, truth, predictions = board
    public = compounds.isin(["c0", "c1", "c2", "c6"]).to_numpy()
    stats = split_statistics(RowMoments.of(truth, predictions), public)
    assert list(stats) == list(STATISTICS)
    assert stats["zeros public"] == pytest.approx(mrrmse(truth[public], predictions[0][public]))
    assert stats["zeros private"] == pytest.approx(mrrmse(truth[~public], predictions[0][~public]))
    ratios = [mrrmse(truth[~public], p[~public]) / mrrmse(truth[public], p[public]) for p in predictions]
    assert stats["private / public"] == pytest.approx(np.mean(ratios))
    grid = np.linspace(*FACTOR_RANGE, 20001)
    factors = {"public": [factor_from_scores({s: mrrmse(truth[public], s * p[public]) for s in PROBE_SCALES}) for p in predictions[1:]],
               "private": [grid[np.argmin([mrrmse(truth[~public], s * p[~public]) for s in grid])] for p in predictions[1:]]}
    gaps = np.subtract(factors["public"], factors["private"])
    assert stats["factor gap"] == pytest.approx(gaps.mean(), abs=2e-4)
    assert stats["absolute factor gap"] == pytest.approx(np.abs(gaps).mean(), abs=2e-4)
    regret = [mrrmse(truth[~public], fp * p[~public]) / mrrmse(truth[~public], fq * p[~public]) - 1
              for p, fp, fq in zip(predictions[1:], factors["public"], factors["private"])]
    assert stats["factor regret %"] == pytest.approx(100 * np.mean(regret), abs=1e-3) and stats["factor regret %"] >= 0
    # the private rows hold most of the strong half here, so they are the harder ones, as on Kaggle
    assert stats["zeros private / public"] > 1


def test_random_splits_draw_whole_compounds_and_kaggles_split_is_placed_among_them(board):
    compounds, truth, predictions = board
    rng = np.random.default_rng(1)
    for _ in range(5):
        public = random_public_rows(compounds, 4, rng)
        assert compounds[public].nunique() == 4 and public.sum() == 8
    moments = RowMoments.of(truth, predictions)
    kaggle = compounds.isin(["c0", "c1", "c2", "c3"]).to_numpy()  # all weak rows public: private far harder
    table = compare_splits(moments, compounds, kaggle, splits=40, seed=2)
    assert list(table.index) == list(STATISTICS)
    assert table["kaggle"].to_dict() == pytest.approx(split_statistics(moments, kaggle))
    assert table.loc["zeros private / public", "percentile"] == 100.0  # no random split is as lopsided
    assert (table["p5"] <= table["p95"]).all() and (table.loc["factor regret %", ["kaggle", "p5"]] >= 0).all()
    pd.testing.assert_frame_equal(table, compare_splits(moments, compounds, kaggle, splits=40, seed=2))


def test_public_split_command_prints_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERTURBKIT_DEMO_ROOT", str(tmp_path / "demo"))
    out = tmp_path / "split.csv"
    main(["public-split", "--variants", "default", "--models", "zeros,compound_mean", "--demo-genes", "30", "--splits", "20",
          "--oof", str(tmp_path / "oof"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| statistic | default |" in printed and "Spearman public-private" in printed
    table = pd.read_csv(out)
    assert list(table["statistic"]) == list(STATISTICS) and (table["variant"] == "default").all()
    main(["public-split", "--variants", "default", "--models", "zeros,compound_mean", "--demo-genes", "30", "--splits", "20",
          "--oof", str(tmp_path / "oof")])
    assert "compound_mean: stored run" in capsys.readouterr().out  # the stored runs are reused
