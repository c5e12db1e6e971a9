"""Blending stored runs: alignment by key, refusals, the Gram objective, the searches' guarantees, outputs."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
from pathlib import Path
from typing import Annotated  # the toy method's annotation, resolved in this module's globals

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import Field

from perturbkit.blend import (
    read_blend_record,
    blend_table,
    BlendError,
    BlendOptions,
    IncompatibleRunsError,
    blend_members,
    blend_runs,
    gram_matrices,
    load_members,
    score,
    search,
    select_runs,
    weights_from_uniform,
)
from perturbkit.blend import objective
from perturbkit.cli import main
from perturbkit.config import load_config
from perturbkit.cv import run_cv, save_run
from perturbkit.errors import ConfigError
from perturbkit.metrics import mrrmse, rowwise_rmse
from perturbkit.submit import score_submission

from faults import WRITE_STEPS, hit_after, snapshot, staging_left

CHEAP = ("zeros", "gene_mean", "compound_mean", "celltype_mean")
FAST = BlendOptions(method="slsqp", nested=True)


def _runs(dataset, root: Path, scheme: str, models=CHEAP) -> list[Path]:
    paths = []
    for model in models:
        config = load_config(model)
        config["cv"]["scheme"] = scheme
        paths.append(save_run(run_cv(dataset, config, progress=False), root))
    return paths


@pytest.fixture(scope="module")
def oof_root(small_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("oof")
    _runs(small_dataset, root, "lymphoid_holdout")
    return root


@pytest.fixture(scope="module")
def lymphoid_runs(oof_root) -> list[Path]:
    return sorted(p for p in oof_root.glob("*/*") if p.is_dir())


@pytest.fixture(scope="module")
def bm_runs(small_dataset, tmp_path_factory) -> list[Path]:
    return _runs(small_dataset, tmp_path_factory.mktemp("oof_bm"), "bm_holdout", models=("zeros", "compound_mean", "gene_mean"))


@pytest.fixture(scope="module")
def members(lymphoid_runs, small_dataset):
    return load_members(lymphoid_runs, small_dataset)


@pytest.fixture(scope="module")
def gram(members):
    return gram_matrices(members.oof, members.y)


def test_members_are_aligned_on_the_dataset(members, small_dataset):
    assert members.oof.shape == (len(CHEAP), len(members.keys), small_dataset.n_genes)
    assert (members.folds >= 0).all()
    expected = small_dataset.targets[members.dataset_positions]
    np.testing.assert_array_equal(members.y, expected)
    # de_train order
    assert (np.diff(members.dataset_positions) > 0).all()
    assert members.test.shape == (len(CHEAP), len(small_dataset.test), small_dataset.n_genes)


def test_gram_objective_equals_direct_mrrmse(members, gram):
    rng = np.random.default_rng(0)
    for _ in range(5):
        weights = rng.dirichlet(np.ones(len(members.names)))
        s = rng.uniform(0.5, 1.5)
        direct = mrrmse(members.y, s * np.tensordot(weights, members.oof.astype(np.float64), axes=1))
        assert score(gram, weights, s) == pytest.approx(direct, rel=1e-6)
        many = objective.score_many(gram, np.vstack([weights, weights]), s)
        assert many == pytest.approx([direct, direct], rel=1e-6)
    # weights that do not sum to one (the y term) are exact too
    weights = np.array([0.3, 0.2, 0.1, 0.1])
    direct = rowwise_rmse(members.y, np.tensordot(weights, members.oof.astype(np.float64), axes=1))
    assert objective.row_rmse(gram, weights) == pytest.approx(direct, rel=1e-6)


def test_dirichlet_trick_gives_simplex_weights():
    rng = np.random.default_rng(1)
    for _ in range(50):
        w = weights_from_uniform(rng.uniform(size=6))
        assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    assert weights_from_uniform([0.5, 1.0, 1.0]) == pytest.approx([1.0, 0.0, 0.0])
    assert weights_from_uniform([0.0, 0.5]).sum() == pytest.approx(1.0)  # u = 0 does not give inf / nan


@pytest.mark.parametrize("method", ["optuna", "slsqp", "caruana"])
def test_search_weights_on_simplex_and_never_worse_than_members_or_average(gram, method):
    result = search(gram, method, trials=30, seed=0)
    assert result.method == method
    assert (result.weights >= 0).all() and result.weights.sum() == pytest.approx(1.0)
    n = gram.shape[1] - 1
    best_member = min(score(gram, np.eye(n)[m]) for m in range(n))
    average = score(gram, np.full(n, 1.0 / n))
    assert result.score <= best_member * (1 + 1e-12)
    assert result.score <= average * (1 + 1e-12)
    assert result.score == pytest.approx(score(gram, result.weights))


def test_guarantee_holds_with_a_single_optuna_trial(gram):
    """One trial is the enqueued simple average; the reference check still returns the best member."""
    result = search(gram, "optuna", trials=1, seed=0)
    n = gram.shape[1] - 1
    best_member = min(score(gram, np.eye(n)[m]) for m in range(n))
    assert result.score <= best_member * (1 + 1e-12)


def test_optuna_is_seeded(gram):
    a = search(gram, "optuna", trials=25, seed=3)
    b = search(gram, "optuna", trials=25, seed=3)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_optuna_storage_resumes_a_study(gram, tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    first = search(gram, "optuna", trials=8, seed=0, storage=url, study_name="s")
    second = search(gram, "optuna", trials=8, seed=0, storage=url, study_name="s")
    assert first.details["resumed_trials"] == 0
    assert second.details["resumed_trials"] == 8 and second.details["study_trials"] == 16
    assert second.score <= first.score + 1e-12


def test_blend_in_sample_and_nested_scores(members, small_dataset):
    result = blend_members(members, small_dataset, BlendOptions(method="optuna", settings={"trials": 40}))
    scores = result.scores
    assert scores["in_sample"] <= min(scores["members"].values()) + 1e-9
    assert scores["in_sample"] <= scores["simple_average"] + 1e-9
    assert np.isfinite(scores["nested"])
    # the in-sample score is the direct MRRMSE of the blended OOF predictions
    assert scores["in_sample"] == pytest.approx(mrrmse(members.y, result.oof), rel=1e-5)
    assert set(result.per_fold().index) == set(np.unique(members.folds))
    assert len(result.nested.fits) == len(np.unique(members.folds))
    table = blend_table(result)
    for text in ("simple average", "tuned blend", "in-sample", "nested", *members.names):
        assert text in table
    assert result.test.shape == (len(small_dataset.test), small_dataset.n_genes)


def test_nested_refits_without_the_held_out_fold(members, small_dataset, gram):
    result = blend_members(members, small_dataset, FAST)
    folds = members.folds
    tuned_nested = np.empty(len(folds))
    for k, fit in result.nested.fits.items():
        train = folds != k
        expected = search(gram[train], "slsqp").weights
        np.testing.assert_allclose(fit.weights, expected)
        held = folds == k
        tuned_nested[held] = objective.row_rmse(gram[held], expected)
    assert result.choice["nested"]["tuned"] == pytest.approx(tuned_nested.mean())
    chosen = result.choice["chosen"]
    assert result.choice["nested"][chosen] == min(result.choice["nested"].values()) == pytest.approx(result.scores["nested"])


def test_scale_and_clip(members, small_dataset):
    result = blend_members(members, small_dataset, BlendOptions(method="slsqp", scale=True, clip=True))
    scale = result.fit.scale
    assert 0.0 <= scale <= 2.0
    low, high = small_dataset.targets.min(axis=0), small_dataset.targets.max(axis=0)
    assert (result.test >= low - 1e-6).all() and (result.test <= high + 1e-6).all()
    assert "in_sample_unclipped" in result.scores
    # the fitted scale is no worse than 1 on the unclipped objective
    scaled = blend_members(members, small_dataset, BlendOptions(method="slsqp", scale=True, clip=True, nested=False))
    assert scaled.scores["in_sample_unclipped"] <= blend_members(members, small_dataset, dataclasses.replace(FAST, nested=False)).scores["in_sample"] + 1e-9


def test_nested_clipping_of_every_fold_uses_only_the_other_folds_ranges(members, small_dataset):
    from perturbkit.blend.choice import references
    from perturbkit.blend.fit import weighted_sum

    # Per fold k: one held-out row's truth of gene k is the largest value of that gene, and every member predicts beyond it,
    # so the clipped blend there is the other folds' maximum when the range leaves the held-out fold out, 1e3 if not.
    targets, oof = small_dataset.targets.copy(), members.oof.copy()
    for k in np.unique(members.folds):
        row = np.flatnonzero(members.folds == k)[0]
        targets[members.dataset_positions[row], k], oof[:, row, k] = 1e3, 2e3
    dataset = dataclasses.replace(small_dataset, targets=targets)
    planted = dataclasses.replace(members, oof=oof, y=targets[members.dataset_positions])
    result = blend_members(planted, dataset, BlendOptions(method="slsqp", clip=True, nested=True))
    chosen, nested = result.choice["chosen"], result.row_scores["blend_nested"].to_numpy()
    weighted_gram = gram_matrices(planted.oof, planted.y) * (planted.row_weights**2)[:, None, None]
    for k in np.unique(planted.folds):
        held = np.flatnonzero(planted.folds == k)
        if chosen == "tuned":
            weights, scale = result.nested.fits[int(k)].weights, result.nested.fits[int(k)].scale
        else:
            weights, scale = references(weighted_gram[planted.folds != k])[chosen], 1.0
        blend = weighted_sum(planted.oof[:, held], weights, scale)
        others = targets[planted.dataset_folds != k]
        expected = rowwise_rmse(planted.y[held], np.clip(blend, others.min(axis=0), others.max(axis=0)))
        with_own_rows = rowwise_rmse(planted.y[held], np.clip(blend, targets.min(axis=0), targets.max(axis=0)))
        assert not np.allclose(expected, with_own_rows), f"fold {k}: the check cannot tell the ranges apart"
        np.testing.assert_allclose(nested[held], expected, rtol=1e-5, err_msg=f"fold {k}")


def test_clipped_layer_scores_of_the_blend_match_a_hand_computation(members):
    """Two members on six genes whose best mix differs per fold, the truth well beyond ±4: the blend's clipped-layer
    MRRMSE, nested (each fold predicted by the weights fitted without it) and in-sample, recomputed with numpy."""
    rng = np.random.default_rng(0)
    folds = members.folds
    y = rng.normal(0.0, 5.0, (len(folds), 6))
    error, noise = rng.normal(0.0, 2.0, y.shape), rng.normal(0.0, 1.0, (2, *y.shape))
    ratio = 1.5 + np.searchsorted(np.unique(folds), folds)[:, None]  # member b errs against a, ratio times as much
    oof = np.stack([y + error, y - ratio * error]) + noise
    rig = dataclasses.replace(members, names=["a", "b"], runs=members.runs[:2], genes=[f"g{i}" for i in range(6)],
                              oof=oof.astype(np.float32), y=y.astype(np.float32),
                              test=np.zeros((2, len(members.test_ids), 6), np.float32))
    result = blend_members(rig, None, FAST)
    assert result.choice["chosen"] == "tuned"

    def clipped_mrrmse(weights_per_row):
        prediction = np.einsum("rm,mrg->rg", weights_per_row, rig.oof.astype(np.float64))
        truth = np.clip(rig.y.astype(np.float64), -4, 4)
        rmse = np.sqrt(((truth - np.clip(prediction, -4, 4)) ** 2).mean(axis=1))
        return np.average(rmse, weights=rig.row_weights)

    nested_weights = np.empty((len(folds), 2))
    for k, fit in result.nested.fits.items():
        nested_weights[folds == k] = fit.weights
    in_sample_weights = np.tile(result.fit.weights, (len(folds), 1))
    assert np.abs(nested_weights - in_sample_weights).min() > 1e-3  # in-sample weights would score differently
    zeros = np.average(np.sqrt((np.clip(rig.y.astype(np.float64), -4, 4) ** 2).mean(axis=1)), weights=rig.row_weights)
    clipped = result.scores["clipped"]
    assert clipped["nested"] == pytest.approx(clipped_mrrmse(nested_weights), rel=1e-5)
    assert clipped["in_sample"] == pytest.approx(clipped_mrrmse(in_sample_weights), rel=1e-5)
    assert clipped["zeros"] == pytest.approx(zeros, rel=1e-6)
    assert clipped["nested_relative_to_zeros"] == pytest.approx(clipped["nested"] / zeros)
    assert clipped["in_sample_relative_to_zeros"] == pytest.approx(clipped["in_sample"] / zeros)
    unclipped_zeros = np.average(np.sqrt((rig.y.astype(np.float64) ** 2).mean(axis=1)), weights=rig.row_weights)
    scores = result.scores
    assert scores["zeros"] == pytest.approx(unclipped_zeros, rel=1e-6) and scores["zeros"] > clipped["zeros"]
    assert scores["nested_relative_to_zeros"] == pytest.approx(scores["nested"] / unclipped_zeros, rel=1e-6)
    assert "±4 layer" in blend_table(result)
    assert blend_members(rig, None, dataclasses.replace(FAST, nested=False)).scores["clipped"]["nested"] is None


def test_runs_with_shuffled_rows_are_aligned_by_key(lymphoid_runs, small_dataset, tmp_path, members):
    shuffled = []
    for run in lymphoid_runs:
        copy = tmp_path / run.parent.name / run.name
        shutil.copytree(run, copy)
        for name in ("oof.parquet", "test.parquet"):
            table = pq.read_table(copy / name)
            order = np.random.default_rng(7).permutation(table.num_rows)
            pq.write_table(table.take(order), copy / name)
            _reseal(copy, name)
        shuffled.append(copy)
    again = load_members(shuffled, small_dataset)
    np.testing.assert_array_equal(again.oof, members.oof)
    np.testing.assert_array_equal(again.test, members.test)
    pd.testing.assert_frame_equal(again.keys, members.keys)
    a = blend_runs(lymphoid_runs, small_dataset, FAST)
    b = blend_runs(shuffled, small_dataset, FAST)
    assert a.scores == b.scores
    np.testing.assert_array_equal(a.test, b.test)


def test_runs_with_different_folds_are_refused(lymphoid_runs, bm_runs, small_dataset):
    with pytest.raises(IncompatibleRunsError, match="fold"):
        load_members([lymphoid_runs[0], bm_runs[0]], small_dataset)


def test_runs_on_other_data_are_refused(lymphoid_runs, small_dataset, tmp_path):
    other = dataclasses.replace(small_dataset, data_hash="0" * 32)
    with pytest.raises(IncompatibleRunsError, match="hash"):
        load_members(lymphoid_runs, other)
    copy = tmp_path / "zeros" / "other-data"
    shutil.copytree(lymphoid_runs[0], copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["data_hash"] = "f" * 32
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IncompatibleRunsError, match="hash"):
        load_members([lymphoid_runs[1], copy], small_dataset)


def test_run_with_tampered_fold_rows_is_refused(lymphoid_runs, small_dataset, tmp_path):
    copy = tmp_path / "m" / "tampered"
    shutil.copytree(lymphoid_runs[0], copy)
    frame = pd.read_parquet(copy / "oof.parquet")
    frame.loc[0, "fold"] = (frame.loc[0, "fold"] + 1) % 4
    frame.to_parquet(copy / "oof.parquet", index=False)
    _reseal(copy, "oof.parquet")
    with pytest.raises(IncompatibleRunsError, match="folds"):
        load_members([lymphoid_runs[1], copy], small_dataset)


def test_per_celltype_is_retired_with_its_reason(tmp_path):
    config = tmp_path / "blend.toml"
    config.write_text("method = \"slsqp\"\nper_celltype = true\n")
    from perturbkit.blend.options import resolve_options

    with pytest.raises(ConfigError, match=rf"{config}: per_celltype was retired: .*docs/experiments.md"):
        resolve_options(config)
    with pytest.raises(ConfigError, match="per_celltype was retired"):
        resolve_options(None, ["per_celltype=false"])


@pytest.mark.parametrize("override, message", [
    ("seed=-1", r"seed = -1: input should be greater than or equal to 0"),
    ("seed=4294967296", r"seed = 4294967296: input should be less than or equal to 4294967295"),
    ("scale_max=inf", r"scale_max = inf: input should be a finite number"),
    ("trials=0", r"trials = 0 \(of optuna\): input should be greater than or equal to 1"),
    ("scale_min=1.5", r"scale_min <= 1 <= scale_max"),
    ("nested=maybe", r"nested = 'maybe'"),
])
def test_blend_options_are_validated_once_with_the_shared_types(override, message):
    from perturbkit.blend.options import resolve_options

    with pytest.raises(ConfigError, match=message):
        resolve_options(None, [override])


def test_select_runs_one_per_model_and_refusals(oof_root, small_dataset, bm_runs):
    paths, lines = select_runs(oof_root, data_hash=small_dataset.data_hash)
    assert sorted(p.parent.name for p in paths) == sorted(CHEAP)
    assert all(line.startswith("taken ") for line in lines) and len(lines) == len(CHEAP)
    with pytest.raises(BlendError, match="no run"):
        select_runs(oof_root, data_hash="0" * 32)
    mixed = bm_runs[0].parent.parent
    # a store with two schemes: refused unless one is chosen
    shutil.copytree(oof_root / "compound_mean", mixed / "compound_mean", dirs_exist_ok=True)
    with pytest.raises(IncompatibleRunsError, match="--scheme"):
        select_runs(mixed, data_hash=small_dataset.data_hash, every=True)
    chosen, _ = select_runs(mixed, data_hash=small_dataset.data_hash, scheme="bm_holdout")
    assert len(chosen) == 3


def _stored(dataset, root, model, overrides=(), tune=None) -> Path:
    config = load_config(model, overrides=['cv.scheme="lymphoid_holdout"', *overrides])
    result = run_cv(dataset, config, progress=False)
    if tune is not None:
        result.meta["tune"] = tune  # as tune.study marks the runs of its trials
    return save_run(result, root)


def test_the_default_run_choice_is_the_best_cv_of_each_model_and_config_without_tuning_trials(small_dataset, tmp_path):
    root = tmp_path / "oof"
    plain = _stored(small_dataset, root, "compound_mean")
    shrunk = _stored(small_dataset, root, "compound_mean", ["params.shrink=0.5"])  # another config of the same model
    worse = _stored(small_dataset, root, "celltype_mean", ["params.shrink=3.0"])
    better = _stored(small_dataset, root, "celltype_mean", ["params.shrink=0.8"])
    trial = _stored(small_dataset, root, "compound_mean", ["params.shrink=0.7"], tune={"study": "s", "trial": 3, "worker": 0})
    rerun = _stored(small_dataset, root, "compound_mean")  # the same model and config again: equal CV, the newest taken
    paths, lines = select_runs(root, data_hash=small_dataset.data_hash)
    assert set(paths) == {rerun, shrunk, worse, better}  # celltype_mean's two configs are two members
    text = "\n".join(lines)
    assert f"left out compound_mean/{trial.name}: tuning trial 3 of study 's' (pass --include-tuning" in text
    assert f"left out compound_mean/{plain.name}: CV " in text and f"run {rerun.name} of the same model and config" in text
    for path in paths:
        assert f"taken {path.parent.name}/{path.name}: CV " in text
    with_trials, _ = select_runs(root, data_hash=small_dataset.data_hash, include_tuning=True)
    assert trial in with_trials
    recipe_configs = [json.loads((p / "meta.json").read_text())["config"] for p in (plain, better)]
    exact, lines = select_runs(root, data_hash=small_dataset.data_hash, configs=recipe_configs)
    assert set(exact) == {rerun, better}
    assert f"left out compound_mean/{trial.name}: its config is none of the recipe's members'" in "\n".join(lines)
    with pytest.raises(BlendError, match=r"1 recipe member\(s\) have no stored run .*gene_mean"):
        select_runs(root, data_hash=small_dataset.data_hash, configs=[*recipe_configs, load_config("gene_mean")])


def test_cli_blend_writes_its_set_and_scores(oof_root, small_world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    submissions = tmp_path / "submissions"
    code = main(["blend", "--data", str(small_world), "--oof", str(oof_root), "--submissions", str(submissions),
                 "--trials", "30", "--scale"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "tuned blend" in out and "simple average" in out and "nested" in out
    assert sorted(p.name for p in (submissions / "blend").iterdir() if not p.name.startswith(".")) == ["blend.csv", "blend.h5ad", "blend.json"]
    assert [p.name for p in submissions.iterdir()] == ["blend"]  # no staging left
    record = json.loads((submissions / "blend" / "blend.json").read_text())
    for key in ("members", "scale", "clip", "method", "scores", "data_hash", "folds_hash", "writer"):
        assert key in record
    assert record["writer"]["command"] == "blend"
    for key in ("in_sample", "nested", "members", "simple_average"):
        assert key in record["scores"]
    for member in record["members"]:
        assert {"model", "run_id", "config", "weight"} <= set(member) and "weights" not in member
        assert member["config"]["model"] == member["model"]
    assert sum(m["weight"] for m in record["members"]) == pytest.approx(1.0)
    read = read_blend_record(submissions / "blend" / "blend.json")  # the reader returns what the writer built
    assert read.names == [m["name"] for m in record["members"]]
    assert read.weights.weights == tuple(m["weight"] for m in record["members"]) and read.weights.scale == record["scale"]
    header = (submissions / "blend" / "blend.csv").open().readline().strip().split(",")
    template = (small_world / "sample_submission.csv").open().readline().strip().split(",")
    assert header == template
    truth = small_world / "test_truth.parquet"
    csv_scores = score_submission(submissions / "blend" / "blend.csv", truth)
    h5ad_scores = score_submission(submissions / "blend" / "blend.h5ad", truth)
    assert csv_scores.value("mrrmse") == pytest.approx(h5ad_scores.value("mrrmse"), rel=1e-6)
    # score without a file takes the recommended set's csv and says so; a csv its record does not list is refused
    assert main(["score", "--submissions", str(submissions), "--truth", str(truth), "--resamples", "10"]) == 0
    assert f"using {submissions / 'blend' / 'blend.csv'}" in capsys.readouterr().err
    stray = submissions / "blend" / "other.csv"
    shutil.copy(submissions / "blend" / "blend.csv", stray)
    assert main(["score", str(stray), "--truth", str(truth)]) == 2
    assert "not a file of the blend recorded in" in capsys.readouterr().err


def test_cli_blend_errors_are_named(oof_root, small_world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    code = main(["blend", "--data", str(small_world), "--oof", str(oof_root), "--submissions", str(tmp_path),
                 "--method", "slsqp", "--set", "per_celltype=true"])
    assert code == 2
    assert "per_celltype was retired" in capsys.readouterr().err
    code = main(["blend", "--data", str(small_world), "--oof", str(tmp_path / "empty"), "--submissions", str(tmp_path)])
    assert code == 2
    assert "no complete runs" in capsys.readouterr().err
    for args, message in ((["--set", "bogus=1"], "bogus"), (["--search-seed", "-1"], "seed = -1"), (["--set", "scale_max=inf"], "scale_max = inf"),
                          (["--name", "a\nb"], "--name 'a\\nb': must be a plain folder name"), (["--name", ".."], "--name '..'"),
                          (["--name", "a/b"], "--name 'a/b'"), (["--name", "/tmp/x"], "--name '/tmp/x'")):
        code = main(["blend", "--data", str(small_world), "--oof", str(oof_root), "--submissions", str(tmp_path / "s"), *args])
        assert code == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "s").exists()  # nothing written


def test_tuned_weights_that_lose_nested_are_not_written(members, small_dataset):
    """Member 0 is perfect on every fold but the last, where it is far off; member 1 is fair everywhere.

    Weights tuned without the last fold trust member 0 and fail there: in nested terms the tuned
    weights lose to the simple average, which is what gets written.
    """
    folds = members.folds
    last = folds == folds.max()
    fair = members.y + 1.0
    spiky = np.where(last[:, None], members.y + 6.0, members.y)
    rigged = dataclasses.replace(members, names=["spiky", "fair"], oof=np.stack([spiky, fair]).astype(np.float32),
                                 test=members.test[:2])
    result = blend_members(rigged, small_dataset, FAST)
    nested = result.choice["nested"]
    assert nested["tuned"] > nested["simple_average"]
    assert result.choice["chosen"] == "simple_average"
    np.testing.assert_allclose(result.fit.weights, [0.5, 0.5])
    np.testing.assert_allclose(result.test, rigged.test.mean(axis=0), rtol=1e-6)
    assert "written: simple_average" in blend_table(result)
    assert result.scores["nested"] == pytest.approx(nested["simple_average"])


def test_toy_blend_method_registers_and_runs_through_blend(members, small_dataset):
    from perturbkit.blend import SearchResult, list_blend_methods, register_blend_method

    @register_blend_method("first_member_toy", "all weight on the first member (test)")
    def first_member(gram):
        weights = np.eye(gram.shape[1] - 1)[0]
        return SearchResult(method="first_member_toy", weights=weights, score=objective.score(gram, weights),
                            evaluations=1, seconds=0.0, chosen="search")

    assert "first_member_toy" in list_blend_methods()
    result = blend_members(members, small_dataset, BlendOptions(method="first_member_toy", nested=False))
    assert result.fit.search.method == "first_member_toy"
    assert all(fit.search.method == "first_member_toy" for fit in
               blend_members(members, small_dataset, BlendOptions(method="first_member_toy")).nested.fits.values())


def test_blend_method_with_its_own_setting_reachable_through_set(members, small_dataset, monkeypatch):
    """docs/extending.md: a method's keyword parameters are its settings: --set keys, typed and checked by the signature."""
    from perturbkit.blend import SearchResult, register_blend_method
    from perturbkit.blend.options import resolve_options
    from perturbkit.blend.search import BLEND_METHODS

    monkeypatch.setattr(BLEND_METHODS, "_items", dict(BLEND_METHODS._items))
    monkeypatch.setattr(BLEND_METHODS, "_help", dict(BLEND_METHODS._help))

    received = []

    @register_blend_method("first_k_toy", "equal weights on the first k members (test)")
    def first_k(gram, *, first_k: Annotated[int, Field(ge=1)] = 1):
        received.append(first_k)
        weights = np.zeros(gram.shape[1] - 1)
        weights[:first_k] = 1.0 / first_k
        return SearchResult(method="first_k_toy", weights=weights, score=objective.score(gram, weights),
                            evaluations=1, seconds=0.0, chosen="search")

    options = resolve_options(None, ["first_k=2", "nested=false"], {"method": "first_k_toy"})
    assert options.settings == {"first_k": 2} and options.to_json()["first_k"] == 2
    assert blend_members(members, small_dataset, options).fit.search.method == "first_k_toy" and received == [2]
    with pytest.raises(ConfigError, match=r"blend setting first_k = 0 \(of first_k_toy\): .*greater than or equal to 1"):
        resolve_options(None, ["first_k=0"], {"method": "first_k_toy"})
    with pytest.raises(ConfigError, match=r"unknown blend option\(s\) \['first_kk'\]; known: .*'first_k'"):
        resolve_options(None, ["first_kk=2"], {"method": "first_k_toy"})
    # A shipped method's setting that no flag names reaches it too: slsqp's max_iter.
    capped = blend_members(members, small_dataset, resolve_options(None, ["max_iter=1", "nested=false"], {"method": "slsqp"}))
    free = blend_members(members, small_dataset, BlendOptions(method="slsqp", nested=False))
    assert capped.fit.search.details["iterations"] <= 1 < free.fit.search.details["iterations"]


def test_test_like_runs_blend_with_the_schemes_row_weights(small_dataset, tmp_path):
    paths = _runs(small_dataset, tmp_path, "test_like", models=("zeros", "compound_mean"))
    test_like = load_members(paths, small_dataset)
    is_bm = test_like.keys["cell_type"].isin(["B cells", "Myeloid cells"]).to_numpy()
    assert test_like.row_weights[is_bm].sum() == pytest.approx(test_like.row_weights[~is_bm].sum())
    result = blend_members(test_like, small_dataset, FAST)
    run_score = json.loads((paths[1] / "meta.json").read_text())["scores"]["overall"]
    assert result.scores["members"]["compound_mean"] == pytest.approx(run_score, rel=1e-5)


def test_run_blend_takes_typed_arguments(lymphoid_runs, small_dataset, tmp_path):
    import io

    from perturbkit.blend.command import run_blend

    out = io.StringIO()
    options = BlendOptions(method="slsqp", nested=False)
    files = run_blend(small_dataset, options, runs=lymphoid_runs[:2], submissions=tmp_path, name="typed", dataset_id="perturbkit_demo",
                      h5ad=False, out=out)
    assert set(files) == {"csv", "json"} and files["json"] == tmp_path / "typed" / "blend.json"
    assert "blending 2 run(s)" in out.getvalue() and len(read_blend_record(files["json"]).members) == 2
    with pytest.raises(BlendError, match="oof_root"):
        run_blend(small_dataset, options, submissions=tmp_path, dataset_id="perturbkit_demo", out=out)


# --- row weights stored with each run -------------------------------------------------------------


@pytest.fixture(scope="module")
def test_like_runs(small_dataset, tmp_path_factory) -> list[Path]:
    return _runs(small_dataset, tmp_path_factory.mktemp("oof_test_like"), "test_like", models=("zeros", "compound_mean"))


def _copies(runs: list[Path], tmp_path: Path) -> list[Path]:
    copies = [tmp_path / "oof" / run.parent.name / run.name for run in runs]
    for run, copy in zip(runs, copies):
        shutil.copytree(run, copy)
    return copies


def _reseal(run_dir: Path, name: str) -> None:
    """Record a rewritten file's size and hash in meta.json, as if the run had been written with it."""
    from perturbkit.io import sha256_file

    meta = json.loads((run_dir / "meta.json").read_text())
    meta["files"][name].update(bytes=(run_dir / name).stat().st_size, sha256=sha256_file(run_dir / name))
    (run_dir / "meta.json").write_text(json.dumps(meta))


def test_the_blend_weighs_rows_as_the_stored_scores_did_not_as_todays_scheme_code(test_like_runs, small_dataset, monkeypatch):
    from perturbkit.folds import TestLike

    stored = pd.read_parquet(test_like_runs[0] / "weights.parquet")
    meta = json.loads((test_like_runs[0] / "meta.json").read_text())
    assert "weights.parquet" in meta["files"] and len(stored) == len(small_dataset.obs)
    expected = load_members(test_like_runs, small_dataset).row_weights
    assert expected.max() > 2 * expected.min()  # test_like: the B/Myeloid rows weigh more
    monkeypatch.setattr(TestLike, "row_weights", lambda self, X: np.ones(len(X)))  # a later version weighs rows otherwise
    np.testing.assert_array_equal(load_members(test_like_runs, small_dataset).row_weights, expected)


def test_a_run_whose_stored_weights_disagree_with_its_score_is_refused_as_damaged(test_like_runs, small_dataset, tmp_path):
    from perturbkit.cv.store import DamagedRunError

    runs = _copies(test_like_runs, tmp_path)
    weights = pd.read_parquet(runs[1] / "weights.parquet")
    weights["weight"] = 1.0  # hashes re-recorded: only the score can tell
    weights.to_parquet(runs[1] / "weights.parquet", index=False)
    _reseal(runs[1], "weights.parquet")
    with pytest.raises(DamagedRunError, match=rf"{runs[1] / 'weights.parquet'}: its row weights give an overall MRRMSE"):
        load_members(runs, small_dataset)


def test_a_changed_weights_file_fails_its_hash(test_like_runs, small_dataset, tmp_path):
    from perturbkit.cv.store import DamagedRunError

    runs = _copies(test_like_runs, tmp_path)
    weights = pd.read_parquet(runs[0] / "weights.parquet")
    weights["weight"] = weights["weight"][::-1].to_numpy()
    weights.to_parquet(runs[0] / "weights.parquet", index=False)
    with pytest.raises(DamagedRunError, match="weights.parquet (does not match the sha256|has .* bytes)"):
        load_members(runs, small_dataset)


def test_a_run_stored_before_row_weights_is_refused_with_a_rerun_hint(test_like_runs, small_world, small_dataset, tmp_path, capsys):
    from perturbkit.cv.store import OutdatedRunError

    runs = _copies(test_like_runs, tmp_path)
    (runs[1] / "weights.parquet").unlink()
    meta = json.loads((runs[1] / "meta.json").read_text())
    del meta["files"]["weights.parquet"]
    (runs[1] / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(OutdatedRunError, match=rf"{runs[1]}: no weights.parquet .* rerun it \(perturbkit cv --model compound_mean\)"):
        load_members(runs, small_dataset)
    code = main(["blend", "--runs", *map(str, runs), "--data", str(small_world), "--submissions", str(tmp_path / "subs")])
    err = capsys.readouterr().err
    assert code == 2 and "no weights.parquet" in err and "Traceback" not in err
    assert not (tmp_path / "subs").exists()


# --- the set: written whole or not at all, never over another writer's -----------------------------------------

WRITER = {"command": "blend", "config": "test", "config_hash": "0"}


@pytest.fixture(scope="module")
def two_blends(lymphoid_runs, small_dataset):
    options = BlendOptions(method="slsqp", nested=False)
    return blend_runs(lymphoid_runs[:2], small_dataset, options), blend_runs(lymphoid_runs[:3], small_dataset, options)


def _write(result, dataset, submissions, writer=WRITER, **kwargs):
    from perturbkit.blend import write_blend

    return write_blend(result, dataset, submissions, "blend", dataset_id="perturbkit_demo", writer=writer, **kwargs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_blend_keeps_the_previous_set(two_blends, small_dataset, tmp_path, signum):
    old, new = two_blends
    submissions = tmp_path / "submissions"
    folder = submissions / "blend"
    _write(old, small_dataset, submissions)
    before = snapshot(folder)
    assert len(before) == 3
    for step in WRITE_STEPS:
        ended = hit_after(step, signum, folder, lambda: _write(new, small_dataset, submissions))
        assert ended == ("interrupted" if signum == signal.SIGINT else "killed by SIGTERM"), step
        record = read_blend_record(folder / "blend.json")  # consistent: each file the record lists, with its hash
        if step == "swap":  # the signal waited for the swap: the new set, whole
            assert len(record.members) == 3 and snapshot(folder) != before
        else:
            assert snapshot(folder) == before, f"the previous set changed after {step}"
    _write(new, small_dataset, submissions)  # a successful rerun removes what killed writers left
    assert staging_left(submissions) == [] and len(read_blend_record(folder / "blend.json").members) == 3


def test_a_full_disk_is_a_named_error_and_keeps_the_previous_set(two_blends, small_dataset, tmp_path, monkeypatch):
    import errno

    import perturbkit.blend.files as files
    from perturbkit.io import OutputError

    old, new = two_blends
    submissions = tmp_path / "submissions"
    _write(old, small_dataset, submissions)
    before = snapshot(submissions / "blend")
    # too little room for the h5ad: refused before the native writer starts (it crashed near a full disk)
    with monkeypatch.context() as patch:
        patch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 300_000, 300_000))
        with pytest.raises(OutputError, match=r"blend\.h5ad: no space left on device for it \(0\.3 MB free, .* MB needed\)"):
            _write(new, small_dataset, submissions)
    assert snapshot(submissions / "blend") == before and staging_left(submissions) == []

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "write_prediction_h5ad", full)
    with pytest.raises(OutputError, match="no space left on device"):
        _write(new, small_dataset, submissions)
    assert snapshot(submissions / "blend") == before and staging_left(submissions) == []


def test_a_set_of_another_command_or_configuration_needs_force(two_blends, small_dataset, tmp_path):
    from perturbkit.blend import SetOwnedError

    old, new = two_blends
    submissions = tmp_path / "submissions"
    recipe = {"command": "recipe", "config": "configs/recipe.toml", "config_hash": "1"}
    _write(old, small_dataset, submissions, writer=recipe)
    before = snapshot(submissions / "blend")
    with pytest.raises(SetOwnedError, match=r"written by `perturbkit recipe` \(configs/recipe.toml\); this is `perturbkit blend`.*--force"):
        _write(new, small_dataset, submissions)
    with pytest.raises(SetOwnedError, match="written by another configuration of `perturbkit recipe`"):
        _write(new, small_dataset, submissions, writer={**recipe, "config_hash": "2"})
    assert snapshot(submissions / "blend") == before
    _write(new, small_dataset, submissions, force=True)
    assert read_blend_record(submissions / "blend" / "blend.json").details["writer"] == WRITER
    _write(old, small_dataset, submissions)  # the same writer again: no --force needed
    foreign = submissions / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(SetOwnedError, match="holds no blend set perturbkit wrote"):
        from perturbkit.blend import write_blend

        write_blend(old, small_dataset, submissions, "mine", dataset_id="d", writer=WRITER)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_cli_blend_refuses_to_write_over_another_configuration_before_any_work(lymphoid_runs, small_world, tmp_path, capsys):
    common = ["blend", "--data", str(small_world), "--runs", *map(str, lymphoid_runs[:2]), "--submissions", str(tmp_path),
              "--no-nested", "--no-h5ad"]
    assert main([*common, "--method", "slsqp"]) == 0
    capsys.readouterr()
    assert main([*common, "--method", "caruana"]) == 2
    err = capsys.readouterr().err
    assert "written by another configuration of `perturbkit blend` (method slsqp)" in err and "--force" in err
    assert main([*common, "--method", "caruana", "--name", "other"]) == 0
    assert main([*common, "--method", "caruana", "--force"]) == 0


def test_the_defaults_of_the_readers_follow_the_recipe_and_say_which_file(two_blends, small_dataset, tmp_path, capsys):
    from perturbkit.blend import write_blend
    from perturbkit.blend.files import recommended_file
    from perturbkit.blend.record import BlendRecordError

    old, new = two_blends
    submissions = tmp_path / "submissions"
    with pytest.raises(BlendRecordError, match=r"no blend set under .*recipe/blend.json, blend/blend.json"):
        recommended_file(submissions)
    _write(new, small_dataset, submissions)
    assert recommended_file(submissions) == submissions / "blend" / "blend.json"
    write_blend(old, small_dataset, submissions, "recipe", dataset_id="d", writer={"command": "recipe", "config": "r", "config_hash": "1"})
    assert recommended_file(submissions, "csv") == submissions / "recipe" / "blend.csv"
    gene = small_dataset.genes[0]
    assert main(["rank", "--gene", gene, "--cell-type", "B cells", "--submissions", str(submissions), "--top", "3"]) == 0
    assert f"using {submissions / 'recipe' / 'blend.json'} (the recipe's set" in capsys.readouterr().err
