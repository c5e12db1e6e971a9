"""The CV harness and run store: complete runs, reproducibility, atomic writes, listing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbkit.config import load_config
from perturbkit.cv import list_runs, load_run, run_cv, save_run, summary_text
from perturbkit.cv.store import RUN_FILES
from perturbkit.metrics import mrrmse
from perturbkit.models.registry import create_model


@pytest.fixture(scope="module")
def ridge_run(small_dataset, tmp_path_factory):
    # the store's mechanics, on the unweighted lymphoid_holdout scheme
    result = run_cv(small_dataset, load_config("pca_ridge", overrides=['cv.scheme="lymphoid_holdout"']), progress=False)
    return result, save_run(result, tmp_path_factory.mktemp("oof"))


def test_run_directory_is_complete_and_keyed(ridge_run, small_dataset):
    assert all((ridge_run[1] / name).is_file() for name in RUN_FILES)
    run = load_run(ridge_run[1])
    folds = pd.read_parquet(ridge_run[1] / "folds.parquet")
    assert len(folds) == 614 and list(folds.columns) == ["cell_type", "sm_name", "fold"]
    validated = folds[folds["fold"] >= 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(run.oof_keys, validated)
    assert run.oof.shape == (len(validated), 300) and run.oof.dtype == np.float32
    assert list(run.test_ids) == list(small_dataset.test["id"])
    assert run.genes == list(small_dataset.genes)
    meta = run.meta
    for key in ("config", "config_hash", "data_hash", "folds_hash", "scheme", "seed", "scores", "timings", "versions", "git_sha"):
        assert key in meta
    assert meta["data_hash"] == small_dataset.data_hash
    assert set(meta["scores"]["per_cell_type"]) == {"NK cells", "T cells CD4+", "T cells CD8+", "T regulatory cells"}
    assert len(meta["scores"]["per_fold"]) == 4


def test_stored_scores_match_the_stored_predictions(ridge_run, small_dataset):
    run = load_run(ridge_run[1])
    keys = pd.MultiIndex.from_frame(small_dataset.obs[["cell_type", "sm_name"]].astype(str))
    rows = keys.get_indexer(pd.MultiIndex.from_frame(run.oof_keys[["cell_type", "sm_name"]]))
    overall = mrrmse(small_dataset.targets[rows], run.oof)
    assert overall == pytest.approx(run.meta["scores"]["overall"], rel=1e-9)
    assert run.meta["scores"]["relative_to_zeros"] == pytest.approx(overall / mrrmse(small_dataset.targets[rows], 0 * run.oof))


def test_cross_cell_type_transfer_beats_predicting_zeros_in_cv(small_dataset):
    result = run_cv(small_dataset, load_config("transfer_ridge"), progress=False)
    assert result.meta["scores"]["relative_to_zeros"] < 0.95


def test_same_seed_gives_identical_files(small_dataset, tmp_path):
    config = load_config("pca_ridge")
    first = save_run(run_cv(small_dataset, config, progress=False), tmp_path)
    second = save_run(run_cv(small_dataset, config, progress=False), tmp_path)
    assert first != second
    for name in ("oof.parquet", "test.parquet", "folds.parquet"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_each_fold_fits_a_clone_of_the_built_estimator(small_dataset, monkeypatch):
    """The harness fits clones: every estimator built from the config stays unfitted, so no fold starts from another's fit."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from perturbkit.models import build

    built = []
    monkeypatch.setattr(build, "create_model", lambda name, **params: built.append(create_model(name, **params)) or built[-1])
    config = load_config("pca_ridge", overrides=["params.n_components=4", 'cv.scheme="kfold"', "cv.n_splits=3"])
    result = run_cv(small_dataset, config, progress=False)
    assert built and len(result.meta["folds"]) == 3
    for estimator in built:
        with pytest.raises(NotFittedError):
            check_is_fitted(estimator)


def test_refit_and_scheme_overrides(small_dataset, tmp_path):
    config = load_config("compound_mean", overrides=["cv.scheme=\"bm_holdout\"", "cv.refit=true"])
    result = run_cv(small_dataset, config, progress=False)
    assert result.meta["scheme"] == "bm_holdout" and result.meta["refit"] is True
    assert set(result.meta["scores"]["per_cell_type"]) == {"B cells", "Myeloid cells"}
    # compound_mean refitted on all rows predicts the mean of the compound's training rows
    compound = str(small_dataset.test["sm_name"].iloc[0])
    rows = (small_dataset.obs["sm_name"].astype(str) == compound).to_numpy()
    np.testing.assert_allclose(result.test[0], small_dataset.targets[rows].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_listing_and_summary(ridge_run):
    runs = list_runs(ridge_run[1].parents[1])
    assert list(runs["run_id"]) == [ridge_run[1].name]
    assert runs["mrrmse"].iloc[0] == pytest.approx(ridge_run[0].meta["scores"]["overall"])
    text = summary_text(ridge_run[0].meta)
    assert "NK cells" in text and "overall" in text


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from perturbkit.cv import run_cv, save_run
    from perturbkit.config import load_config
    from perturbkit.data import load_dataset
    from perturbkit.models import register_model
    from perturbkit.models.baselines import GroupMeanRegressor

    class DiesInThirdFold(GroupMeanRegressor):
        fits = 0
        def fit(self, X, y):
            DiesInThirdFold.fits += 1
            if DiesInThirdFold.fits == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().fit(X, y)

    register_model("dies")(lambda: DiesInThirdFold())
    save_run(run_cv(load_dataset(sys.argv[1]), {"model": "dies", "params": {}, "cv": load_config("zeros")["cv"]}, progress=False), sys.argv[2])
    """
)


def test_killed_run_leaves_nothing_listed(small_world, tmp_path):
    oof = tmp_path / "oof"
    result = subprocess.run([sys.executable, "-c", KILLER, str(small_world), str(oof)], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL
    assert list_runs(oof).empty
    assert [p.name for p in oof.glob("*/*") if not p.name.startswith(".")] == []


def test_failure_midway_removes_the_partial_run(small_dataset, tmp_path, monkeypatch):
    from perturbkit.cv import store

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_run(run_cv(small_dataset, load_config("zeros"), progress=False), tmp_path)
    assert list(tmp_path.rglob("*.parquet")) == [] and list_runs(tmp_path).empty
    assert not [p for p in (tmp_path / "zeros").iterdir()]


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "perturbkit", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_cv_prints_summary_and_runs_lists_it(small_world, tmp_path):
    oof = tmp_path / "oof"
    result = _cli("cv", "--model", "celltype_mean", "--data", str(small_world), "--oof", str(oof), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "T cells CD8+" in result.stdout and "overall" in result.stdout
    listed = _cli("runs", "--oof", str(oof))
    assert "celltype_mean" in listed.stdout


def test_cli_unknown_model_lists_known(small_world, tmp_path):
    result = _cli("cv", "--model", "nonesuch", "--data", str(small_world), "--oof", str(tmp_path / "oof"))
    assert result.returncode == 2
    assert "unknown model 'nonesuch', known:" in result.stderr and "pca_ridge" in result.stderr
    assert not (tmp_path / "oof").exists()


def test_cli_bad_override_is_named(small_world, tmp_path):
    result = _cli("cv", "--model", "pca_ridge", "--data", str(small_world), "--oof", str(tmp_path / "oof"), "--set", "params.nonesuch=1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pca_ridge" in result.stderr and "nonesuch" in result.stderr
    assert not (tmp_path / "oof").exists()


def test_meta_is_valid_json_with_config(ridge_run):
    meta = json.loads((ridge_run[1] / "meta.json").read_text())
    assert meta["config"]["params"]["alpha"] == load_config("pca_ridge")["params"]["alpha"]


def test_test_like_overall_weights_b_myeloid_as_much_as_lymphoid(small_dataset):
    result = run_cv(small_dataset, load_config("compound_mean", overrides=['cv.scheme="test_like"']), progress=False)
    per_cell_type = result.meta["scores"]["per_cell_type"]
    assert set(per_cell_type) == {"B cells", "Myeloid cells", "NK cells", "T cells CD4+", "T cells CD8+", "T regulatory cells"}

    def mean_of(cell_types):
        rows = sum(per_cell_type[c]["rows"] for c in cell_types)
        return sum(per_cell_type[c]["mrrmse"] * per_cell_type[c]["rows"] for c in cell_types) / rows

    bm = mean_of(["B cells", "Myeloid cells"])
    lymphoid = mean_of(["NK cells", "T cells CD4+", "T cells CD8+", "T regulatory cells"])
    assert result.meta["scores"]["overall"] == pytest.approx((bm + lymphoid) / 2)


def test_seeds_average_predictions_and_report_the_spread(small_dataset):
    config = load_config("pca_knn", overrides=["cv.seeds=[0, 1]"])
    result = run_cv(small_dataset, config, progress=False)
    assert result.meta["seeds"] == [0, 1] and set(result.meta["scores"]["per_seed"]) == {"0", "1"}
    assert result.meta["scores"]["seed_std"] >= 0
    assert "per-seed MRRMSE std" in summary_text(result.meta)


def test_the_search_space_is_no_part_of_a_run(small_dataset):
    config = load_config("pca_knn")
    assert "tune" in config  # configs/pca_knn.toml ships a [tune] table
    result = run_cv(small_dataset, config, progress=False)
    assert "tune" not in result.meta["config"]
    edited = {**config, "tune": {"params.n_neighbors": {"int": [2, 4]}}}
    assert run_cv(small_dataset, edited, progress=False).meta["config_hash"] == result.meta["config_hash"]


def test_runs_table_joins_per_cell_type_scores(ridge_run):
    from perturbkit.cv.store import with_cell_type_scores

    result, run_dir = ridge_run
    runs = list_runs(run_dir.parent.parent)
    table = with_cell_type_scores(runs)
    for cell_type, row in result.meta["scores"]["per_cell_type"].items():
        assert table.loc[0, f"cv {cell_type}"] == pytest.approx(row["mrrmse"])
    assert list(table.columns) == [*runs.columns, *(f"cv {ct}" for ct in result.meta["scores"]["per_cell_type"])]
