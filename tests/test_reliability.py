"""Nothing lost, nothing wrong: concurrent runs, damaged runs, atomic blend outputs, outputs checked before work,
masked passwords, and the small CLI guards (rank, score)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbkit.blend import BlendOptions, blend_runs, write_blend
from perturbkit.blend.record import BlendRecordError, read_blend_record
from perturbkit.cli import main
from perturbkit.config import load_config
from perturbkit.cv import list_runs, load_run, run_cv, save_run
from perturbkit.cv.store import DamagedRunError, clean_staging
from perturbkit.data import load_dataset
from perturbkit.errors import DataValidationError, redact
from perturbkit.io import atomic_dir, atomic_file

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def cv_args(world: Path, oof: Path, *extra) -> list[str]:
    return ["cv", "--model", "compound_mean", "--configs-dir", str(CONFIGS), "--data", str(world), "--oof", str(oof),
            "--scheme", "kfold", "--no-progress", *extra]


@pytest.fixture(scope="module")
def stored(tmp_path_factory, small_world) -> Path:
    """A run store with three runs (compound_mean, gene_mean, celltype_mean) on the small world."""
    oof = tmp_path_factory.mktemp("store") / "oof"
    dataset = load_dataset(small_world)
    for model in ("compound_mean", "gene_mean", "celltype_mean"):
        save_run(run_cv(dataset, load_config(model, configs_dir=CONFIGS, cv={"scheme": "kfold"}), progress=False), oof)
    return oof


def store_copy(stored: Path, tmp_path: Path) -> Path:
    target = tmp_path / "oof"
    shutil.copytree(stored, target)
    return target


def other_world(small_world: Path, tmp_path: Path) -> Path:
    """The small world with every target doubled: another data hash, other OOF values."""
    world = tmp_path / "other"
    shutil.copytree(small_world, world)
    frame = pd.read_parquet(world / "de_train.parquet")
    genes = frame.columns[5:]
    frame[genes] = frame[genes] * 2.0
    frame.to_parquet(world / "de_train.parquet", index=False)
    return world


# --- the run store --------------------------------------------------------------------------------


def test_concurrent_cv_processes_into_one_root_each_write_their_own_intact_run(small_world, tmp_path):
    """Six `perturbkit cv` processes (same model and config, two datasets) started at once into one --oof root."""
    worlds = [small_world, other_world(small_world, tmp_path)]
    oof = tmp_path / "oof"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TQDM_DISABLE"] = "1"
    processes = [
        subprocess.Popen([sys.executable, "-m", "perturbkit", *cv_args(worlds[i % 2], oof)], env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]

    runs = list_runs(oof)
    assert len(runs) == 6 and runs["run_id"].is_unique and runs.attrs["damaged"] == []
    assert sorted(p.name for p in (oof / "compound_mean").iterdir() if p.name.startswith(".")) == []  # no staging left
    expected = {}
    for world in worlds:
        dataset = load_dataset(world)
        result = run_cv(dataset, load_config("compound_mean", configs_dir=CONFIGS, cv={"scheme": "kfold"}), progress=False)
        expected[dataset.data_hash] = result.oof
    for path in runs["path"]:
        run = load_run(path)  # sizes, sha256 and row counts agree with meta.json
        assert np.array_equal(run.oof, expected[run.meta["data_hash"]])  # meta and parquet files of the same run


def test_a_write_that_fails_midway_leaves_nothing(small_dataset, tmp_path, monkeypatch):
    result = run_cv(small_dataset, load_config("zeros", configs_dir=CONFIGS, cv={"scheme": "kfold"}), progress=False)
    import perturbkit.cv.store as store

    calls = []

    def failing(table, where, *args, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(table, where, *args, **kwargs)

    original = store.pq.write_table
    monkeypatch.setattr(store.pq, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        save_run(result, tmp_path / "oof")
    assert list((tmp_path / "oof" / "zeros").iterdir()) == []


KILLED_AT_RENAME = """
import os, signal, sys
rename = os.replace
def killed_before_the_rename(source, target, *args, **kwargs):
    if os.path.basename(source).endswith(".partial"):  # the run's staging folder, meta.json already in it
        os.kill(os.getpid(), signal.SIGKILL)
    return rename(source, target, *args, **kwargs)
os.replace = killed_before_the_rename
from perturbkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_writer_killed_after_meta_json_leaves_a_staging_folder_nothing_reads(small_world, tmp_path):
    from perturbkit.blend import BlendError, select_runs
    from perturbkit.cv.store import RUN_FILES

    oof = tmp_path / "oof"
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_RENAME, *cv_args(small_world, oof)], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    staging = [p for p in (oof / "compound_mean").iterdir() if p.name.startswith(".")]
    assert len(staging) == 1 and all((staging[0] / name).is_file() for name in RUN_FILES)  # complete but for its name
    table = list_runs(oof)
    assert table.empty and table.attrs["damaged"] == []
    with pytest.raises(DamagedRunError, match="a writer's staging folder, not a run"):
        load_run(staging[0])
    with pytest.raises(BlendError, match="no complete runs"):
        select_runs(oof)


def test_a_truncated_run_is_named_and_skipped_by_runs_and_blend(stored, small_world, tmp_path, capsys):
    oof = store_copy(stored, tmp_path)
    (damaged,) = [p for p in (oof / "compound_mean").iterdir()]
    data = (damaged / "oof.parquet").read_bytes()
    (damaged / "oof.parquet").write_bytes(data[: len(data) // 2])

    with pytest.raises(DamagedRunError, match=r"oof\.parquet has \d+ bytes, meta\.json recorded \d+"):
        load_run(damaged)
    assert main(["runs", "--oof", str(oof)]) == 0
    captured = capsys.readouterr()
    assert f"skipped damaged run: {damaged}" in captured.err and "gene_mean" in captured.out and "compound_mean" not in captured.out

    submissions = tmp_path / "submissions"
    args = ["blend", "--data", str(small_world), "--oof", str(oof), "--submissions", str(submissions), "--method", "slsqp",
            "--no-h5ad", "--blend-config", str(CONFIGS / "blend.toml")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"note: skipped damaged run: {damaged}" in printed and "blending 2 run(s): celltype_mean/" in printed


def _damage_test_file(run_dir: Path, how: str) -> None:
    path = run_dir / "test.parquet"
    if how == "missing":
        path.unlink()
    else:  # one byte flipped: the size still matches, the hash does not
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


def _read_with(reader: str, oof: Path, small_world: Path, tmp_path: Path) -> tuple[list[str], str]:
    """CLI arguments of each reader of stored test predictions, and what its output shows of the two intact runs."""
    runs = [str(next((oof / model).iterdir())) for model in ("compound_mean", "gene_mean", "celltype_mean")]
    if reader == "runs --truth":
        return ["runs", "--oof", str(oof), "--truth", str(small_world / "test_truth.parquet")], "gene_mean"
    if reader == "blend":
        return ["blend", "--data", str(small_world), "--oof", str(oof), "--submissions", str(tmp_path / "submissions"),
                "--method", "slsqp", "--no-h5ad", "--blend-config", str(CONFIGS / "blend.toml")], "blending 2 run(s): celltype_mean/"
    return ["rank", "--gene", load_dataset(small_world).genes[0], "--cell-type", "B cells", "--runs", *runs,
            "--data", str(small_world)], "mean of 2 run(s)"


@pytest.mark.parametrize("how", ["missing", "changed"])
@pytest.mark.parametrize("reader", ["runs --truth", "blend", "rank"])
def test_a_missing_or_changed_test_file_is_named_and_skipped_by_every_reader(stored, small_world, tmp_path, capsys, how, reader):
    oof = store_copy(stored, tmp_path)
    damaged = next((oof / "compound_mean").iterdir())
    _damage_test_file(damaged, how)
    args, intact = _read_with(reader, oof, small_world, tmp_path)
    assert main(args) == 0
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert f"skipped damaged run: {damaged}: test.parquet" in shown and "Traceback" not in shown
    assert intact in shown


@pytest.mark.parametrize("reader", ["read_meta", "runs --per-cell-type", "rank", "report"])
def test_a_corrupt_meta_json_is_named_by_every_reader(stored, small_world, tmp_path, capsys, reader):
    from perturbkit.cv.store import read_meta

    oof = store_copy(stored, tmp_path)
    damaged = next((oof / "compound_mean").iterdir())
    (damaged / "meta.json").write_text('{"model": "compound_mean", ')
    if reader == "read_meta":
        with pytest.raises(DamagedRunError, match=rf"{damaged}: meta\.json cannot be read"):
            read_meta(damaged)
        return
    args = {
        "runs --per-cell-type": ["runs", "--oof", str(oof), "--per-cell-type"],
        "rank": ["rank", "--gene", load_dataset(small_world).genes[0], "--cell-type", "B cells", "--runs", str(damaged),
                 "--data", str(small_world)],
        "report": ["report", "--runs", str(damaged), "--out", str(tmp_path / "report")],
    }[reader]
    code = main(args)
    err = capsys.readouterr().err
    assert f"{damaged}: meta.json cannot be read" in err and "Traceback" not in err
    assert code == (0 if reader == "runs --per-cell-type" else 2)


def test_a_changed_run_file_fails_its_hash_on_load(stored, tmp_path):
    oof = store_copy(stored, tmp_path)
    run_dir = next((oof / "gene_mean").iterdir())
    frame = pd.read_parquet(run_dir / "folds.parquet")
    before = (run_dir / "folds.parquet").stat().st_size
    (run_dir / "folds.parquet").write_bytes(b"\0" * before)  # same size, other content
    with pytest.raises(DamagedRunError, match=r"folds\.parquet does not match the sha256 meta\.json recorded"):
        load_run(run_dir)
    assert len(frame) > 0


def test_an_unreadable_meta_is_named(stored, tmp_path):
    oof = store_copy(stored, tmp_path)
    run_dir = next((oof / "gene_mean").iterdir())
    (run_dir / "meta.json").write_text('{"model": "gene_m')
    runs = list_runs(oof)
    assert sorted(runs["model"]) == ["celltype_mean", "compound_mean"]
    assert runs.attrs["damaged"] == [f"{run_dir}: meta.json cannot be read (Unterminated string starting at: line 1 column 11 (char 10))"]


def test_runs_clean_removes_only_stale_staging(stored, tmp_path, capsys):
    oof = store_copy(stored, tmp_path)
    stale, fresh, legacy = (oof / "gene_mean" / ".a.1-ab.partial", oof / "gene_mean" / ".b.2-cd.partial", oof / "gene_mean" / ".incomplete-x")
    for folder in (stale, fresh, legacy):
        folder.mkdir()
        (folder / "oof.parquet").write_bytes(b"half")
    old = time.time() - 2 * 24 * 3600
    for folder in (stale, legacy):
        os.utime(folder, (old, old))
    assert main(["runs", "--oof", str(oof), "--clean"]) == 0
    printed = capsys.readouterr().out
    assert f"removed stale staging folder {stale}" in printed and f"removed stale staging folder {legacy}" in printed
    assert not stale.exists() and not legacy.exists() and fresh.exists()
    assert clean_staging(oof) == []


def test_atomic_dir_claims_a_name_once(tmp_path):
    with atomic_dir(tmp_path / "run") as staging:
        (staging / "a").write_text("first")
    with pytest.raises(FileExistsError):
        with atomic_dir(tmp_path / "run") as staging:
            (staging / "a").write_text("second")
    assert (tmp_path / "run" / "a").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "x.csv") as staging:
            staging.write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# --- outputs checked before any work --------------------------------------------------------------


def test_an_unwritable_oof_or_submissions_fails_before_any_work(stored, small_world, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(cv_args(tmp_path / "no-data-here", blocker / "oof")) == 2
    err = capsys.readouterr().err
    assert f"--oof {blocker / 'oof'}: {blocker} is a file, not a folder" in err  # not the missing data: checked first
    args = ["blend", "--data", str(tmp_path / "no-data-here"), "--oof", str(stored), "--submissions", str(blocker / "subs")]
    assert main(args) == 2
    assert "--submissions" in capsys.readouterr().err


# --- blend outputs as one unit --------------------------------------------------------------------


@pytest.fixture
def blend_json(stored, small_dataset, tmp_path) -> Path:
    result = blend_runs(sorted(Path(p) for p in list_runs(stored)["path"]), small_dataset, BlendOptions(method="slsqp"))
    return write_blend(result, small_dataset, tmp_path / "submissions", "blend", dataset_id="perturbkit_demo")["json"]


def test_readers_refuse_a_record_whose_files_changed(blend_json, small_world, small_dataset, tmp_path):
    record = read_blend_record(blend_json)
    assert set(record.file_sha256) == {"csv", "h5ad"}
    csv = blend_json.with_suffix(".csv")
    text = csv.read_text().splitlines()
    csv.write_text("\n".join([text[0], *text[2:], text[1]]) + "\n")  # as if a later blend was killed after its CSV
    from perturbkit.kernel import spec_from_blend
    from perturbkit.rank import rank_compounds
    from perturbkit.report.build import build_blend_report

    for reader in (lambda: build_blend_report(blend_json, tmp_path / "report"),
                   lambda: rank_compounds(gene=small_dataset.genes[0], cell_type="B cells", blend=blend_json, data_dir=small_world),
                   lambda: spec_from_blend(blend_json)):
        with pytest.raises(BlendRecordError, match=r"blend\.json: its csv file .*blend\.csv changed after the record was written"):
            reader()
    assert not (tmp_path / "report").exists()


def test_passwords_never_reach_the_record_or_the_error(stored, small_world, small_dataset, tmp_path, capsys):
    assert redact("postgresql+psycopg://ann:s3cret@db:5432/optuna") == "postgresql+psycopg://ann:***@db:5432/optuna"
    result = blend_runs(sorted(Path(p) for p in list_runs(stored)["path"]), small_dataset, BlendOptions(method="slsqp"))
    result = dataclasses.replace(result, options=dataclasses.replace(result.options, settings={"storage": "postgresql://ann:s3cret@db/optuna"}))
    path = write_blend(result, small_dataset, tmp_path / "subs", "blend", dataset_id="d", h5ad=False)["json"]
    assert "s3cret" not in path.read_text() and json.loads(path.read_text())["options"]["storage"] == "postgresql://ann:***@db/optuna"

    args = ["blend", "--data", str(small_world), "--oof", str(stored), "--submissions", str(tmp_path / "s2"), "--no-h5ad",
            "--method", "optuna", "--trials", "2", "--storage", "postgresql://ann:s3cret@127.0.0.1:9/optuna"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "ann:***@127.0.0.1" in captured.err and "s3cret" not in captured.err + captured.out


# --- bad input ------------------------------------------------------------------------------------


def test_an_empty_de_train_is_a_named_error(world_copy, capsys):
    frame = pd.read_parquet(world_copy / "de_train.parquet")
    frame.iloc[:0].to_parquet(world_copy / "de_train.parquet", index=False)
    with pytest.raises(DataValidationError, match=r"de_train\.parquet: has no training rows"):
        load_dataset(world_copy)
    assert main(["validate", "--data", str(world_copy)]) == 2


def test_a_truncated_h5ad_is_a_named_error(world_copy):
    path = world_copy / "de_train.h5ad"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (world_copy / "de_train.parquet").unlink()
    with pytest.raises(DataValidationError, match=r"de_train\.h5ad: cannot be read as h5ad"):
        load_dataset(world_copy)


# --- small CLI guards -----------------------------------------------------------------------------


@pytest.mark.parametrize("top", ["0", "-3", "x"])
def test_rank_top_must_be_positive(top, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["rank", "--gene", "A1BG", "--cell-type", "B cells", "--top", top])
    assert exit_.value.code == 2 and "--top" in capsys.readouterr().err


def test_rank_suggests_the_gene_in_its_own_case(stored, small_world, small_dataset, capsys):
    run = next((stored / "gene_mean").iterdir())
    gene = small_dataset.genes[0]
    assert main(["rank", "--gene", gene.lower(), "--cell-type", "B cells", "--runs", str(run), "--data", str(small_world)]) == 2
    assert f"did you mean ['{gene}']" in capsys.readouterr().err


def test_rank_into_a_closed_pipe_is_quiet(stored, small_world, small_dataset):
    run = next((stored / "gene_mean").iterdir())
    command = (f"{sys.executable} -m perturbkit rank --gene {small_dataset.genes[0]} --cell-type 'B cells' --top 200 "
               f"--runs {run} --data {small_world} | head -1")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and len(result.stdout.splitlines()) == 1


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_score_without_file_says_what_it_needs():
    result = subprocess.run(["make", "-o", ".venv/.installed", "score"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "make score needs FILE=<submission .csv, .parquet or .h5ad>" in result.stderr


def test_kernel_build_leaves_no_temporary_folders(small_world, tmp_path, monkeypatch):
    import tempfile

    from perturbkit.kernel import build_kernel, spec_from_configs

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    build_kernel(spec_from_configs([load_config("zeros", configs_dir=CONFIGS)]), user="someone", out_root=tmp_path / "kernels")
    assert list(scratch.iterdir()) == []
