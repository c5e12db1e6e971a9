"""The run store: ``<root>/<model>/<run_id>/`` with oof.parquet, test.parquet, folds.parquet, meta.json, log.txt.

A run is written into a hidden temporary directory and renamed into place when complete, so a
crash or a kill never leaves a directory that ``list_runs`` (and so the blender) would pick up.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from perturbkit.data.wide import read_wide, wide_table

RUN_FILES = ("oof.parquet", "test.parquet", "folds.parquet", "meta.json", "log.txt")
TEMP_PREFIX = ".incomplete-"


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
    meta: dict,
    log_text: str,
    artifacts: dict[str, bytes] | None = None,
) -> Path:
    """Write a complete run; ``artifacts`` are extra files (e.g. loss-curve PNGs) by name."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        raise FileExistsError(f"{run_dir}: run directory exists already")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = run_dir.parent / f"{TEMP_PREFIX}{run_dir.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        pq.write_table(wide_table(oof_keys, genes, oof), staging / "oof.parquet")
        pq.write_table(wide_table(pd.DataFrame({"id": test_ids}), genes, test), staging / "test.parquet")
        pq.write_table(pa.Table.from_pandas(folds, preserve_index=False), staging / "folds.parquet")
        (staging / "log.txt").write_text(log_text)
        for name, content in (artifacts or {}).items():
            (staging / name).write_bytes(content)
        # meta.json last: its presence marks the content complete even before the rename.
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        os.replace(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


def _new_run_dir(oof_root: Path, model: str, digest: str) -> Path:
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}"
    run_dir, suffix = oof_root / model / stem, 1
    while run_dir.exists():
        run_dir, suffix = oof_root / model / f"{stem}-{suffix}", suffix + 1
    return run_dir


def save_run(result, oof_root: Path | str, *, artifacts: dict[str, bytes] | None = None) -> Path:
    """Write a :class:`perturbkit.cv.CVResult` as ``<oof_root>/<model>/<run_id>/``; returns the run directory."""
    meta = result.meta
    run_dir = _new_run_dir(Path(oof_root), meta["model"], meta["config_hash"])
    meta["run_id"] = run_dir.name
    return write_run(
        run_dir,
        oof_keys=result.oof_keys,
        test_ids=result.test_ids,
        genes=list(result.genes),
        oof=result.oof,
        test=result.test,
        folds=result.folds,
        meta=meta,
        log_text=result.log_text,
        artifacts=artifacts,
    )


def is_complete(run_dir: Path) -> bool:
    return not run_dir.name.startswith(".") and all((run_dir / name).is_file() for name in RUN_FILES)


def list_runs(root: Path | str) -> pd.DataFrame:
    """Complete runs under ``root``, newest first, with their scores."""
    rows = []
    for meta_path in sorted(Path(root).glob("*/*/meta.json")):
        run_dir = meta_path.parent
        if not is_complete(run_dir):
            continue
        meta = json.loads(meta_path.read_text())
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
    return pd.DataFrame(rows, columns=columns).sort_values("created", ascending=False, ignore_index=True)


def load_run(run_dir: Path | str) -> Run:
    run_dir = Path(run_dir)
    if not is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir}: not a complete run directory (needs {', '.join(RUN_FILES)})")
    oof_keys, genes, oof = read_wide(run_dir / "oof.parquet", ("cell_type", "sm_name", "fold"))
    test_keys, test_genes, test = read_wide(run_dir / "test.parquet", ("id",))
    if test_genes != genes:
        raise ValueError(f"{run_dir}: oof.parquet and test.parquet have different gene columns")
    return Run(
        path=run_dir,
        meta=json.loads((run_dir / "meta.json").read_text()),
        oof_keys=oof_keys,
        oof=oof,
        test_ids=test_keys["id"].to_numpy(),
        test=test,
        genes=genes,
    )
