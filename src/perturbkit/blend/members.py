"""Blend members: stored runs loaded, checked against each other and the dataset, aligned by key.

Rows are matched by (cell_type, sm_name), never by position, and only rows validated in every
run are kept. Test rows are matched by id. Runs fitted on other data (a different data hash) or
with another fold assignment are refused with :class:`IncompatibleRunsError`. Each row weighs what
it weighed in the runs' stored scores (their weights.parquet), not what today's scheme code says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perturbkit.cv.store import (
    Run, check_run_fits, default_blend_runs, is_complete, list_runs, load_run, read_meta, read_row_weights, test_file_or_skip,
)
from perturbkit.data import Dataset
from perturbkit.data.layout import KEY_COLUMNS
from perturbkit.errors import PerturbkitError


class BlendError(PerturbkitError):
    """A blend that cannot be built as asked; the message says why and what to do."""


class IncompatibleRunsError(BlendError, ValueError):
    """Runs that cannot be blended: other data, other folds, other genes or missing rows."""


@dataclass(frozen=True)
class Members:
    """Aligned member predictions: ``oof`` is members x rows x genes, ``test`` members x test rows x genes."""

    names: list[str]
    runs: list[Run]
    keys: pd.DataFrame  # cell_type, sm_name, fold of the common validated rows, in de_train order
    dataset_positions: np.ndarray  # positions of those rows in the dataset (de_train order)
    dataset_folds: np.ndarray  # fold of every dataset row (-1: never validated), from the runs' folds.parquet
    oof: np.ndarray  # float32 (M, R, G)
    y: np.ndarray  # float32 (R, G)
    test_ids: np.ndarray
    test_cell_types: np.ndarray
    test: np.ndarray  # float32 (M, T, G)
    genes: list[str]
    data_hash: str
    folds_hash: str
    scheme: str
    dropped_rows: dict[str, int]  # per member: validated rows left out because another run lacks them
    row_weights: np.ndarray  # (R,) each row's stored weight in the runs' scores (test_like: B/Myeloid half), mean 1

    @property
    def folds(self) -> np.ndarray:
        return self.keys["fold"].to_numpy()


def member_names(runs: list[Run]) -> list[str]:
    """``model`` when each model appears once, else ``model:run_id`` for the repeated ones."""
    models = [run.meta.get("model", run.path.parent.name) for run in runs]
    return [m if models.count(m) == 1 else f"{m}:{run.path.name}" for m, run in zip(models, runs)]


def select_runs(
    oof_root: Path | str,
    *,
    every: bool = False,
    data_hash: str | None = None,
    scheme: str | None = None,
    include_tuning: bool = False,
    configs=None,
) -> tuple[list[Path], list[str]]:
    """Run directories to blend, by one rule, and one line per run taken or left out saying why.

    Eligible: complete runs on ``data_hash`` (when given) and ``scheme`` (when given), tuning trials
    (``meta["tune"]``) only with ``include_tuning``, and with ``configs`` (a recipe's member configs) only
    the runs of those configs. Of the eligible runs, the best-CV run of each distinct (model, config
    hash) is taken (the newest of equals); ``every`` takes them all.
    """
    from perturbkit.config import config_hash

    table = list_runs(oof_root)
    if table.empty:
        raise BlendError(f"no complete runs under {oof_root}; run `perturbkit cv --model ...` (make cv) first")
    wanted = None if configs is None else {config_hash(c): c["model"] for c in configs}
    lines, keep, damaged = [], [], []
    for _, row in table.iterrows():  # newest first
        meta = read_meta(row["path"])
        label = f"{row['model']}/{row['run_id']}"
        trial = meta.get("tune")
        if data_hash is not None and meta.get("data_hash") != data_hash:
            reason = f"fitted on other data (hash {str(meta.get('data_hash'))[:12]})"
        elif scheme is not None and meta.get("scheme") != scheme:
            reason = f"scheme {meta.get('scheme')}, not {scheme}"
        elif wanted is not None and meta.get("config_hash") not in wanted:
            reason = "its config is none of the recipe's members'"
        elif wanted is None and isinstance(trial, dict) and not include_tuning:
            reason = f"tuning trial {trial.get('trial')} of study {trial.get('study')!r} (pass --include-tuning to consider trials)"
        elif test_file_or_skip(row["path"], damaged.append) is None:
            reason = damaged[-1]
        else:
            keep.append(row.to_dict())
            continue
        lines.append(f"left out {label}: {reason}")
    if not keep:
        raise BlendError(f"no run under {oof_root} matches the data" + (f" and scheme {scheme}" if scheme else "") + "; "
                         + "; ".join(lines))
    # Best CV first; among equal scores the newest (the table's order) first.
    chosen = pd.DataFrame(keep).sort_values("mrrmse", kind="stable", ignore_index=True)
    if not every:
        best = default_blend_runs(chosen, include_tuning=True)  # trials were left out above, each with its reason
        for _, row in chosen[~chosen.index.isin(best.index)].iterrows():
            winner = best[(best["model"] == row["model"]) & (best["config_hash"] == row["config_hash"])].iloc[0]
            lines.append(f"left out {row['model']}/{row['run_id']}: CV {row['mrrmse']:.4f}; run {winner['run_id']} of the "
                         f"same model and config scores {winner['mrrmse']:.4f} (pass --all to blend every run)")
        chosen = best
    if wanted is not None:
        missing = sorted(set(wanted) - set(chosen["config_hash"]))
        if missing:
            raise BlendError(f"{len(missing)} recipe member(s) have no stored run on this data under {oof_root} "
                             f"({', '.join(f'{wanted[h]} config {h}' for h in missing)}); run `perturbkit recipe` first")
    for _, row in chosen.iterrows():
        rule = "every eligible run (--all)" if every else "the best CV of its model and config"
        lines.append(f"taken {row['model']}/{row['run_id']}: CV {row['mrrmse']:.4f}, {rule} (config {str(row['config_hash'])[:12]})")
    folds = {p: read_meta(p).get("folds_hash") for p in chosen["path"]}
    if len(set(folds.values())) > 1:
        groups: dict[str, list[str]] = {}
        for _, row in chosen.iterrows():
            groups.setdefault(f"{row['scheme']} {str(folds[row['path']])[:12]}", []).append(f"{row['model']}/{row['run_id']}")
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items())
        raise IncompatibleRunsError(
            f"the selected runs under {oof_root} use different fold assignments ({detail}); "
            "choose one with --scheme or name the runs with --runs"
        )
    return sorted((Path(p) for p in chosen["path"]), key=lambda p: (p.parent.name, p.name)), lines


def _fold_by_key(run: Run) -> pd.Series:
    index = pd.MultiIndex.from_frame(run.oof_keys[list(KEY_COLUMNS)].astype(str))
    if index.has_duplicates:
        pair = index[index.duplicated()][0]
        raise IncompatibleRunsError(f"{run.path}: oof.parquet has the row {pair} twice")
    return pd.Series(run.oof_keys["fold"].to_numpy(), index=index)


def load_members(paths, dataset: Dataset, *, names=None) -> Members:
    """Load the runs at ``paths``, check them against ``dataset`` and each other, and align them."""
    runs = _read_runs(paths)
    names = list(names) if names is not None else member_names(runs)
    genes = list(dataset.genes)
    folds_hash = _check_runs_fit(runs, dataset)
    for run in runs:  # the store's own check too: test ids, and the folds its scheme gives on this data
        check_run_fits(run, dataset)

    # Fold of each validated key, checked row by row too (a run's files, not only its meta).
    folds = [_fold_by_key(run) for run in runs]
    obs_index = pd.MultiIndex.from_frame(dataset.obs[list(KEY_COLUMNS)].astype(str))
    common, positions = _common_rows(runs, folds, obs_index, dataset)

    oof = np.empty((len(runs), len(common), len(genes)), dtype=np.float32)
    for m, (run, fold) in enumerate(zip(runs, folds)):
        oof[m] = run.oof[fold.index.get_indexer(common)]
    keys = pd.DataFrame(
        {
            "cell_type": common.get_level_values(0).to_numpy(),
            "sm_name": common.get_level_values(1).to_numpy(),
            "fold": folds[0].reindex(common).to_numpy().astype(np.int64),
        }
    )
    test_ids = dataset.test["id"].to_numpy()
    return Members(
        names=names,
        runs=runs,
        keys=keys,
        dataset_positions=positions,
        dataset_folds=_dataset_folds(runs[0], obs_index, positions, keys["fold"].to_numpy()),
        oof=oof,
        y=dataset.targets[positions],
        test_ids=test_ids,
        test_cell_types=dataset.test["cell_type"].astype(str).to_numpy(),
        test=_aligned_test(runs, test_ids, len(genes)),
        genes=genes,
        data_hash=dataset.data_hash,
        folds_hash=folds_hash,
        scheme=str(runs[0].meta.get("scheme")),
        dropped_rows={name: int(len(f) - len(common)) for name, f in zip(names, folds)},
        row_weights=_row_weights(runs, dataset, obs_index, common),
    )


def _read_runs(paths) -> list[Run]:
    """The complete runs at ``paths``, each named once."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise BlendError("no runs to blend")
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise BlendError("the same run is named twice")
    runs = []
    for path in paths:
        if not is_complete(path):
            raise BlendError(f"{path}: not a complete run directory (oof.parquet, test.parquet, folds.parquet, meta.json, log.txt)")
        runs.append(load_run(path))
    return runs


def _check_runs_fit(runs: list[Run], dataset: Dataset) -> str:
    """Check that every run was fitted on ``dataset`` (its hash and genes) with the same folds; their folds hash."""
    genes = list(dataset.genes)
    for run in runs:
        if run.meta.get("data_hash") != dataset.data_hash:
            raise IncompatibleRunsError(
                f"{run.path}: fitted on data with hash {run.meta.get('data_hash')}, but {dataset.source} has hash "
                f"{dataset.data_hash}; rerun it on this data or pass the --data it was fitted on"
            )
        if run.genes != genes:
            raise IncompatibleRunsError(f"{run.path}: gene columns differ from {dataset.source}'s")
    hashes = {run.meta.get("folds_hash") for run in runs}
    if len(hashes) != 1:
        detail = ", ".join(f"{run.path.parent.name}/{run.path.name}: {run.meta.get('scheme')} {str(run.meta.get('folds_hash'))[:12]}" for run in runs)
        raise IncompatibleRunsError(f"runs with different fold assignments cannot be blended ({detail})")
    return next(iter(hashes))


def _common_rows(runs: list[Run], folds: list[pd.Series], obs_index: pd.MultiIndex, dataset: Dataset):
    """The keys every run validated, in the dataset's row order, and their dataset positions; the runs must agree on their folds."""
    common = folds[0].index
    for fold in folds[1:]:
        common = common.intersection(fold.index)
    for run, fold in zip(runs[1:], folds[1:]):
        if not np.array_equal(fold.reindex(common).to_numpy(), folds[0].reindex(common).to_numpy()):
            raise IncompatibleRunsError(f"{run.path}: rows are assigned to other folds than in {runs[0].path}")
    positions = obs_index.get_indexer(common)
    if (positions < 0).any():
        raise IncompatibleRunsError(f"{runs[0].path}: row {common[int(np.flatnonzero(positions < 0)[0])]} is not in {dataset.source}")
    order = np.argsort(positions, kind="stable")
    common, positions = common[order], positions[order]
    if len(common) == 0:
        raise BlendError("the runs have no validated row in common")
    return common, positions


def _dataset_folds(run: Run, obs_index: pd.MultiIndex, positions: np.ndarray, oof_folds: np.ndarray) -> np.ndarray:
    """Every dataset row's fold (-1: never validated) from the run's folds.parquet, checked against its OOF rows' folds."""
    stored = pd.read_parquet(run.path / "folds.parquet")
    stored_index = pd.MultiIndex.from_frame(stored[list(KEY_COLUMNS)].astype(str))
    where = stored_index.get_indexer(obs_index)
    if (where < 0).any():
        raise IncompatibleRunsError(f"{run.path}: folds.parquet has no fold for row {obs_index[int(np.flatnonzero(where < 0)[0])]}")
    dataset_folds = stored["fold"].to_numpy().astype(np.int64)[where]
    if not np.array_equal(dataset_folds[positions], oof_folds):
        raise IncompatibleRunsError(f"{run.path}: folds.parquet disagrees with the folds in oof.parquet")
    return dataset_folds


def _aligned_test(runs: list[Run], test_ids: np.ndarray, n_genes: int) -> np.ndarray:
    """Every run's test predictions (members x test rows x genes), in the order of ``test_ids``."""
    test = np.empty((len(runs), len(test_ids), n_genes), dtype=np.float32)
    for m, run in enumerate(runs):
        where = pd.Index(run.test_ids).get_indexer(test_ids)
        if (where < 0).any():
            raise IncompatibleRunsError(f"{run.path}: test.parquet has no row for id {test_ids[int(np.flatnonzero(where < 0)[0])]}")
        test[m] = run.test[where]
    return test


def _row_weights(runs: list[Run], dataset: Dataset, obs_index: pd.MultiIndex, common: pd.MultiIndex) -> np.ndarray:
    """The runs' stored weights of the blended rows (each checked against its run's score), renormalised to mean 1."""
    def targets_of(keys: pd.DataFrame) -> np.ndarray:
        return dataset.targets[obs_index.get_indexer(pd.MultiIndex.from_frame(keys[list(KEY_COLUMNS)].astype(str)))]

    weights = [read_row_weights(run, targets_of).reindex(common).to_numpy() for run in runs]
    for run, other in zip(runs[1:], weights[1:]):
        if not np.allclose(other, weights[0]):
            raise IncompatibleRunsError(f"{run.path}: its rows weigh otherwise in its score than in {runs[0].path}'s; "
                                        "rerun the older one so both use the same scheme weights")
    return weights[0] / weights[0].mean()
