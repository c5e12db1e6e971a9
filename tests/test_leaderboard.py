"""Public-leaderboard probes: the factor they give, the demo's public rows, and the recipe's two real-data steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from perturbkit.blend import blend_table
from perturbkit.blend.leaderboard import (
    FACTOR_RANGE,
    PROBE_SCALES,
    PROBES_FILE,
    LeaderboardError,
    blend_digest,
    factor_from_scores,
    read_probes,
    write_probe_requests,
)
from perturbkit.cli import build_parser
from perturbkit.data import load_dataset
from perturbkit.data.hidden import PUBLIC_FILE, WORLD_FILE
from perturbkit.data.layout import leaderboard_split
from perturbkit.errors import ConfigError
from perturbkit.kaggle.probes import fetch_probe_scores, probe_message, submit_probes
from perturbkit.metrics import rowwise_rmse
from perturbkit.recipe import load_recipe, run_recipe
from perturbkit.submit import read_truth

RECIPE = """
scheme = "test_like"
leaderboard = {leaderboard}

[[members]]
model = "compound_mean"

[[members]]
model = "transfer_ridge"
set = ["params.n_components=4"]

[blend]
method = "slsqp"
scale = true
"""


def _public_mrrmse(truth, prediction, scale):
    return float(rowwise_rmse(truth, scale * prediction).mean())


def test_one_row_gives_the_exact_least_squares_factor():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(1, 500))
    prediction = 2.5 * truth + rng.normal(size=(1, 500))
    scores = {s: _public_mrrmse(truth, prediction, s) for s in PROBE_SCALES}
    exact = float((truth * prediction).sum() / (prediction**2).sum())
    assert factor_from_scores(scores) == pytest.approx(exact, rel=1e-9)


def test_many_rows_give_a_factor_near_the_best_one():
    rng = np.random.default_rng(1)
    strength = rng.lognormal(sigma=0.8, size=(80, 1))
    truth = strength * rng.normal(size=(80, 300))
    prediction = 1.6 * truth + strength * rng.normal(size=(80, 300))
    factor = factor_from_scores({s: _public_mrrmse(truth, prediction, s) for s in PROBE_SCALES})
    grid = np.linspace(0, 1, 1001)
    best = grid[np.argmin([_public_mrrmse(truth, prediction, s) for s in grid])]
    assert factor == pytest.approx(best, abs=0.02)
    assert _public_mrrmse(truth, prediction, factor) < _public_mrrmse(truth, prediction, 1.0)


@pytest.mark.parametrize("scores, message", [
    ({0.0: 1.5, 1.0: 1.2}, "at least 3"),
    ({0.0: 1.0, 0.5: 1.4, 1.0: 1.5}, "convex"),
    ({0.0: 1.0, 0.5: float("nan"), 1.0: 1.5}, "finite"),
])
def test_unusable_scores_are_refused(scores, message):
    with pytest.raises(LeaderboardError, match=message):
        factor_from_scores(scores)


def test_factor_stays_in_range():
    # Squared scores 4 - 2s + 0.1 s^2: the parabola's minimum (s = 10) lies far beyond the range.
    scores = {s: float(np.sqrt(4 - 2 * s + 0.1 * s**2)) for s in PROBE_SCALES}
    assert factor_from_scores(scores) == FACTOR_RANGE[1]


def test_probes_file_is_tied_to_its_blend(tmp_path):
    path = tmp_path / PROBES_FILE
    path.write_text(json.dumps({"blend_digest": "abc", "scores": {"0": 1.5, "0.5": None, "1": 1.3}}))
    assert read_probes(path, "abc") is None
    with pytest.raises(LeaderboardError, match=f"{PROBES_FILE}: the scores are for blend abc, this blend is xyz"):
        read_probes(path, "xyz")
    with pytest.raises(LeaderboardError, match="missing.json: not found"):
        read_probes(tmp_path / "missing.json", "abc")
    path.write_text(json.dumps({"scores": {"0": 1.5}}))
    with pytest.raises(LeaderboardError, match=f"{PROBES_FILE}: expected"):
        read_probes(path, "abc")


def test_demo_public_rows_are_the_100_rows_of_kaggles_50_public_compounds(small_world, small_dataset):
    listed = pd.read_csv(small_world / PUBLIC_FILE)["id"]
    split = leaderboard_split()
    public_compounds = set(split.loc[split["split"] == "public", "sm_name"])
    assert len(public_compounds) == 50 and (split["split"] == "private").sum() == 79
    test = small_dataset.test
    expected = test.loc[test["sm_name"].isin(public_compounds), "id"]
    assert len(expected) == 100 and listed.is_unique
    assert sorted(listed) == sorted(expected)
    private = test.loc[~test["id"].isin(listed)]
    assert len(private) == 155 and set(private["sm_name"]) == set(split.loc[split["split"] == "private", "sm_name"])


def _recipe(tmp_path, leaderboard: bool):
    path = tmp_path / f"recipe_{leaderboard}.toml"
    path.write_text(RECIPE.format(leaderboard=str(leaderboard).lower()))
    return load_recipe(path)


def _run(dataset, tmp_path, recipe, submissions="submissions"):
    return run_recipe(dataset, recipe, oof_root=tmp_path / "oof", submissions=tmp_path / submissions, dataset_id="test",
                      say=lambda message: None)


def test_recipe_on_a_demo_world_scales_the_test_rows_by_its_public_probes(small_world, small_dataset, tmp_path):
    plain = _run(small_dataset, tmp_path, _recipe(tmp_path, False), "plain")
    probed = _run(small_dataset, tmp_path, _recipe(tmp_path, True), "probed")
    assert all(o.reused for o in probed.members)
    keys, genes, values = read_truth(small_world / "test_truth.parquet")
    public_ids = pd.read_csv(small_world / PUBLIC_FILE)["id"]
    rows = np.flatnonzero(small_dataset.test["id"].isin(public_ids))
    truth = values[pd.Index(keys["id"]).get_indexer(small_dataset.test["id"].iloc[rows])][:, pd.Index(genes).get_indexer(list(small_dataset.genes))]
    expected = {s: _public_mrrmse(truth, plain.blend.test[rows].astype(np.float64), s) for s in PROBE_SCALES}
    board = probed.blend.leaderboard
    assert board.scores == pytest.approx(expected)
    assert board.factor == pytest.approx(factor_from_scores(expected))
    np.testing.assert_allclose(probed.blend.test, board.factor * plain.blend.test, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(probed.blend.oof, plain.blend.oof)  # CV rows are untouched
    record = json.loads(probed.files["json"].read_text())
    plain_record = json.loads(plain.files["json"].read_text())
    assert record["leaderboard"]["factor"] == pytest.approx(board.factor)
    assert record["scale"] == pytest.approx(board.factor * plain_record["scale"])  # a kernel rebuilt from the record applies it
    assert "public-leaderboard probes" in blend_table(probed.blend) and "leaderboard: test rows x" in probed.table()


def test_recipe_on_real_data_writes_probe_files_then_applies_the_entered_scores(small_world, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(small_world, real)
    truth_path = tmp_path / "truth.parquet"
    shutil.move(real / "test_truth.parquet", truth_path)  # real data has no truth and no public split
    (real / PUBLIC_FILE).unlink()
    (real / WORLD_FILE).unlink()
    dataset = load_dataset(real)
    recipe = _recipe(tmp_path, True)

    first = _run(dataset, tmp_path, recipe)
    submissions = tmp_path / "submissions"
    assert first.blend.leaderboard is None and "enter their public scores" in first.table()
    request = json.loads((submissions / PROBES_FILE).read_text())
    assert request["blend_digest"] == blend_digest(first.blend.test)
    assert set(request["scores"]) == {f"{s:g}" for s in PROBE_SCALES} and not any(request["scores"].values())
    # Play Kaggle: score each probe file on some "public" rows of the truth.
    keys, genes, values = read_truth(truth_path)
    scores = {}
    for scale, path in request["files"].items():
        submitted = pd.read_csv(path).set_index("id").loc[keys["id"].iloc[:40], genes].to_numpy()
        scores[scale] = float(rowwise_rmse(values[:40], submitted).mean())
    request["scores"] = scores
    (submissions / PROBES_FILE).write_text(json.dumps(request))

    second = _run(dataset, tmp_path, recipe)
    assert all(o.reused for o in second.members)
    factor = factor_from_scores({float(s): v for s, v in scores.items()})
    assert second.blend.leaderboard.factor == pytest.approx(factor)
    np.testing.assert_allclose(second.blend.test, factor * first.blend.test, rtol=1e-5, atol=1e-6)

    request["blend_digest"] = "0" * 16
    (submissions / PROBES_FILE).write_text(json.dumps(request))
    blend_json = (submissions / "recipe" / "blend.json").read_bytes()
    with pytest.raises(LeaderboardError, match=PROBES_FILE):
        _run(dataset, tmp_path, recipe)
    assert (submissions / "recipe" / "blend.json").read_bytes() == blend_json  # nothing written


def test_recipe_leaderboard_must_be_a_boolean(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE.format(leaderboard='"yes"'))
    with pytest.raises(ConfigError, match=r"leaderboard = 'yes': Input should be a valid boolean"):
        load_recipe(path)


class FakeKaggle:
    """The two Kaggle API calls the probes use: submissions are recorded, then listed as scored or pending."""

    COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE = "upload failed"

    def __init__(self):
        self.submitted, self.listed = [], []

    def competition_submit(self, path, message, competition, quiet=True):
        self.submitted.append((Path(path).name, message, competition))
        return SimpleNamespace(message="Successfully submitted")

    def competition_submissions(self, competition):
        return self.listed


def test_probes_are_submitted_and_their_public_scores_fetched(tmp_path):
    submissions = tmp_path / "submissions"
    ids, genes = ["0", "1"], ["A", "B"]
    write_probe_requests(submissions, "d1", ids, genes, np.ones((2, 2), dtype=np.float32), template=None)
    api = FakeKaggle()
    submit_probes(submissions, api=api)
    assert [(name, message) for name, message, _ in api.submitted] == [
        (f"probe_{s:g}.csv", probe_message(s, "d1")) for s in PROBE_SCALES
    ]
    api.listed = [
        SimpleNamespace(description=probe_message(0.0, "d1"), status="SubmissionStatus.COMPLETE", public_score="1.5"),
        SimpleNamespace(description=probe_message(0.5, "d1"), status=SimpleNamespace(name="PENDING"), public_score=None),
        SimpleNamespace(description=probe_message(1.0, "d1"), status="complete", public_score=None, publicScore=1.25),
        SimpleNamespace(description=probe_message(0.5, "old"), status="complete", public_score=9.0),  # another blend's probe
    ]
    assert fetch_probe_scores(submissions, api=api) == {0.0: 1.5, 0.5: None, 1.0: 1.25}
    assert read_probes(submissions / PROBES_FILE, "d1") is None  # one still pending
    api.listed[1] = SimpleNamespace(description=probe_message(0.5, "d1"), status="COMPLETE", public_score=1.3)
    fetch_probe_scores(submissions, api=api)
    assert read_probes(submissions / PROBES_FILE, "d1") == {0.0: 1.5, 0.5: 1.3, 1.0: 1.25}
    api.submitted.clear()
    submit_probes(submissions, api=api)  # every probe scored: nothing to send
    assert api.submitted == []


def test_probes_command_says_which_rows_the_public_scores_come_from(tmp_path, monkeypatch, capsys):
    from perturbkit.cli import main

    submissions = tmp_path / "submissions"
    write_probe_requests(submissions, "d2", ["0", "1"], ["A", "B"], np.ones((2, 2), dtype=np.float32), template=None)
    api = FakeKaggle()
    monkeypatch.setattr("perturbkit.kaggle.probes.kaggle_api", lambda: api)
    main(["probes", "submit", "--submissions", str(submissions)])
    assert len(api.submitted) == len(PROBE_SCALES)
    assert "the 100 test rows of the 50 public compounds" in capsys.readouterr().out
    api.listed = [SimpleNamespace(description=probe_message(s, "d2"), status="COMPLETE", public_score=1.0 + s) for s in PROBE_SCALES]
    main(["probes", "fetch", "--submissions", str(submissions)])
    printed = capsys.readouterr().out
    assert "public scores (Kaggle's public leaderboard: the 100 test rows of the 50 public compounds)" in printed
    assert json.loads((submissions / PROBES_FILE).read_text())["public_rows"].startswith("Kaggle's public leaderboard")


def test_the_probes_commands_default_to_the_folder_the_recipe_writes_probes_json_into():
    """The recipe writes probes.json into its --submissions root (above); `probes submit|fetch` read it there."""
    parser = build_parser()
    recipe = parser.parse_args(["recipe"]).submissions
    assert parser.parse_args(["probes", "submit"]).submissions == recipe
    assert parser.parse_args(["probes", "fetch"]).submissions == recipe
