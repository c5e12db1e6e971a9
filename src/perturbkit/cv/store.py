"""The run store: ``<root>/<model>/<run_id>/`` with oof.parquet, test.parquet, folds.parquet, weights.parquet, meta.json, log.txt.

Safe for concurrent writers into one root: a run id is the time, the config hash and a pid +
random part, each run is written into its own private staging folder (:func:`perturbkit.io.atomic_dir`)
and its final name is claimed exclusively, so two processes never share or clobber a folder.
meta.json is written last and records each data file's size, row count and sha256.

The store trusts nothing it reads. meta.json goes through one typed reader (:func:`read_meta`: a
regular file of at most :data:`MAX_META_BYTES`, parsed by :class:`RunMeta`, its scheme, model and
config hash agreeing with its config); :func:`load_run` is the one verifying loader (the run inside
its store root, every data file's size, sha256 and rows, the folds hash, unique keys and ids,
finite values, and with a dataset its data hash, genes, test ids and scheme's folds). A run that
fails raises :class:`DamagedRunError` naming it; ``list_runs`` leaves it out and names it. A run
with non-finite or absurd predictions is refused before it is stored (:func:`check_predictions`).
A killed writer leaves a ``.<run_id>.<pid>-<random>.partial`` folder that nothing reads;
``clean_staging`` removes old ones.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from perturbkit.config import config_hash, without_tune
from perturbkit.data.wide import read_wide, wide_table
from perturbkit.errors import PerturbkitError
from perturbkit.folds import folds_hash
from perturbkit.io import atomic_dir, remove_stale, sha256_file
from perturbkit.metrics import rowwise_rmse
from perturbkit.types import FiniteFloat

RUN_FILES = ("oof.parquet", "test.parquet", "folds.parquet", "meta.json", "log.txt")
DATA_FILES = ("oof.parquet", "test.parquet", "folds.parquet", "weights.parquet")  # recorded (size, rows, sha256) in meta.json
REQUIRED_FILES = DATA_FILES[:3]  # meta.json must record these; weights.parquet only runs of older versions lack
WEIGHTS_FILE = "weights.parquet"  # older runs lack it (OutdatedRunError when blended)
LEGACY_STAGING = ".incomplete-*"  # the staging name of older versions
MAX_META_BYTES = 8 << 20  # a run's meta.json is a few hundred KB at most (loss histories included)
ABSURD_RATIO = 1e6  # predictions this many times worse than predicting zeros are a diverged fit, not a run


class DamagedRunError(PerturbkitError):
    """A stored run whose files are missing, truncated, of the wrong type, or disagree with its meta.json."""


class OutdatedRunError(PerturbkitError):
    """A run written by an older perturbkit that lacks a record this version needs; rerunning it writes one."""


class RefusedRunError(PerturbkitError):
    """A run that is not stored: its predictions or scores are non-finite or absurd."""


class MixedRunsError(PerturbkitError):
    """Runs read together that were fitted on different data."""


class StoreError(PerturbkitError):
    """A run store root that is not a folder."""


# --- meta.json: the one typed reader ---------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class FileRecord(_Strict):
    model_config = ConfigDict(strict=True, extra="forbid")
    bytes: Annotated[int, Field(ge=0)]
    rows: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class GroupScore(_Strict):
    rows: Annotated[int, Field(ge=1)]
    mrrmse: FiniteFloat
    zeros: FiniteFloat


class Scores(_Strict):
    overall: FiniteFloat
    zeros: FiniteFloat
    relative_to_zeros: FiniteFloat | None
    per_fold: Annotated[dict[str, GroupScore], Field(min_length=1)]
    per_cell_type: Annotated[dict[str, GroupScore], Field(min_length=1)]


class Timings(_Strict):
    total_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class TuneTag(_Strict):
    study: str
    trial: Annotated[int, Field(ge=0)]


Text = Annotated[str, Field(min_length=1)]


class RunMeta(_Strict):
    """What every reader relies on in a run's meta.json; other keys (timings, versions, ...) pass through."""

    model: Text
    config: dict[str, Any]
    config_hash: Text
    data_hash: Text
    data_source: Text
    folds_hash: Text
    n_genes: Annotated[int, Field(ge=1)]
    scheme: Text
    created: Text
    scores: Scores
    timings: Timings
    files: dict[str, FileRecord]
    tune: TuneTag | None = None

    @model_validator(mode="after")
    def _agrees_with_itself(self) -> RunMeta:
        missing = [name for name in REQUIRED_FILES if name not in self.files]
        if missing:  # without its hashes no file of the run could be checked
            raise ValueError(f"files: no record of {', '.join(missing)} (their size, rows and sha256)")
        unknown = sorted(set(self.files) - set(DATA_FILES))
        if unknown:
            raise ValueError(f"files: unknown file(s) {unknown}")
        cv = self.config.get("cv")
        if self.config.get("model") != self.model:
            raise ValueError(f"model {self.model!r} is not its config's {self.config.get('model')!r}")
        if not isinstance(cv, dict) or cv.get("scheme") != self.scheme:
            raise ValueError(f"scheme {self.scheme!r} is not its config's cv.scheme {cv.get('scheme') if isinstance(cv, dict) else None!r}")
        if config_hash(self.config) != self.config_hash:
            raise ValueError(f"config_hash {self.config_hash} is not the hash of its config ({config_hash(self.config)})")
        return self


def _read_bounded(path: Path) -> bytes:
    """A regular file's bytes, refusing devices, fifos and files over :data:`MAX_META_BYTES` before reading them."""
    info = path.stat()  # follows a symlink: a link to /dev/zero is a character device here
    if not stat.S_ISREG(info.st_mode):
        raise DamagedRunError(f"{path}: not a regular file")
    if info.st_size > MAX_META_BYTES:
        raise DamagedRunError(f"{path}: {info.st_size} bytes, more than a run's meta.json may hold ({MAX_META_BYTES})")
    with open(path, "rb") as handle:
        data = handle.read(MAX_META_BYTES + 1)
    if len(data) > MAX_META_BYTES:  # grew while read
        raise DamagedRunError(f"{path}: more than {MAX_META_BYTES} bytes")
    return data


def read_meta(run_dir: Path | str) -> dict:
    """A run's meta.json, checked by :class:`RunMeta`: the one way to read it; :class:`DamagedRunError` naming the run and key if not."""
    run_dir = Path(run_dir)
    try:
        meta = json.loads(_read_bounded(run_dir / "meta.json"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedRunError(f"{run_dir}: meta.json cannot be read ({exc})") from None
    except DamagedRunError as exc:
        raise DamagedRunError(f"{run_dir}: meta.json cannot be read ({exc})") from None
    if not isinstance(meta, dict):
        raise DamagedRunError(f"{run_dir}: meta.json is not a JSON object")
    try:
        RunMeta.model_validate(meta)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f" {'.'.join(map(str, first['loc']))}" if first["loc"] else "")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DamagedRunError(f"{run_dir}: meta.json{where}: {first['msg'].removeprefix('Value error, ')}{more}") from None
    return meta


# --- writing ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    path: Path
    meta: dict
    oof_keys: pd.DataFrame  # cell_type, sm_name, fold
    oof: np.ndarray
    test_ids: np.ndarray
    test: np.ndarray
    genes: list[str]


def check_predictions(predictions, *, what: str, truth=None) -> None:
    """Refuse (:class:`RefusedRunError` naming ``what``: model and fold) predictions that are non-finite or, against
    ``truth``, more than :data:`ABSURD_RATIO` times worse than predicting zeros (a diverged fit)."""
    predictions = np.asarray(predictions)
    bad = ~np.isfinite(predictions)
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        raise RefusedRunError(f"{what}: the predictions hold {predictions[row, column]} at row {row}, gene column {column}; "
                              "the run is not stored")
    if truth is not None:
        truth = np.asarray(truth)
        score, zeros = float(rowwise_rmse(truth, predictions).mean()), float(rowwise_rmse(truth, np.zeros_like(truth)).mean())
        if zeros > 0 and score > ABSURD_RATIO * zeros:
            raise RefusedRunError(f"{what}: MRRMSE {score:.4g} is {score / zeros:.3g} x predicting zeros (more than {ABSURD_RATIO:g}: "
                                  "a diverged fit); the run is not stored")


def write_run(
    run_dir: Path,
    *,
    oof_keys,
    test_ids,
    genes,
    oof,
    test,
    folds: pd.DataFrame,
    row_weights,
    meta: dict,
    log_text: str,
    artifacts: dict[str, bytes] | None = None,
) -> Path:
    """Write a complete run; ``row_weights`` align with ``folds``; ``artifacts`` are extra files (e.g. loss-curve PNGs) by name."""
    run_dir = Path(run_dir)
    model = meta.get("model", run_dir.parent.name)
    check_predictions(oof, what=f"{model} (out-of-fold)")
    check_predictions(test, what=f"{model} (test)")
    relative = meta.get("scores", {}).get("relative_to_zeros")
    if relative is not None and not relative <= ABSURD_RATIO:
        raise RefusedRunError(f"{model}: MRRMSE is {relative:.3g} x predicting zeros (more than {ABSURD_RATIO:g}: a diverged fit); "
                              "the run is not stored")
    with atomic_dir(run_dir) as staging:
        pq.write_table(wide_table(oof_keys, genes, oof), staging / "oof.parquet")
        pq.write_table(wide_table(pd.DataFrame({"id": test_ids}), genes, test), staging / "test.parquet")
        pq.write_table(pa.Table.from_pandas(folds, preserve_index=False), staging / "folds.parquet")
        weights = folds[["cell_type", "sm_name"]].assign(weight=np.asarray(row_weights, dtype=np.float64))
        pq.write_table(pa.Table.from_pandas(weights, preserve_index=False), staging / WEIGHTS_FILE)
        (staging / "log.txt").write_text(log_text)
        for name, content in (artifacts or {}).items():
            (staging / name).write_bytes(content)
        rows = {"oof.parquet": len(oof_keys), "test.parquet": len(test_ids), "folds.parquet": len(folds), WEIGHTS_FILE: len(folds)}
        meta = {**meta, "files": {name: {"bytes": (staging / name).stat().st_size, "rows": int(rows[name]),
                                          "sha256": sha256_file(staging / name)} for name in DATA_FILES}}
        # meta.json last, with the hashes of what it describes: load_run checks they agree.
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return run_dir


def new_run_id(digest: str) -> str:
    """Time to the second, the config hash, then pid and randomness: unique across processes started together."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}-{os.getpid()}{secrets.token_hex(2)}"


def save_run(result, oof_root: Path | str, *, artifacts: dict[str, bytes] | None = None) -> Path:
    """Write a :class:`perturbkit.cv.CVResult` as ``<oof_root>/<model>/<run_id>/``; returns the run directory.

    ``artifacts`` (file name -> bytes) default to :func:`perturbkit.cv.artifacts.run_artifacts` of the run,
    so every command that stores runs stores the same files.
    """
    from perturbkit.cv.artifacts import run_artifacts

    meta = result.meta
    artifacts = run_artifacts(meta) if artifacts is None else artifacts
    while True:
        run_dir = Path(oof_root) / meta["model"] / new_run_id(meta["config_hash"])
        meta["run_id"] = run_dir.name
        try:
            return write_run(
                run_dir,
                oof_keys=result.oof_keys,
                test_ids=result.test_ids,
                genes=list(result.genes),
                oof=result.oof,
                test=result.test,
                folds=result.folds,
                row_weights=result.row_weights,
                meta=meta,
                log_text=result.log_text,
                artifacts=artifacts,
            )
        except FileExistsError:  # another writer claimed this id first: draw another
            continue


# --- reading ---------------------------------------------------------------------------------------

def is_staging(run_dir: Path) -> bool:
    """A writer's private folder (``.<run_id>.<pid>-<random>.partial``, older ``.incomplete-*``): never a run, even when complete."""
    return run_dir.name.startswith(".")


def is_complete(run_dir: Path) -> bool:
    return not is_staging(run_dir) and all((run_dir / name).is_file() for name in RUN_FILES)


def check_inside(run_dir: Path, root: Path | str | None = None) -> None:
    """Refuse a run folder that resolves outside its store root (``root``, else the folder two levels up: ``<root>/<model>/<run>``)."""
    root = Path(root) if root is not None else run_dir.parent.parent
    if not run_dir.resolve().is_relative_to(root.resolve()):
        raise DamagedRunError(f"{run_dir}: resolves to {run_dir.resolve()}, outside the run store {root} (a symlinked run is not read)")


def check_files(run_dir: Path, meta: dict) -> None:
    """Cheap checks (no reading): every run file present, each data file with the size meta.json recorded."""
    for name in (*RUN_FILES, *meta["files"]):
        if not (run_dir / name).is_file():
            raise DamagedRunError(f"{run_dir}: {name} is missing")
    for name, recorded in meta["files"].items():
        path = run_dir / name
        if path.stat().st_size != recorded["bytes"]:
            raise DamagedRunError(f"{run_dir}: {name} has {path.stat().st_size} bytes, meta.json recorded {recorded['bytes']} (truncated or replaced)")


def _check_hashes(run_dir: Path, meta: dict, names) -> None:
    for name in names:
        if sha256_file(run_dir / name) != meta["files"][name]["sha256"]:
            raise DamagedRunError(f"{run_dir}: {name} does not match the sha256 meta.json recorded (changed after the run was written)")


def checked_test_file(run_dir: Path | str) -> Path:
    """A run's test.parquet, present and matching meta.json's size and sha256; :class:`DamagedRunError` naming it if not.

    For readers of a whole store's test predictions (``runs --truth``, blend's selection); readers of named
    runs load them with :func:`load_runs`.
    """
    run_dir = Path(run_dir)
    check_inside(run_dir)
    meta = read_meta(run_dir)
    check_files(run_dir, meta)
    _check_hashes(run_dir, meta, ["test.parquet"])
    return run_dir / "test.parquet"


def test_file_or_skip(run_dir: Path | str, warn) -> Path | None:
    """:func:`checked_test_file`, or None after ``warn`` names the damaged file: how every reader of test predictions skips a run."""
    try:
        return checked_test_file(run_dir)
    except DamagedRunError as exc:
        warn(f"skipped damaged run: {exc}")
        return None


def read_row_weights(run: Run, targets_of) -> pd.Series:
    """Each validated row's stored weight in ``run``'s score, indexed by (cell_type, sm_name) in oof.parquet's order.

    ``targets_of(keys)`` gives the true targets of the run's OOF rows. The weights must reproduce
    meta.json's overall score from oof.parquet, else :class:`DamagedRunError` names weights.parquet;
    a run of an older version has no weights.parquet: :class:`OutdatedRunError` says to rerun it.
    """
    path = run.path / WEIGHTS_FILE
    if not path.is_file():  # load_run already refused a run whose meta.json records the file
        raise OutdatedRunError(f"{run.path}: no {WEIGHTS_FILE} (the run was written before perturbkit stored each row's weight "
                               f"with its score); rerun it (perturbkit cv --model {run.meta['model']}) to blend it")
    try:
        stored = pd.read_parquet(path)
        index = pd.MultiIndex.from_frame(stored[["cell_type", "sm_name"]].astype(str))
        weights = pd.Series(stored["weight"].to_numpy(dtype=np.float64), index=index)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise DamagedRunError(f"{path}: cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    keys = pd.MultiIndex.from_frame(run.oof_keys[["cell_type", "sm_name"]].astype(str))
    where = index.get_indexer(keys)
    if (where < 0).any():
        raise DamagedRunError(f"{path}: no weight for the validated row {keys[int(np.flatnonzero(where < 0)[0])]}")
    row_weights = weights.iloc[where]
    recorded = run.meta["scores"]["overall"]
    values = row_weights.to_numpy()
    score = float(np.average(rowwise_rmse(targets_of(run.oof_keys), run.oof), weights=values)) if (values > 0).any() else float("nan")
    if not np.isclose(score, recorded, rtol=1e-5, atol=1e-7):
        raise DamagedRunError(f"{path}: its row weights give an overall MRRMSE of {score:.6f} from oof.parquet, "
                              f"meta.json recorded {recorded}; the run is damaged, rerun it")
    return row_weights


LIST_COLUMNS = ["model", "run_id", "scheme", "mrrmse", "relative_to_zeros", "created", "data", "genes", "trial",
                "data_hash", "config_hash", "folds_hash", "path"]


def list_runs(root: Path | str) -> pd.DataFrame:
    """Complete runs under ``root``, newest first, with their scores, data (folder name, genes) and tuning trial.

    Damaged runs (any that fail :func:`read_meta`, lie outside ``root`` or miss a file) are left out and
    named in ``table.attrs["damaged"]`` (one message each). A ``root`` that is not a folder is a
    :class:`StoreError`; one that does not exist holds no runs.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root}: not a folder (the run store is a folder of <model>/<run id>/ folders)")
    rows, damaged = [], []
    for meta_path in sorted(root.glob("*/*/meta.json")):
        run_dir = meta_path.parent
        if is_staging(run_dir):
            continue
        try:
            check_inside(run_dir, root)
            meta = read_meta(run_dir)
            check_files(run_dir, meta)
        except DamagedRunError as exc:
            damaged.append(str(exc))
            continue
        scores, tune = meta["scores"], meta.get("tune") or {}
        rows.append({"model": meta["model"], "run_id": run_dir.name, "scheme": meta["scheme"], "mrrmse": scores["overall"],
                     "relative_to_zeros": scores["relative_to_zeros"], "created": meta["created"],
                     "data": Path(meta["data_source"]).name, "genes": meta["n_genes"], "trial": tune.get("trial"),
                     "data_hash": meta["data_hash"], "config_hash": meta["config_hash"], "folds_hash": meta["folds_hash"],
                     "path": str(run_dir)})
    table = pd.DataFrame(rows, columns=LIST_COLUMNS).sort_values("created", ascending=False, ignore_index=True, kind="stable")
    table["trial"] = table["trial"].astype("Int64")
    table.attrs["damaged"] = damaged
    return table


def _read_predictions(run_dir: Path, meta: dict):
    try:
        oof_keys, genes, oof = read_wide(run_dir / "oof.parquet", ("cell_type", "sm_name", "fold"))
        test_keys, test_genes, test = read_wide(run_dir / "test.parquet", ("id",))
        folds = pd.read_parquet(run_dir / "folds.parquet")
        stored_folds_hash = folds_hash(folds[["cell_type", "sm_name", "fold"]])
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise DamagedRunError(f"{run_dir}: cannot read its predictions ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return oof_keys, genes, oof, test_keys, test_genes, test, len(folds), stored_folds_hash


def load_run(run_dir: Path | str, *, root: Path | str | None = None, dataset=None) -> Run:
    """A stored run, verified: the one loader of a run's predictions; :class:`DamagedRunError` naming the run if any check fails.

    Checks the run lies inside ``root`` (default: the folder two levels up), :func:`read_meta`, every data
    file's size, sha256 and rows, the folds hash of folds.parquet, unique OOF keys and test ids, finite
    values and the gene count. With ``dataset`` (a :class:`perturbkit.data.Dataset`) also its data hash,
    genes and test ids, and that the scheme and seed in its config give the folds in folds.parquet.
    """
    run_dir = Path(run_dir)
    if is_staging(run_dir):
        raise DamagedRunError(f"{run_dir}: a writer's staging folder, not a run")
    for name in RUN_FILES:
        if not (run_dir / name).is_file():
            raise DamagedRunError(f"{run_dir}: {name} is missing")
    check_inside(run_dir, root)
    meta = read_meta(run_dir)
    check_files(run_dir, meta)
    _check_hashes(run_dir, meta, meta["files"])
    oof_keys, genes, oof, test_keys, test_genes, test, n_folds_rows, stored_folds_hash = _read_predictions(run_dir, meta)
    if test_genes != genes:
        raise DamagedRunError(f"{run_dir}: oof.parquet and test.parquet have different gene columns")
    for name, rows in (("oof.parquet", len(oof_keys)), ("test.parquet", len(test_keys)), ("folds.parquet", n_folds_rows)):
        if meta["files"][name]["rows"] != rows:
            raise DamagedRunError(f"{run_dir}: {name} has {rows} rows, meta.json recorded {meta['files'][name]['rows']}")
    if meta["n_genes"] != len(genes):
        raise DamagedRunError(f"{run_dir}: {len(genes)} gene columns, meta.json recorded {meta['n_genes']}")
    if stored_folds_hash != meta["folds_hash"]:
        raise DamagedRunError(f"{run_dir}: folds.parquet does not have the folds hash meta.json recorded")
    test_ids = test_keys["id"].to_numpy()
    duplicated = pd.Index(test_ids).duplicated()
    if duplicated.any():
        raise DamagedRunError(f"{run_dir}: test.parquet has the id {test_ids[int(np.flatnonzero(duplicated)[0])]} twice")
    keys = pd.MultiIndex.from_frame(oof_keys[["cell_type", "sm_name"]].astype(str))
    if keys.has_duplicates:
        raise DamagedRunError(f"{run_dir}: oof.parquet has the row {keys[keys.duplicated()][0]} twice")
    for name, values in (("oof.parquet", oof), ("test.parquet", test)):
        if not np.isfinite(values).all():
            raise DamagedRunError(f"{run_dir}: {name} holds non-finite values")
    run = Run(path=run_dir, meta=meta, oof_keys=oof_keys, oof=oof, test_ids=test_ids, test=test, genes=genes)
    if dataset is not None:
        check_run_fits(run, dataset)
    return run


def scheme_folds_hash(dataset, cv: dict) -> str:
    """The folds hash a run with this ``[cv]`` table gets on ``dataset``."""
    from perturbkit.folds import splitter_for  # the harness's own splitter: a run's folds are what it would draw
    from perturbkit.folds import folds_frame

    return folds_hash(folds_frame(dataset.obs, splitter_for(dataset, cv).fold_ids(dataset.obs)))


def check_run_fits(run: Run, dataset) -> None:
    """Refuse a run that is not of ``dataset``: another data hash, genes or test ids, or folds its scheme does not give on it."""
    if run.meta["data_hash"] != dataset.data_hash:
        raise DamagedRunError(f"{run.path}: fitted on data with hash {run.meta['data_hash']}, but {dataset.source} has hash "
                              f"{dataset.data_hash}; rerun it on this data or pass the --data it was fitted on")
    if run.genes != list(dataset.genes):
        raise DamagedRunError(f"{run.path}: its gene columns differ from {dataset.source}'s, under the same data hash")
    if set(map(str, run.test_ids)) != set(map(str, dataset.test["id"])):
        raise DamagedRunError(f"{run.path}: its test ids differ from {dataset.source}'s id_map.csv, under the same data hash")
    cv = run.meta["config"]["cv"]
    if scheme_folds_hash(dataset, cv) != run.meta["folds_hash"]:
        raise DamagedRunError(f"{run.path}: folds.parquet is not what scheme {run.meta['scheme']!r} (seed {cv.get('seed')}) gives on "
                              f"{dataset.source}; its scheme or folds were changed")


def load_runs(paths, *, dataset=None, warn) -> list[Run]:
    """Named runs through :func:`load_run`, each damaged one skipped after ``warn`` names it; the rest must share one data hash
    and gene set (:class:`MixedRunsError` names them): how ``report --runs`` and ``rank --runs`` read runs."""
    paths, runs = [Path(p) for p in paths], []
    for path in paths:
        try:
            runs.append(load_run(path, dataset=dataset))
        except DamagedRunError as exc:
            warn(f"skipped damaged run: {exc}")
    if len(paths) > len(runs):
        warn(f"{len(paths) - len(runs)} of {len(paths)} run(s) skipped")
    worlds = {(run.meta["data_hash"], tuple(run.genes)) for run in runs}
    if len(worlds) > 1:
        detail = "; ".join(f"{run.path} ({run.meta['data_hash'][:12]}, {len(run.genes)} genes)" for run in runs)
        raise MixedRunsError(f"the runs were fitted on different data and cannot be read together: {detail}")
    return runs


def clean_staging(root: Path | str, *, older_than: float = 24 * 3600.0) -> list[Path]:
    """Remove staging folders of killed writers (``<root>/<model>/.*.partial``, older ``.incomplete-*``) older than ``older_than`` seconds."""
    removed = []
    for model_dir in sorted(p for p in Path(root).glob("*") if p.is_dir() and not p.name.startswith(".")):
        removed += remove_stale(model_dir, older_than=older_than, patterns=(".*.partial*", LEGACY_STAGING))
    return removed


def with_cell_type_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`list_runs`'s table with each run's CV MRRMSE per cell type (``cv <cell type>`` columns, from its meta)."""
    runs = runs.copy()
    for position, path in enumerate(runs["path"]):
        for cell_type, row in read_meta(path)["scores"]["per_cell_type"].items():
            runs.loc[position, f"cv {cell_type}"] = row["mrrmse"]
    return runs


# --- choosing runs ---------------------------------------------------------------------------------

def default_blend_runs(runs: pd.DataFrame, *, include_tuning: bool = False) -> pd.DataFrame:
    """The runs ``blend`` takes by default from a :func:`list_runs` table: per data hash and fold assignment, the
    best-CV run of each distinct (model, config hash), the newest of equals; tuning trials left out unless
    ``include_tuning``. Narrow ``runs`` to one data and scheme first to get one blend's members."""
    candidates = runs if include_tuning else runs[runs["trial"].isna()]
    best = candidates.sort_values(["mrrmse", "created"], ascending=[True, False], kind="stable")
    best = best.drop_duplicates(["data_hash", "folds_hash", "model", "config_hash"], keep="first")
    return runs.loc[runs.index.isin(best.index)]


def find_run(root: Path | str, dataset, config: dict, *, say=print) -> Run | None:
    """The newest verified run under ``root`` of this config (its hash) on ``dataset`` with the folds its ``[cv]`` gives,
    or None; damaged candidates (and damaged runs in the model's folder) are named through ``say`` and passed over."""
    config = without_tune(config)  # a run's config (and hash) has no [tune] table
    runs = list_runs(root)
    model_dir = str(Path(root) / config["model"]) + os.sep
    damaged = [message for message in runs.attrs["damaged"] if message.startswith(model_dir)]
    for message in damaged:
        say(f"skipped damaged run: {message}")
    if damaged:
        say(f"{len(damaged)} damaged run(s) of {config['model']} skipped")
    wanted = runs[(runs["model"] == config["model"]) & (runs["data_hash"] == dataset.data_hash)
                  & (runs["config_hash"] == config_hash(config))]
    if wanted.empty:
        return None
    wanted = wanted[wanted["folds_hash"] == scheme_folds_hash(dataset, config["cv"])]
    for path in wanted["path"]:
        try:
            return load_run(path, root=root, dataset=dataset)
        except DamagedRunError as exc:
            say(f"skipped damaged run: {exc}")
    return None
