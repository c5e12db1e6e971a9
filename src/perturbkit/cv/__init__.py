"""The CV harness: one fresh model per fold, fitted on that fold's training rows only.

Every target-derived feature lives inside the model (its feature builder is fitted in ``fit``),
so nothing a fold's model sees depends on that fold's validation rows. Each fold predicts its
validation rows and the test rows; test predictions are the mean over folds, or come from a
model refitted on all rows with ``cv.refit``.
"""

from __future__ import annotations

import inspect
import io
import logging
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from perturbkit.config import config_hash
from perturbkit.errors import ConfigError
from perturbkit.cv.store import Run, list_runs, load_run, write_run
from perturbkit.data import Dataset
from perturbkit.folds import NEVER_VALIDATED, folds_frame, folds_hash, make_splitter
from perturbkit.metrics import rowwise_rmse
from perturbkit.models import create_model

__all__ = ["CVResult", "Run", "build_model", "list_runs", "load_run", "run_cv", "summary_text"]

FEATURE_COLUMNS = ["cell_type", "sm_name", "SMILES"]
logger = logging.getLogger("perturbkit.cv")


@dataclass(frozen=True)
class CVResult:
    run_dir: Path
    meta: dict
    oof: np.ndarray  # validated rows, in de_train order
    test: np.ndarray


def build_model(config: dict, seed: int):
    """A fresh estimator from the config, every ``random_state`` (nested ones too) set to the seed."""
    params = dict(config.get("params", {}))
    if config.get("features"):
        params["features"] = dict(config["features"])
    try:
        model = create_model(config["model"], **params)
    except TypeError as exc:  # an unexpected or missing parameter in [params] / [features]
        raise ConfigError(f"model {config['model']!r}: {exc}") from exc
    seeds = {k: seed for k in model.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")}
    return model.set_params(**seeds)


def _fit(model, X, y, eval_set):
    """Models whose ``fit`` takes ``eval_set`` get the fold's validation rows for model selection."""
    if eval_set is not None and "eval_set" in inspect.signature(model.fit).parameters:
        return model.fit(X, y, eval_set=eval_set)
    return model.fit(X, y)


def _git_sha() -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty.strip() else "")


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("perturbkit", "numpy", "pandas", "scikit-learn", "lightgbm", "pyarrow", "rdkit", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _scores(keys: pd.DataFrame, folds: np.ndarray, rmse: np.ndarray, zeros_rmse: np.ndarray) -> dict:
    frame = pd.DataFrame({"cell_type": keys["cell_type"].astype(str).to_numpy(), "fold": folds, "rmse": rmse, "zeros": zeros_rmse})

    def table(by: str) -> dict:
        grouped = frame.groupby(by, sort=True)
        return {
            str(name): {"rows": int(len(g)), "mrrmse": float(g["rmse"].mean()), "zeros": float(g["zeros"].mean())}
            for name, g in grouped
        }

    overall, zeros = float(rmse.mean()), float(zeros_rmse.mean())
    return {
        "overall": overall,
        "zeros": zeros,
        "relative_to_zeros": overall / zeros if zeros > 0 else None,
        "per_fold": table("fold"),
        "per_cell_type": table("cell_type"),
    }


def _new_run_dir(oof_root: Path, model: str, digest: str) -> Path:
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{digest[:8]}"
    run_dir, suffix = oof_root / model / stem, 1
    while run_dir.exists():
        run_dir, suffix = oof_root / model / f"{stem}-{suffix}", suffix + 1
    return run_dir


def run_cv(dataset: Dataset, config: dict, *, oof_root: Path | str = "oof", progress: bool = True) -> CVResult:
    """Cross-validate the configured model on ``dataset`` and store the run under ``oof_root``."""
    cv = config["cv"]
    seed = int(cv["seed"])
    splitter = make_splitter(
        cv["scheme"], test_compounds=dataset.test["sm_name"].astype(str), seed=seed, n_splits=int(cv.get("n_splits") or 0) or None
    )
    fold_ids = splitter.fold_ids(dataset.obs)
    build_model(config, seed)  # fail on a bad model name or parameter before any fitting

    log_buffer = io.StringIO()
    handler = logging.StreamHandler(log_buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return _run_folds(dataset, config, splitter, fold_ids, seed, Path(oof_root), progress, log_buffer)
    finally:
        logger.removeHandler(handler)


def _run_folds(dataset, config, splitter, fold_ids, seed, oof_root, progress, log_buffer) -> CVResult:
    X = dataset.obs[FEATURE_COLUMNS]
    X_test = dataset.test[FEATURE_COLUMNS]
    y = dataset.targets
    digest = config_hash(config)
    logger.info("model %s, scheme %s, seed %d, data %s (%s)", config["model"], config["cv"]["scheme"], seed, dataset.source, dataset.data_hash)

    oof = np.zeros_like(y)
    test_sum = np.zeros((len(X_test), dataset.n_genes), dtype=np.float64)
    fold_meta = []
    started = time.perf_counter()
    n_splits = splitter.get_n_splits()
    for fold, (train_idx, valid_idx) in enumerate(
        tqdm(splitter.split(dataset.obs), total=n_splits, desc=f"cv {config['model']}", disable=not progress)
    ):
        if len(valid_idx) == 0:
            raise ValueError(f"scheme {config['cv']['scheme']!r}: fold {fold} has no validation rows in {dataset.source}")
        fold_start = time.perf_counter()
        model = build_model(config, seed)
        _fit(model, X.iloc[train_idx], y[train_idx], (X.iloc[valid_idx], y[valid_idx]))
        fit_seconds = time.perf_counter() - fold_start
        oof[valid_idx] = model.predict(X.iloc[valid_idx])
        test_sum += model.predict(X_test)
        entry = {
            "fold": fold,
            "train_rows": int(len(train_idx)),
            "valid_rows": int(len(valid_idx)),
            "fit_seconds": round(fit_seconds, 3),
            "predict_seconds": round(time.perf_counter() - fold_start - fit_seconds, 3),
        }
        if hasattr(model, "history_"):
            entry["history"] = model.history_
        fold_meta.append(entry)
        score = float(rowwise_rmse(y[valid_idx], oof[valid_idx]).mean())
        logger.info("fold %d: %d train, %d valid rows, MRRMSE %.4f, %.1f s", fold, len(train_idx), len(valid_idx), score, fit_seconds)

    test = test_sum / n_splits
    if config["cv"].get("refit"):
        refit_start = time.perf_counter()
        test = build_model(config, seed).fit(X, y).predict(X_test)
        logger.info("refit on all %d rows: %.1f s", len(X), time.perf_counter() - refit_start)
    test = test.astype(np.float32)

    validated = np.flatnonzero(fold_ids != NEVER_VALIDATED)
    rmse = rowwise_rmse(y[validated], oof[validated])
    zeros_rmse = rowwise_rmse(y[validated], np.zeros_like(y[validated]))
    scores = _scores(dataset.obs.iloc[validated], fold_ids[validated], rmse, zeros_rmse)
    logger.info("overall MRRMSE %.4f (zeros %.4f)", scores["overall"], scores["zeros"])

    folds = folds_frame(dataset.obs, fold_ids)
    meta = {
        "model": config["model"],
        "config": config,
        "config_hash": digest,
        "data_hash": dataset.data_hash,
        "data_source": dataset.source,
        "data_layer": dataset.layer,
        "n_genes": dataset.n_genes,
        "scheme": config["cv"]["scheme"],
        "seed": seed,
        "folds_hash": folds_hash(folds),
        "refit": bool(config["cv"].get("refit")),
        "scores": scores,
        "folds": fold_meta,
        "timings": {"total_seconds": round(time.perf_counter() - started, 3)},
        "versions": _versions(),
        "git_sha": _git_sha(),
        "command": " ".join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    oof_keys = folds.iloc[validated].reset_index(drop=True)
    run_dir = _new_run_dir(oof_root, config["model"], digest)
    meta["run_id"] = run_dir.name
    write_run(
        run_dir,
        oof_keys=oof_keys,
        test_ids=dataset.test["id"].to_numpy(),
        genes=dataset.genes,
        oof=oof[validated],
        test=test,
        folds=folds,
        meta=meta,
        log_text=log_buffer.getvalue(),
        artifacts=_loss_curves(fold_meta, config["model"]),
    )
    return CVResult(run_dir=run_dir, meta=meta, oof=oof[validated], test=test)


def _loss_curves(fold_meta: list[dict], model: str) -> dict[str, bytes]:
    """``loss_fold<k>.png`` for each fold whose model kept a training history."""
    curves = [entry for entry in fold_meta if isinstance(entry.get("history"), dict)]
    if not curves:
        return {}
    from perturbkit.report.plots import loss_curve_png

    return {f"loss_fold{e['fold']}.png": loss_curve_png(e["history"], f"{model}, fold {e['fold']}") for e in curves}


def summary_text(meta: dict) -> str:
    """The one-screen summary: per fold, per cell type, overall, against predicting zeros."""
    scores = meta["scores"]
    lines = [f"{meta['model']}  scheme={meta['scheme']}  seed={meta['seed']}  genes={meta['n_genes']}"]
    timing = {str(f["fold"]): f["fit_seconds"] + f["predict_seconds"] for f in meta["folds"]}
    for title, table in (("fold", scores["per_fold"]), ("cell type", scores["per_cell_type"])):
        lines.append(f"{title:<20} {'rows':>5} {'MRRMSE':>8} {'zeros':>8} {'rel':>6}" + (f" {'sec':>7}" if title == "fold" else ""))
        for name, row in table.items():
            line = f"{name:<20} {row['rows']:>5} {row['mrrmse']:>8.4f} {row['zeros']:>8.4f} {row['mrrmse'] / row['zeros']:>6.3f}"
            lines.append(line + (f" {timing.get(name, 0.0):>7.1f}" if title == "fold" else ""))
    rel = scores["relative_to_zeros"]
    lines.append(f"{'overall':<20} {'':>5} {scores['overall']:>8.4f} {scores['zeros']:>8.4f} {rel if rel is None else f'{rel:>6.3f}'}")
    lines.append(f"total {meta['timings']['total_seconds']:.1f} s")
    return "\n".join(lines)
