"""`perturbkit score`: a submission is checked against the truth's ids and genes, then scored per cell type."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from perturbkit.errors import DataValidationError
from perturbkit.submit import score_submission


@pytest.fixture
def truth_as_submission(small_world, tmp_path):
    truth = pd.read_parquet(small_world / "test_truth.parquet")
    path = tmp_path / "submission.csv"
    truth.drop(columns=["cell_type", "sm_name"]).sample(frac=1.0, random_state=0).to_csv(path, index=False)
    return path


def test_perfect_submission_scores_zero_in_any_row_order(small_world, truth_as_submission):
    table = score_submission(truth_as_submission, small_world / "test_truth.parquet")
    assert table.loc["all", "mrrmse"] == pytest.approx(0.0, abs=1e-6)
    assert table.loc["all", "pearson"] == pytest.approx(1.0)
    assert {"B cells", "Myeloid cells", "all"} == set(table.index)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.drop(columns=[s.columns[3]]), r"gene columns differ .*missing \['"),
        (lambda s: s.assign(EXTRA_GENE=0.0), r"extra \['EXTRA_GENE'\]"),
        (lambda s: s.iloc[1:], r"ids differ .*missing \["),
        (lambda s: pd.concat([s, s.iloc[[0]].assign(id=999)]), r"extra \[999\]"),
        (lambda s: pd.concat([s, s.iloc[[0]]]), r"duplicate id"),
        (lambda s: s.assign(**{s.columns[2]: s[s.columns[2]].where(s.index != s.index[4])}), r"non-finite value in column"),
    ],
)
def test_bad_submission_is_rejected_by_name(small_world, truth_as_submission, change, message):
    change(pd.read_csv(truth_as_submission)).to_csv(truth_as_submission, index=False)
    with pytest.raises(DataValidationError, match=message):
        score_submission(truth_as_submission, small_world / "test_truth.parquet")


def test_cli_score(small_world, truth_as_submission):
    result = subprocess.run(
        [sys.executable, "-m", "perturbkit", "score", str(truth_as_submission), "--truth", str(small_world / "test_truth.parquet")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Myeloid cells" in result.stdout and "mrrmse" in result.stdout
