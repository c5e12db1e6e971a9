"""The CV harness: one fresh model per fold, fitted on that fold's training rows only.

Every target-derived feature lives inside the model (its feature builder is fitted in ``fit``),
so nothing a fold's model sees depends on that fold's validation rows. Each fold predicts its
validation rows and the test rows; test predictions are the mean over folds, or come from a
model refitted on all rows with ``cv.refit``. With ``cv.seeds`` every fold is fitted once per
seed and the predictions averaged; the per-seed scores show the spread.

No model sees a fold's validation targets: the harness passes only the training rows (and, to a
``fit`` that takes ``X_test``, the test rows' keys), and models that select (early stopping, LR
schedules) do it on an inner split of those training rows. ``run_cv`` computes; ``save_run``
writes the run.
"""

from __future__ import annotations

import datetime
import inspect
import io
import logging
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from tqdm.auto import tqdm

from perturbkit.config import config_hash, without_tune
from perturbkit.errors import ConfigError
from perturbkit.cv.store import Run, check_predictions, list_runs, load_run, save_run
from perturbkit.data import Dataset
from perturbkit.folds import NEVER_VALIDATED, folds_frame, folds_hash, make_splitter
from perturbkit.metrics import clip_layer, ratio_interval, rowwise_rmse
from perturbkit.models import build_model, seed_parameters
from perturbkit.progress import fit_progress

__all__ = ["CVResult", "Run", "cv_seeds", "list_runs", "load_run", "run_cv", "save_run", "splitter_for", "summary_text"]

FEATURE_COLUMNS = ["cell_type", "sm_name", "SMILES"]
logger = logging.getLogger("perturbkit.cv")


@dataclass(frozen=True)
class CVResult:
    """One finished CV run, not yet stored: :func:`perturbkit.cv.store.save_run` writes it."""

    meta: dict
    oof_keys: pd.DataFrame  # cell_type, sm_name, fold of the validated rows, in de_train order
    oof: np.ndarray  # validated rows x genes
    test_ids: np.ndarray
    test: np.ndarray
    genes: tuple[str, ...]
    folds: pd.DataFrame  # every training row's fold (-1: never validated)
    log_text: str
    row_weights: np.ndarray  # every training row's weight in the scheme's score (stored as weights.parquet)


def _fit(model, X, y, X_test):
    """Models whose ``fit`` takes ``X_test`` (pseudo-labelling) get the test rows' keys, never targets."""
    if "X_test" in inspect.signature(model.fit).parameters:
        return model.fit(X, y, X_test=X_test)
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


def weighting_text(cell_types, weights) -> str:
    """How a score weighs its rows, in words: each distinct row weight's cell types and their share of the score."""
    weights = np.asarray(weights, dtype=np.float64)
    if np.allclose(weights, weights[0]):
        return "rows unweighted: every validated row counts the same"
    frame = pd.DataFrame({"cell_type": np.asarray(cell_types, dtype=str), "weight": weights})
    frame["level"] = np.round(weights / weights.max(), 9)
    shares = [f"{', '.join(sorted(g['cell_type'].unique()))} {g['weight'].sum() / weights.sum():.0%}"
              for _, g in frame.groupby("level", sort=False)]
    return "rows weighted as the scheme weighs them (weights.parquet); share of the score: " + "; ".join(shares)


def _scores(keys: pd.DataFrame, folds: np.ndarray, y: np.ndarray, oof: np.ndarray, weights: np.ndarray) -> dict:
    rmse, zeros_rmse = rowwise_rmse(y, oof), rowwise_rmse(y, np.zeros_like(y))
    cell_types = keys["cell_type"].astype(str).to_numpy()
    frame = pd.DataFrame({"cell_type": cell_types, "fold": folds, "rmse": rmse, "zeros": zeros_rmse, "weight": weights})
    compounds = keys["sm_name"].astype(str).to_numpy()

    def table(by: str) -> dict:
        # Weighted as the overall score is, so the overall is the folds' scores averaged by their total row weight.
        grouped = frame.groupby(by, sort=True)
        return {
            str(name): {"rows": int(len(g)), "mrrmse": float(np.average(g["rmse"], weights=g["weight"])),
                        "zeros": float(np.average(g["zeros"], weights=g["weight"])), "weight": float(g["weight"].sum() / weights.sum())}
            for name, g in grouped
        }

    def overall(rmse: np.ndarray, zeros_rmse: np.ndarray) -> dict:
        # The scheme's row weights (test_like: B/Myeloid rows count as much as all lymphoid rows).
        score, zeros = float(np.average(rmse, weights=weights)), float(np.average(zeros_rmse, weights=weights))
        return {"overall": score, "zeros": zeros, "relative_to_zeros": score / zeros if zeros > 0 else None,
                "relative_to_zeros_interval": list(ratio_interval(rmse, zeros_rmse, compounds, weights=weights)) if zeros > 0 else None}

    clipped = clip_layer(y)
    return {
        **overall(rmse, zeros_rmse),
        "weighting": weighting_text(cell_types, weights),
        "clipped": overall(rowwise_rmse(clipped, clip_layer(oof)), rowwise_rmse(clipped, np.zeros_like(clipped))),
        "per_fold": table("fold"),
        "per_cell_type": table("cell_type"),
    }


def cv_seeds(cv: dict) -> list[int]:
    """``cv.seeds`` when given (predictions averaged over them), else ``[cv.seed]``."""
    return [int(s) for s in cv.get("seeds") or [cv["seed"]]]


def splitter_for(dataset: Dataset, cv: dict):
    """The splitter a run's ``[cv]`` table names, on this dataset's test compounds."""
    return make_splitter(
        cv["scheme"], test_compounds=dataset.test["sm_name"].astype(str), seed=int(cv["seed"]), n_splits=int(cv.get("n_splits") or 0) or None
    )


def run_cv(dataset: Dataset, config: dict, *, progress: bool = True, on_fold=None) -> CVResult:
    """Cross-validate the configured model on ``dataset``; store the result with ``save_run``.

    ``on_fold(fold, score)`` is called after each fold with the running score: the scheme-weighted
    MRRMSE of the rows validated so far, which after the last fold is the run's overall score (a
    tuner reports it and may stop the run by raising).
    """
    config = without_tune(config)
    splitter = splitter_for(dataset, config["cv"])
    fold_ids = splitter.fold_ids(dataset.obs)
    # One estimator per seed, built before any fitting (a bad name or parameter fails here); each fold fits a clone.
    models = {seed: build_model(config, seed) for seed in cv_seeds(config["cv"])}
    if len(models) > 1 and not seed_parameters(next(iter(models.values()))):
        warnings.warn(f"model {config['model']!r} takes no seed (no random_state in its parameters): cv.seeds {list(models)} fits "
                      f"the same model {len(models)} times and its per-seed spread is 0; give one seed (cv.seeds = [])", stacklevel=2)

    log_buffer = io.StringIO()
    handler = logging.StreamHandler(log_buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return _run_folds(dataset, config, models, splitter, fold_ids, progress, log_buffer, on_fold)
    finally:
        logger.removeHandler(handler)


def _run_folds(dataset, config, models, splitter, fold_ids, progress, log_buffer, on_fold) -> CVResult:
    X = dataset.obs[FEATURE_COLUMNS]
    X_test = dataset.test[FEATURE_COLUMNS]
    y = dataset.targets
    seeds = cv_seeds(config["cv"])
    logger.info(
        "model %s, scheme %s, seeds %s, data %s (%s)", config["model"], config["cv"]["scheme"], seeds, dataset.source, dataset.data_hash
    )

    oof = np.zeros_like(y)
    seed_oof = np.zeros((len(seeds), *y.shape), dtype=np.float32)
    test_sum = np.zeros((len(X_test), dataset.n_genes), dtype=np.float64)
    fold_meta = []
    row_weights = splitter.row_weights(dataset.obs)
    row_rmse = np.full(len(y), np.nan)
    started = time.perf_counter()
    n_splits = splitter.get_n_splits()
    for fold, (train_idx, valid_idx) in enumerate(
        tqdm(splitter.split(dataset.obs), total=n_splits, desc=f"cv {config['model']}", disable=not progress)
    ):
        if len(valid_idx) == 0:
            raise ValueError(f"scheme {config['cv']['scheme']!r}: fold {fold} has no validation rows in {dataset.source}")
        fold_start = time.perf_counter()
        seed_oof[:, valid_idx], seed_tests, histories = _fit_fold(models, seeds, X, y, X_test, train_idx, valid_idx,
                                                                  f"fold {fold}" if progress else None)
        oof[valid_idx] = seed_oof[:, valid_idx].mean(axis=0)
        # A diverged fit is refused here, naming its fold, before anything is stored.
        check_predictions(oof[valid_idx], what=f"model {config['model']}, fold {fold} (validation rows)", truth=y[valid_idx])
        for seed_test in seed_tests:
            check_predictions(seed_test, what=f"model {config['model']}, fold {fold} (test rows)")
            test_sum += seed_test
        entry = {
            "fold": fold,
            "train_rows": int(len(train_idx)),
            "valid_rows": int(len(valid_idx)),
            "seconds": round(time.perf_counter() - fold_start, 3),
        }
        if histories:
            entry["history"] = histories[0]
        fold_meta.append(entry)
        row_rmse[valid_idx] = rowwise_rmse(y[valid_idx], oof[valid_idx])
        score = float(np.average(row_rmse[valid_idx], weights=row_weights[valid_idx]))  # weighted, as the run's scores
        logger.info("fold %d: %d train, %d valid rows, MRRMSE %.4f, %.1f s", fold, len(train_idx), len(valid_idx), score, entry["seconds"])
        if on_fold is not None:
            done = ~np.isnan(row_rmse)
            on_fold(fold, float(np.average(row_rmse[done], weights=row_weights[done])))

    test = test_sum / (n_splits * len(seeds))
    if config["cv"].get("refit"):
        refit_start = time.perf_counter()
        with fit_progress("refit on all rows" if progress else None):
            test = np.mean([_fit(clone(models[s]), X, y, X_test).predict(X_test) for s in seeds], axis=0)
        check_predictions(test, what=f"model {config['model']}, refit on all rows (test rows)")
        logger.info("refit on all %d rows: %.1f s", len(X), time.perf_counter() - refit_start)
    test = test.astype(np.float32)

    validated = np.flatnonzero(fold_ids != NEVER_VALIDATED)
    weights = row_weights[validated]
    scores = _scores(dataset.obs.iloc[validated], fold_ids[validated], y[validated], oof[validated], weights)
    if len(seeds) > 1:
        per_seed = [float(np.average(rowwise_rmse(y[validated], p[validated]), weights=weights)) for p in seed_oof]
        scores["per_seed"] = dict(zip(map(str, seeds), per_seed))
        scores["seed_std"] = float(np.std(per_seed))
    logger.info("overall MRRMSE %.4f (zeros %.4f)", scores["overall"], scores["zeros"])

    folds = folds_frame(dataset.obs, fold_ids)
    meta = _run_meta(dataset, config, seeds, folds, scores, fold_meta, started)
    return CVResult(
        meta=meta,
        oof_keys=folds.iloc[validated].reset_index(drop=True),
        oof=oof[validated],
        test_ids=dataset.test["id"].to_numpy(),
        test=test,
        genes=tuple(dataset.genes),
        folds=folds,
        log_text=log_buffer.getvalue(),
        row_weights=row_weights,
    )


def _fit_fold(models, seeds, X, y, X_test, train_idx, valid_idx, label: str | None):
    """One fold: each seed's model fitted on the training rows; their validation predictions (seeds x rows x genes),
    their test predictions, and the loss histories of the models that keep one."""
    valid_predictions, test_predictions, histories = [], [], []
    for seed in seeds:
        model = clone(models[seed])
        with fit_progress((label + (f" seed {seed}" if len(seeds) > 1 else "")) if label else None):
            _fit(model, X.iloc[train_idx], y[train_idx], X_test)
        valid_predictions.append(model.predict(X.iloc[valid_idx]))
        test_predictions.append(model.predict(X_test))
        history = getattr(getattr(model, "regressor_", model), "history_", None)  # regressor_: a target-transform wrapper
        if history is not None:
            histories.append(history)
    return np.stack(valid_predictions), test_predictions, histories


def _run_meta(dataset, config, seeds, folds, scores, fold_meta, started) -> dict:
    """What a run records about itself: config, data, folds, scores, timings and versions."""
    return {
        "model": config["model"],
        "config": config,
        "config_hash": config_hash(config),
        "data_hash": dataset.data_hash,
        "data_source": dataset.source,
        "data_layer": dataset.layer,
        "n_genes": dataset.n_genes,
        "scheme": config["cv"]["scheme"],
        "seed": seeds[0],
        "seeds": seeds,
        "folds_hash": folds_hash(folds),
        "refit": bool(config["cv"].get("refit")),
        "scores": scores,
        "folds": fold_meta,
        "timings": {"total_seconds": round(time.perf_counter() - started, 3)},
        "versions": _versions(),
        "git_sha": _git_sha(),
        "command": " ".join(sys.argv),
        # microseconds: "the newest of equal runs" must be defined for runs written within one second
        "created": datetime.datetime.now().astimezone().isoformat(timespec="microseconds"),
    }


def summary_text(meta: dict) -> str:
    """The one-screen summary: per fold, per cell type, overall, against predicting zeros.

    Every MRRMSE in it weighs the rows alike (the scheme's weights, ``scores.weighting``): ``share`` is a
    fold's or cell type's part of the overall score, which is the share-weighted mean of the rows above it.
    """
    scores = meta["scores"]
    seeds = ",".join(map(str, meta.get("seeds", [meta["seed"]])))
    lines = [f"{meta['model']}  scheme={meta['scheme']}  seeds={seeds}  genes={meta['n_genes']}"]
    timing = {str(f["fold"]): f["seconds"] for f in meta["folds"]}
    for title, table in (("fold", scores["per_fold"]), ("cell type", scores["per_cell_type"])):
        lines.append(f"{title:<20} {'rows':>5} {'share':>6} {'MRRMSE':>8} {'zeros':>8} {'rel':>6}" + (f" {'sec':>7}" if title == "fold" else ""))
        for name, row in table.items():
            share = f"{row['weight']:>6.1%}" if "weight" in row else f"{'-':>6}"  # runs written before the shares were stored
            line = f"{name:<20} {row['rows']:>5} {share} {row['mrrmse']:>8.4f} {row['zeros']:>8.4f} {row['mrrmse'] / row['zeros']:>6.3f}"
            lines.append(line + (f" {timing.get(name, 0.0):>7.1f}" if title == "fold" else ""))
    for title, layer in (("overall", scores), ("clipped (±4) overall", scores.get("clipped"))):
        if layer is None:  # a run written before the clipped layer was scored
            continue
        rel, interval = layer["relative_to_zeros"], layer.get("relative_to_zeros_interval")
        lines.append(f"{title:<20} {'':>5} {'':>6} {layer['overall']:>8.4f} {layer['zeros']:>8.4f} {rel if rel is None else f'{rel:>6.3f}'}"
                     + (f" [{interval[0]:.3f}, {interval[1]:.3f}] (95 % bootstrap over compounds)" if interval else ""))
    lines.append("weighting: " + scores.get("weighting", "not recorded (a run written before per-fold scores were weighted: "
                                                         "its per-fold MRRMSE is unweighted, its overall weighted)"))
    if "seed_std" in scores:
        lines.append(f"{'seeds':<20} {len(meta['seeds']):>5} per-seed MRRMSE std {scores['seed_std']:.4f}")
    lines.append(f"total {meta['timings']['total_seconds']:.1f} s")
    return "\n".join(lines)
