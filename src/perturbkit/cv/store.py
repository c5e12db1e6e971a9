"""The run store: ``<root>/<model>/<run_id>/`` with oof.parquet, test.parquet, folds.parquet, weights.parquet, meta.json, log.txt.

Safe for concurrent writers into one root: a run id is the time, the config hash and a pid +
random part, each run is written into its own private staging folder (:func:`perturbkit.io.atomic_dir`)
and its final name is claimed exclusively, so two processes never share or clobber a folder.
meta.json is written last and records each data file's size, row count and sha256; ``list_runs``
skips (and names) runs whose files are missing or of another size, ``load_run`` verifies the
hashes and row counts and raises :class:`DamagedRunError` naming the run. weights.parquet holds each
training row's weight in the run's score, so a blend weighs rows as the stored score did. Every
reader of a run's files goes through this module (:func:`read_meta`, :func:`load_run`,
:func:`checked_test_file`, :func:`read_row_weights`). A killed writer leaves a
``.<run_id>.<pid>-<random>.partial`` folder that nothing reads; ``clean_staging`` removes old ones.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from perturbkit.data.wide import read_wide, wide_table
from perturbkit.errors import PerturbkitError
from perturbkit.io import atomic_dir, remove_stale, sha256_file
from perturbkit.metrics import rowwise_rmse

RUN_FILES = ("oof.parquet", "test.parquet", "folds.parquet", "meta.json", "log.txt")
DATA_FILES = ("oof.parquet", "test.parquet", "folds.parquet", "weights.parquet")  # recorded (size, rows, sha256) in meta.json
WEIGHTS_FILE = "weights.parquet"  # older runs lack it (OutdatedRunError when blended)
LEGACY_STAGING = ".incomplete-*"  # the staging name of older versions


class DamagedRunError(PerturbkitError):
    """A stored run whose files are missing, truncated, or disagree with its meta.json."""


class OutdatedRunError(PerturbkitError):
    """A run written by an older perturbkit that lacks a record this version needs; rerunning it writes one."""


@dataclass(frozen=True)
class Run:
    path: Path
    meta: dict
    oof_keys: pd.DataFrame  # cell_type, sm_name, fold
    oof: np.ndarray
    test_ids: np.ndarray
    test: np.ndarray
    genes: list[str]


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


def is_staging(run_dir: Path) -> bool:
    """A writer's private folder (``.<run_id>.<pid>-<random>.partial``, older ``.incomplete-*``): never a run, even when complete."""
    return run_dir.name.startswith(".")


def is_complete(run_dir: Path) -> bool:
    return not is_staging(run_dir) and all((run_dir / name).is_file() for name in RUN_FILES)


def check_files(run_dir: Path, meta: dict) -> None:
    """Cheap checks (no reading): every run file present, each data file with the size meta.json recorded."""
    for name in (*RUN_FILES, *meta.get("files", {})):
        if not (run_dir / name).is_file():
            raise DamagedRunError(f"{run_dir}: {name} is missing")
    for name, recorded in meta.get("files", {}).items():
        path = run_dir / name
        if path.stat().st_size != recorded["bytes"]:
            raise DamagedRunError(f"{run_dir}: {name} has {path.stat().st_size} bytes, meta.json recorded {recorded['bytes']} (truncated or replaced)")


def read_meta(run_dir: Path | str) -> dict:
    """A run's meta.json, the one way to read it; :class:`DamagedRunError` naming the file if it cannot be read."""
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedRunError(f"{run_dir}: meta.json cannot be read ({exc})") from None
    if not isinstance(meta, dict):
        raise DamagedRunError(f"{run_dir}: meta.json is not a JSON object")
    return meta


def _check_hashes(run_dir: Path, meta: dict, names) -> None:
    for name in names:
        recorded = meta.get("files", {}).get(name)
        if recorded is not None and sha256_file(run_dir / name) != recorded["sha256"]:
            raise DamagedRunError(f"{run_dir}: {name} does not match the sha256 meta.json recorded (changed after the run was written)")


def checked_test_file(run_dir: Path | str) -> Path:
    """A run's test.parquet, present and matching meta.json's size and sha256; :class:`DamagedRunError` naming it if not.

    Readers of test predictions alone (``runs --truth``, ``rank``) skip such a run with a warning that
    names the file, as ``blend`` refuses it.
    """
    run_dir = Path(run_dir)
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
                               f"with its score); rerun it (perturbkit cv --model {run.meta.get('model', run.path.parent.name)}) to blend it")
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
    recorded = run.meta.get("scores", {}).get("overall")
    values = row_weights.to_numpy()
    score = float(np.average(rowwise_rmse(targets_of(run.oof_keys), run.oof), weights=values)) if (values > 0).any() else float("nan")
    if recorded is None or not np.isclose(score, recorded, rtol=1e-5, atol=1e-7):
        raise DamagedRunError(f"{path}: its row weights give an overall MRRMSE of {score:.6f} from oof.parquet, "
                              f"meta.json recorded {recorded}; the run is damaged, rerun it")
    return row_weights


def list_runs(root: Path | str) -> pd.DataFrame:
    """Complete runs under ``root``, newest first, with their scores.

    Damaged runs are left out and named in ``table.attrs["damaged"]`` (one message each).
    """
    rows, damaged = [], []
    for meta_path in sorted(Path(root).glob("*/*/meta.json")):
        run_dir = meta_path.parent
        if is_staging(run_dir):
            continue
        try:
            meta = read_meta(run_dir)
            check_files(run_dir, meta)
        except DamagedRunError as exc:
            damaged.append(str(exc))
            continue
        scores = meta.get("scores", {})
        rows.append(
            {
                "model": meta.get("model"),
                "run_id": run_dir.name,
                "scheme": meta.get("scheme"),
                "mrrmse": scores.get("overall"),
                "relative_to_zeros": scores.get("relative_to_zeros"),
                "created": meta.get("created"),
                "data_hash": meta.get("data_hash", "")[:12],
                "path": str(run_dir),
            }
        )
    columns = ["model", "run_id", "scheme", "mrrmse", "relative_to_zeros", "created", "data_hash", "path"]
    table = pd.DataFrame(rows, columns=columns).sort_values("created", ascending=False, ignore_index=True)
    table.attrs["damaged"] = damaged
    return table


def load_run(run_dir: Path | str) -> Run:
    """A stored run, its files verified against meta.json (sizes, sha256, rows, keys); :class:`DamagedRunError` if not."""
    run_dir = Path(run_dir)
    if not is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir}: not a complete run directory (needs {', '.join(RUN_FILES)})")
    meta = read_meta(run_dir)
    check_files(run_dir, meta)
    _check_hashes(run_dir, meta, meta.get("files", {}))
    try:
        oof_keys, genes, oof = read_wide(run_dir / "oof.parquet", ("cell_type", "sm_name", "fold"))
        test_keys, test_genes, test = read_wide(run_dir / "test.parquet", ("id",))
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise DamagedRunError(f"{run_dir}: cannot read its predictions ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if test_genes != genes:
        raise DamagedRunError(f"{run_dir}: oof.parquet and test.parquet have different gene columns")
    files = meta.get("files", {})
    for name, rows in (("oof.parquet", len(oof_keys)), ("test.parquet", len(test_keys))):
        if name in files and files[name]["rows"] != rows:
            raise DamagedRunError(f"{run_dir}: {name} has {rows} rows, meta.json recorded {files[name]['rows']}")
    if "n_genes" in meta and meta["n_genes"] != len(genes):
        raise DamagedRunError(f"{run_dir}: {len(genes)} gene columns, meta.json recorded {meta['n_genes']}")
    return Run(
        path=run_dir,
        meta=meta,
        oof_keys=oof_keys,
        oof=oof,
        test_ids=test_keys["id"].to_numpy(),
        test=test,
        genes=genes,
    )


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
        scores = read_meta(path)["scores"]["per_cell_type"]
        for cell_type, row in scores.items():
            runs.loc[position, f"cv {cell_type}"] = row["mrrmse"]
    return runs
