"""The recipe: members through the harness, stored runs reused, a blend written; bad recipes and failing members."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perturbkit.cv import load_run
from perturbkit.errors import ConfigError
from perturbkit.folds import make_splitter
from perturbkit.recipe import RecipeError, load_recipe, run_recipe

from faults import WRITE_STEPS, hit_after, snapshot, staging_left

RECIPE = """
scheme = "test_like"
seeds = [0]

[[members]]
model = "compound_mean"

[[members]]
model = "pca_ridge"
set = ["params.n_components=8"]

[blend]
method = "slsqp"
scale = true
"""


def _recipe(tmp_path: Path, text: str = RECIPE) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def _run(dataset, tmp_path, recipe_path, oof="oof", force=False):
    recipe = load_recipe(recipe_path)
    return run_recipe(dataset, recipe, oof_root=tmp_path / oof, submissions=tmp_path / "submissions", dataset_id="test",
                      say=lambda message: None, force=force)


def test_recipe_blends_its_members_and_reuses_stored_runs(small_dataset, tmp_path):
    path = _recipe(tmp_path)
    first = _run(small_dataset, tmp_path, path)
    assert [o.model for o in first.members] == ["compound_mean", "pca_ridge"] and not any(o.reused for o in first.members)
    assert {p.suffix for p in first.files.values()} == {".csv", ".h5ad", ".json"}
    record = json.loads(first.files["json"].read_text())
    assert record["scheme"] == "test_like" and record["choice"]["chosen"] in ("tuned", "simple_average", "best_member")
    assert "blend (nested)" in first.table() and "pca_ridge" in first.table()
    second = _run(small_dataset, tmp_path, path)
    assert all(o.reused for o in second.members)
    assert [o.run_dir for o in second.members] == [o.run_dir for o in first.members]
    assert len(list((tmp_path / "oof").glob("*/*"))) == 2


def test_recipe_reruns_a_member_whose_config_changed(small_dataset, tmp_path):
    _run(small_dataset, tmp_path, _recipe(tmp_path))
    changed = _run(small_dataset, tmp_path, _recipe(tmp_path, RECIPE.replace("n_components=8", "n_components=6")), force=True)
    assert [o.reused for o in changed.members] == [True, False]


@pytest.mark.parametrize("shipped", [False, True], ids=["test recipe", "configs/recipe.toml"])
def test_recipe_members_keep_fold_validation_rows_out(small_dataset, tmp_path, shipped):
    fold_ids = make_splitter("test_like", test_compounds=small_dataset.test["sm_name"].astype(str)).fold_ids(small_dataset.obs)
    planted = small_dataset.targets.copy()
    planted[fold_ids == 0] = 1e4
    path = Path("configs/recipe.toml") if shipped else _recipe(tmp_path)
    clean = _run(small_dataset, tmp_path, path, oof="clean")
    dirty = _run(dataclasses.replace(small_dataset, targets=planted), tmp_path, path, oof="planted")
    for a, b in zip(clean.members, dirty.members):
        run_a, run_b = load_run(a.run_dir), load_run(b.run_dir)
        in_fold = run_a.oof_keys["fold"].to_numpy() == 0
        np.testing.assert_array_equal(run_a.oof[in_fold], run_b.oof[in_fold])


def test_unknown_model_fails_before_any_work(small_dataset, tmp_path):
    path = _recipe(tmp_path, RECIPE.replace('model = "pca_ridge"', 'model = "nonesuch"'))
    with pytest.raises(ConfigError, match="member 2 \\(nonesuch\\).*unknown model 'nonesuch'"):
        load_recipe(path)


@pytest.mark.parametrize("text, message", [
    ("scheme = 'test_like'\n", "lists no \\[\\[members\\]\\]"),
    # refused by load_recipe, so before any member is cross-validated
    ("[[members]]\nmodel = 'compound_mean'\n", "lists 1 \\[\\[members\\]\\]; a blend needs at least two"),
    ("bogus = 1\n" + RECIPE, "unknown key 'bogus'"),
    (RECIPE.replace('method = "slsqp"', 'method = "nonesuch"'), "unknown blend method 'nonesuch'"),
    (RECIPE.replace('set = ["params.n_components=8"]', 'sett = []'), "member 2 \\(pca_ridge\\): unknown key 'sett'"),
    # the shared value types (perturbkit.types): the recipe's seeds are checked as a config's cv.seeds are
    (RECIPE.replace("seeds = [0]", "seeds = [4294967296]"), "seeds = \\[4294967296\\]: Input should be less than or equal to 4294967295"),
    (RECIPE.replace("seeds = [0]", "seeds = [1, 1]"), "seeds = \\[1, 1\\]: seeds must be distinct"),
    (RECIPE.replace("seeds = [0]", "seeds = []"), "seeds = \\[\\]: Value should have at least 1 item"),
    (RECIPE.replace("seeds = [0]", "leaderboard = 'yes'"), "leaderboard = 'yes': Input should be a valid boolean"),
    (RECIPE.replace('set = ["params.n_components=8"]', 'set = [3]'), "member 2 \\(pca_ridge\\): set = \\[3\\]: Input should be a valid string"),
])
def test_bad_recipes_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(_recipe(tmp_path, text))


def test_failing_member_stops_the_recipe_keeps_runs_and_writes_no_blend(small_dataset, tmp_path, monkeypatch):
    from perturbkit.models.pca_target import PCATargetRegressor

    def broken_fit(self, X, y):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(PCATargetRegressor, "fit", broken_fit)
    with pytest.raises(RecipeError, match="member 2 \\(pca_ridge\\) failed: RuntimeError: out of memory; completed runs kept: .*compound_mean"):
        _run(small_dataset, tmp_path, _recipe(tmp_path))
    assert len(list((tmp_path / "oof" / "compound_mean").iterdir())) == 1
    assert not (tmp_path / "submissions").exists() or not list((tmp_path / "submissions").iterdir())


def test_cli_recipe(small_world, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "perturbkit", "recipe", "--recipe", str(_recipe(tmp_path)), "--data", str(small_world),
         "--oof", str(tmp_path / "oof"), "--submissions", str(tmp_path / "sub"), "--no-progress"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "blend (nested)" in result.stdout and (tmp_path / "sub" / "recipe" / "blend.csv").is_file()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_recipe_keeps_its_previous_set(small_dataset, tmp_path, signum):
    from perturbkit.blend import read_blend_record

    path = _recipe(tmp_path)
    folder = tmp_path / "submissions" / "recipe"
    _run(small_dataset, tmp_path, path)
    before = snapshot(folder)
    assert sorted(before) == ["blend.csv", "blend.h5ad", "blend.json"]
    for step in WRITE_STEPS:
        ended = hit_after(step, signum, folder, lambda: _run(small_dataset, tmp_path, path))  # members reused, blend rewritten
        assert ended == ("interrupted" if signum == signal.SIGINT else "killed by SIGTERM"), step
        read_blend_record(folder / "blend.json")  # the set in place is whole: every file as its record lists it
        if step == "swap":
            assert snapshot(folder) != before  # replaced (new inodes) before the signal acted
            before = snapshot(folder)
        else:
            assert snapshot(folder) == before, f"the previous set changed after {step}"
    _run(small_dataset, tmp_path, path)
    assert staging_left(tmp_path / "submissions") == []


def test_recipe_refuses_a_set_another_configuration_wrote_before_any_cv(small_dataset, tmp_path):
    from perturbkit.blend import SetOwnedError

    _run(small_dataset, tmp_path, _recipe(tmp_path))
    before = snapshot(tmp_path / "submissions" / "recipe")
    (tmp_path / "other").mkdir()
    other = _recipe(tmp_path / "other", RECIPE.replace("scale = true", "scale = false"))  # the same members, another blend
    with pytest.raises(SetOwnedError, match=r"written by another configuration of `perturbkit recipe` .*--force"):
        _run(small_dataset, tmp_path, other, oof="oof2")  # refused before its members are cross-validated in oof2
    assert not (tmp_path / "oof2").exists() and snapshot(tmp_path / "submissions" / "recipe") == before
    _run(small_dataset, tmp_path, other, force=True)
    assert snapshot(tmp_path / "submissions" / "recipe") != before


def test_after_the_recipe_and_tuning_trials_the_default_blend_is_no_worse_and_leaves_the_recipe_alone(small_world, small_dataset, tmp_path):
    """The walk of issue 26: recipe, then a tuning study's runs in the same store, then `perturbkit blend` with defaults."""
    from perturbkit.cli import main
    from perturbkit.config import load_config
    from perturbkit.cv import run_cv, save_run

    recipe = _run(small_dataset, tmp_path, _recipe(tmp_path))
    recipe_files = {p.name: p.read_bytes() for p in (tmp_path / "submissions" / "recipe").iterdir()}
    for trial, shrink in enumerate((0.3, 0.6, 1.4)):  # trials of a short compound_mean study, marked as tune.study marks them
        config = load_config("compound_mean", overrides=['cv.scheme="test_like"', f"params.shrink={shrink}"])
        result = run_cv(small_dataset, config, progress=False)
        result.meta["tune"] = {"study": "compound_mean", "trial": trial, "worker": 0}
        save_run(result, tmp_path / "oof")
    code = main(["blend", "--data", str(small_world), "--oof", str(tmp_path / "oof"), "--submissions", str(tmp_path / "submissions"),
                 "--method", "slsqp", "--scale"])
    assert code == 0
    blend = json.loads((tmp_path / "submissions" / "blend" / "blend.json").read_text())
    assert sorted(m["run_id"] for m in blend["members"]) == sorted(o.run_dir.name for o in recipe.members)
    assert blend["scores"]["nested"] <= recipe.blend.scores["nested"] + 0.005
    assert {p.name: p.read_bytes() for p in (tmp_path / "submissions" / "recipe").iterdir()} == recipe_files
