"""The run store trusts nothing it reads: the audit's tampered runs named and skipped (or refused) by every reader,
diverged runs refused before they are stored, one find_or_run, and `runs` telling runs apart."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perturbkit.cli import main
from perturbkit.config import load_config
from perturbkit.cv import find_or_run, list_runs, load_run, run_cv, save_run
from perturbkit.cv.store import (
    MAX_META_BYTES,
    DamagedRunError,
    MixedRunsError,
    RefusedRunError,
    default_blend_runs,
    load_runs,
    read_meta,
)
from perturbkit.io import sha256_file

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
MODELS = ("compound_mean", "gene_mean", "celltype_mean")


def kfold(model: str, *overrides: str) -> dict:
    return load_config(model, configs_dir=CONFIGS, overrides=['cv.scheme="kfold"', *overrides])


@pytest.fixture(scope="module")
def stored(tmp_path_factory, small_dataset) -> Path:
    """Three intact runs (one per model) on the small world."""
    oof = tmp_path_factory.mktemp("store") / "oof"
    for model in MODELS:
        save_run(run_cv(small_dataset, kfold(model), progress=False), oof)
    return oof


def copy_store(stored: Path, tmp_path: Path) -> Path:
    shutil.copytree(stored, tmp_path / "oof")
    return tmp_path / "oof"


def run_of(oof: Path, model: str) -> Path:
    return next(p for p in (oof / model).iterdir() if not p.name.startswith("."))


def edit_meta(run_dir: Path, edit) -> None:
    meta = json.loads((run_dir / "meta.json").read_text())
    edit(meta)
    (run_dir / "meta.json").write_text(json.dumps(meta))


def _set(path: str, value):
    def edit(meta):
        *parents, last = path.split(".")
        for key in parents:
            meta = meta[key]
        meta[last] = value
    return edit


def _delete(path: str):
    def edit(meta):
        *parents, last = path.split(".")
        for key in parents:
            meta = meta[key]
        del meta[last]
    return edit


# The audit's inputs: valid JSON of the wrong type or shape, each named by the key it breaks.
TAMPERED = {
    "scores null": (_set("scores", None), "scores"),
    "files list": (_set("files", []), "files"),
    "data_hash null": (_set("data_hash", None), "data_hash"),
    "created number": (_set("created", 5), "created"),
    "model null": (_set("model", None), "model"),
    "overall text": (_set("scores.overall", "abc"), "scores.overall"),
    "per_cell_type missing": (_delete("scores.per_cell_type"), "scores.per_cell_type"),
    "files missing": (_delete("files"), "files"),
    "files empty": (_set("files", {}), "no record of oof.parquet"),
    "scheme edited": (_set("scheme", "test_like"), "scheme 'test_like' is not its config's cv.scheme"),
    "config edited": (_set("config.params", {"shrink": 3.0}), "config_hash"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_meta_is_named_and_skipped_by_the_store(stored, tmp_path, case):
    edit, named = TAMPERED[case]
    oof = copy_store(stored, tmp_path)
    damaged = run_of(oof, "compound_mean")
    edit_meta(damaged, edit)
    table = list_runs(oof)
    assert sorted(table["model"]) == ["celltype_mean", "gene_mean"]  # the others still listed
    [message] = table.attrs["damaged"]
    assert message.startswith(f"{damaged}: meta.json") and named in message
    with pytest.raises(DamagedRunError, match=str(damaged)):
        load_run(damaged)


def test_a_meta_json_linked_to_dev_zero_or_huge_is_not_read(stored, tmp_path):
    oof = copy_store(stored, tmp_path)
    zero, huge = run_of(oof, "compound_mean"), run_of(oof, "gene_mean")
    (zero / "meta.json").unlink()
    (zero / "meta.json").symlink_to("/dev/zero")
    with open(huge / "meta.json", "ab") as handle:  # sparse: no disk used, size over the limit
        handle.truncate(MAX_META_BYTES + 1)
    table = list_runs(oof)
    assert list(table["model"]) == ["celltype_mean"]
    assert any(f"{zero}: meta.json cannot be read" in m and "not a regular file" in m for m in table.attrs["damaged"])
    assert any(f"{huge}: meta.json cannot be read" in m and "more than a run's meta.json may hold" in m for m in table.attrs["damaged"])


def test_a_run_folder_linked_from_outside_the_store_is_refused(stored, tmp_path):
    oof = copy_store(stored, tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(run_of(oof, "gene_mean"), outside)
    (oof / "gene_mean" / "linked").symlink_to(outside, target_is_directory=True)
    table = list_runs(oof)
    assert "gene_mean" not in set(table["model"])
    assert any("outside the run store" in m for m in table.attrs["damaged"])
    with pytest.raises(DamagedRunError, match="outside the run store"):
        load_run(oof / "gene_mean" / "linked")


def _rewrite_test(run_dir: Path, frame: pd.DataFrame) -> None:
    """Replace test.parquet and re-record its size, rows and hash: a run whose hashes agree but whose content is wrong."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), run_dir / "test.parquet")
    path = run_dir / "test.parquet"
    record = {"bytes": path.stat().st_size, "rows": len(frame), "sha256": sha256_file(path)}
    edit_meta(run_dir, lambda meta: meta["files"].update({"test.parquet": record}))


def test_a_run_with_a_duplicated_test_id_or_nan_is_refused(stored, tmp_path):
    oof = copy_store(stored, tmp_path)
    duplicated, nan = run_of(oof, "compound_mean"), run_of(oof, "gene_mean")
    frame = pd.read_parquet(duplicated / "test.parquet")
    frame.loc[1, "id"] = frame.loc[0, "id"]
    _rewrite_test(duplicated, frame)
    frame = pd.read_parquet(nan / "test.parquet")
    frame.iloc[3, 5] = np.nan
    _rewrite_test(nan, frame)
    with pytest.raises(DamagedRunError, match=rf"{duplicated}: test\.parquet has the id .* twice"):
        load_run(duplicated)
    with pytest.raises(DamagedRunError, match=rf"{nan}: test\.parquet holds non-finite values"):
        load_run(nan)


def test_a_scaled_test_file_in_a_run_without_files_is_never_blended(stored, small_world, tmp_path, capsys):
    """The audit: meta.json without `files` turned off every hash check and a test.parquet x 100 was blended."""
    oof = copy_store(stored, tmp_path)
    run_dir = run_of(oof, "compound_mean")
    frame = pd.read_parquet(run_dir / "test.parquet")
    genes = frame.columns[1:]
    frame[genes] = frame[genes] * 100
    frame.to_parquet(run_dir / "test.parquet", index=False)
    edit_meta(run_dir, _delete("files"))
    code = main(["blend", "--oof", str(oof), "--data", str(small_world), "--submissions", str(tmp_path / "sub"), "--no-h5ad"])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert f"{run_dir}: meta.json files" in captured.out + captured.err
    assert "compound_mean" not in json.loads((tmp_path / "sub" / "blend" / "blend.json").read_text())["members"].__repr__()


def test_a_run_whose_scheme_disagrees_with_its_folds_is_refused_with_the_data(stored, small_dataset, tmp_path):
    """Scheme and config edited together (the config hash recomputed): the folds the scheme draws on the data differ."""
    from perturbkit.config import config_hash

    oof = copy_store(stored, tmp_path)
    run_dir = run_of(oof, "gene_mean")

    def edit(meta):
        meta["scheme"] = meta["config"]["cv"]["scheme"] = "test_like"
        meta["config_hash"] = config_hash(meta["config"])
    edit_meta(run_dir, edit)
    load_run(run_dir)  # consistent with itself
    with pytest.raises(DamagedRunError, match=r"folds\.parquet is not what scheme 'test_like'"):
        load_run(run_dir, dataset=small_dataset)


def test_report_and_rank_verify_runs_as_blend_does(stored, small_world, small_dataset, tmp_path, capsys):
    """A truncated run is named and skipped; runs of two worlds are refused, not averaged."""
    oof = copy_store(stored, tmp_path)
    truncated, intact = run_of(oof, "compound_mean"), run_of(oof, "gene_mean")
    data = (truncated / "oof.parquet").read_bytes()
    (truncated / "oof.parquet").write_bytes(data[: len(data) // 2])
    gene = small_dataset.genes[0]
    assert main(["report", "--runs", str(truncated), str(intact), "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert f"{truncated}: oof.parquet has" in err and "1 of 2 run(s) skipped" in err and "Traceback" not in err
    assert main(["rank", "--gene", gene, "--cell-type", "B cells", "--runs", str(truncated), str(intact)]) == 0
    captured = capsys.readouterr()
    assert f"{truncated}: oof.parquet has" in captured.err and "mean of 1 run(s)" in captured.out

    other = tmp_path / "other"
    other_dataset = dataclasses.replace(small_dataset, data_hash="f" * 16)
    other_run = save_run(run_cv(other_dataset, kfold("zeros"), progress=False), other)
    with pytest.raises(MixedRunsError, match="fitted on different data"):
        load_runs([intact, other_run], warn=print)
    assert main(["rank", "--gene", gene, "--cell-type", "B cells", "--runs", str(intact), str(other_run)]) == 2
    assert "fitted on different data" in capsys.readouterr().err


def test_runs_names_and_counts_damaged_runs_and_refuses_a_file_as_store(stored, tmp_path, capsys):
    oof = copy_store(stored, tmp_path)
    for model, case in (("compound_mean", "scores null"), ("gene_mean", "files missing")):
        edit_meta(run_of(oof, model), TAMPERED[case][0])
    assert main(["runs", "--oof", str(oof), "--per-cell-type"]) == 0
    captured = capsys.readouterr()
    assert "2 damaged run(s) skipped" in captured.err and "Traceback" not in captured.err
    assert "celltype_mean" in captured.out
    assert main(["runs", "--oof", "/etc/hostname"]) == 2
    assert "/etc/hostname: not a folder" in capsys.readouterr().err


# --- refused before stored ---------------------------------------------------------------------------


def test_a_diverged_fit_is_refused_before_it_is_stored_naming_model_and_fold(small_dataset, tmp_path, monkeypatch):
    from perturbkit.models.baselines import GroupMeanRegressor as CompoundMean

    predict = CompoundMean.predict
    monkeypatch.setattr(CompoundMean, "predict", lambda self, X: predict(self, X) * 1e30 + 1.0)
    with pytest.raises(RefusedRunError, match=r"model compound_mean, fold 0 \(validation rows\): MRRMSE .* x predicting zeros"):
        run_cv(small_dataset, kfold("compound_mean"), progress=False)
    monkeypatch.setattr(CompoundMean, "predict", lambda self, X: predict(self, X) * np.nan)
    with pytest.raises(RefusedRunError, match=r"model compound_mean, fold 0 \(validation rows\): the predictions hold nan at row 0"):
        run_cv(small_dataset, kfold("compound_mean"), progress=False)


def test_the_store_refuses_to_write_non_finite_predictions(small_dataset, tmp_path):
    result = run_cv(small_dataset, kfold("zeros"), progress=False)
    result.test[2, 4] = np.inf
    with pytest.raises(RefusedRunError, match=r"zeros \(test\): the predictions hold inf at row 2, gene column 4"):
        save_run(result, tmp_path / "oof")
    assert not (tmp_path / "oof").exists() or list_runs(tmp_path / "oof").empty


# --- find_or_run and default_blend_runs --------------------------------------------------------------


def test_find_or_run_reuses_only_a_verified_run_of_the_same_data_config_and_folds(small_dataset, tmp_path):
    oof = tmp_path / "oof"
    said = []
    first = find_or_run(oof, small_dataset, kfold("gene_mean"), say=said.append)
    assert not first.reused and first.path.parent == oof / "gene_mean"
    again = find_or_run(oof, small_dataset, kfold("gene_mean"), say=said.append)
    assert again.reused and again.path == first.path and np.array_equal(again.test, first.test)
    other_folds = find_or_run(oof, small_dataset, kfold("gene_mean", "cv.seed=1"), say=said.append)
    assert not other_folds.reused
    # a damaged candidate is named and passed over, not reused
    data = (first.path / "test.parquet").read_bytes()
    (first.path / "test.parquet").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    rerun = find_or_run(oof, small_dataset, kfold("gene_mean"), say=said.append)
    assert not rerun.reused and any(f"skipped damaged run: {first.path}" in m for m in said)
    assert find_or_run(None, small_dataset, kfold("gene_mean"), say=said.append).path is None


def test_default_blend_runs_takes_the_best_run_per_model_and_config_without_trials():
    runs = pd.DataFrame({
        "model": ["a", "a", "a", "b", "b", "a"],
        "config_hash": ["x", "x", "y", "z", "z", "x"],
        "data_hash": ["d", "d", "d", "d", "d", "e"],
        "folds_hash": ["f"] * 6,
        "mrrmse": [0.9, 0.8, 0.95, 0.7, 0.5, 0.1],
        "created": ["6", "5", "4", "3", "2", "1"],
        "trial": pd.array([None, None, None, None, 3, None], dtype="Int64"),
    })
    assert list(default_blend_runs(runs).index) == [1, 2, 3, 5]


def test_runs_tells_runs_apart(stored, small_world, small_dataset, tmp_path, capsys):
    oof = copy_store(stored, tmp_path)
    save_run(run_cv(small_dataset, kfold("compound_mean", "cv.seed=3"), progress=False), oof)
    assert main(["runs", "--oof", str(oof), "--configs-dir", str(CONFIGS), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["data"] for r in records} == {Path(small_world).name} and {r["genes"] for r in records} == {small_dataset.n_genes}
    seeded = [r for r in records if "cv.seed=3" in r["overrides"]]
    assert len(seeded) == 1 and all("cv.seed=3" not in r["overrides"] for r in records if r is not seeded[0])
    assert all(r["blend"] == "yes" for r in records)  # each (model, config) once, no trial
    assert main(["runs", "--oof", str(oof), "--data", str(tmp_path / "missing")]) == 2
    capsys.readouterr()
    assert main(["runs", "--oof", str(oof), "--data", str(small_world)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(records) + 2  # header, the runs, the blend legend


def test_read_meta_returns_what_was_written(stored):
    run_dir = run_of(stored, "celltype_mean")
    assert read_meta(run_dir) == json.loads((run_dir / "meta.json").read_text())
    assert os.path.getsize(run_dir / "meta.json") < MAX_META_BYTES
