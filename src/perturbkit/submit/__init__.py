"""Submissions: read and check a submission (CSV, parquet or prediction.h5ad) against a truth or template, score it locally, write one (``perturbkit.submit.write``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from perturbkit.data.hidden import read_wide_truth
from perturbkit.data.wide import read_h5ad_file, read_wide_table
from perturbkit.errors import DataValidationError
from perturbkit.metrics import CLIP, clip_layer
from perturbkit.scorecard import Scorecard, ScoreSettings, score_predictions
from perturbkit.types import PositiveCount, Seed, parse_value

TRUTH_LAYER = "sign_log10_pval"
CLIPPED_LAYER = "clipped_sign_log10_pval"


def read_submission(path: Path | str, *, genes, ids, allow_extra_ids: bool = False, reference: str = "the truth",
                    ordered: bool = False) -> np.ndarray:
    """The submission's predictions as a float32 matrix in the order of ``ids`` x ``genes``.

    Rejects, naming them, missing or extra ids (``allow_extra_ids``: rows beyond ``ids`` are left out
    instead) and genes (those of ``reference``, as messages call it), duplicate ids and non-finite values;
    with ``ordered``, columns other than ``id`` then ``genes`` in that order (Kaggle's sample_submission.csv).
    """
    path = Path(path)
    table = read_wide_table(path)
    if "id" not in table.column_names:
        raise DataValidationError(f"{path}: no 'id' column")
    columns = [c for c in table.column_names if c != "id"]
    if len(set(columns)) != len(columns):
        duplicated = pd.Index(columns)[pd.Index(columns).duplicated()].unique().tolist()
        raise DataValidationError(f"{path}: duplicate gene column(s) {duplicated[:5]}")
    missing, extra = sorted(set(genes) - set(columns)), sorted(set(columns) - set(genes))
    if missing or extra:
        raise DataValidationError(f"{path}: gene columns differ from those of {reference}: missing {missing[:5]}, extra {extra[:5]}")
    if ordered and table.column_names != ["id", *genes]:
        expected = ["id", *genes]
        at = next(i for i, (a, b) in enumerate(zip(table.column_names, expected)) if a != b)
        raise DataValidationError(f"{path}: column {at + 1} is {table.column_names[at]!r} where {reference} has {expected[at]!r} "
                                  "(the columns must follow its order: id, then its genes)")
    submitted = pd.Index(table.column("id").to_numpy())
    if submitted.has_duplicates:
        raise DataValidationError(f"{path}: duplicate id {submitted[submitted.duplicated()][0]}")
    wanted, given = set(np.asarray(ids).tolist()), set(submitted.tolist())  # plain ints in the message, not np.int64(1)
    missing_ids, extra_ids = sorted(wanted - given), sorted(given - wanted)
    if missing_ids or (extra_ids and not allow_extra_ids):
        raise DataValidationError(f"{path}: ids differ from those of {reference} ({len(submitted)} rows where it has {len(wanted)}): "
                                  f"missing {missing_ids[:5]}, extra {extra_ids[:5]}")
    position = {name: i for i, name in enumerate(table.column_names)}  # by-name lookups are linear in pyarrow
    for gene in genes:
        column_type = table.schema.field(position[gene]).type
        if not pa.types.is_floating(column_type) and not pa.types.is_integer(column_type):
            raise DataValidationError(f"{path}: column {gene!r} is not numeric")
    order = submitted.get_indexer(ids)
    matrix = np.empty((len(order), len(genes)), dtype=np.float32)
    for j, gene in enumerate(genes):
        matrix[:, j] = table.column(position[gene]).to_numpy(zero_copy_only=False)[order]
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(f"{path}: non-finite value in column {genes[col]!r} for id {ids[row]}")
    return matrix


def read_truth(path: Path | str) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """A truth file's keys (id, cell_type, sm_name), genes and unclipped values."""
    truth = read_truth_layers(path)
    return truth.keys, truth.genes, truth.values


@dataclass(frozen=True)
class Truth:
    keys: pd.DataFrame  # id, cell_type, sm_name
    genes: list[str]
    values: np.ndarray  # the unclipped signed -log10 p-values (Kaggle's)
    clipped: np.ndarray  # openproblems' clipped layer
    clipped_source: str  # where ``clipped`` came from, said in the scores' output
    subset: bool  # an openproblems de_test.h5ad: may hold only some test rows (its private ones)


def _read_truth_h5ad(path: Path) -> Truth:
    """openproblems' de_test.h5ad: obs cell_type, sm_name; layers sign_log10_pval and, if present, the clipped one.
    Rows are matched to the competition's ids through id_map (obs ``id`` wins when present)."""
    from perturbkit.data.layout import test_layout

    adata = read_h5ad_file(path)
    if TRUTH_LAYER not in adata.layers:
        raise DataValidationError(f"{path}: no layer {TRUTH_LAYER!r} (openproblems' de_test); layers: {sorted(adata.layers)}")
    missing = [c for c in ("cell_type", "sm_name") if c not in adata.obs.columns]
    if missing:
        raise DataValidationError(f"{path}: obs is missing column(s) {missing}")
    keys = adata.obs[["cell_type", "sm_name"]].astype(str).reset_index(drop=True)
    if "id" in adata.obs.columns:
        keys.insert(0, "id", adata.obs["id"].to_numpy())
    else:
        id_map = test_layout().set_index(["cell_type", "sm_name"])["id"]
        ids = id_map.reindex(pd.MultiIndex.from_frame(keys)).to_numpy()
        unknown = np.flatnonzero(pd.isna(ids))
        if unknown.size:
            row = keys.iloc[unknown[0]]
            raise DataValidationError(f"{path}: obs row {unknown[0]} ({row['cell_type']!r}, {row['sm_name']!r}) is not a test pair of id_map.csv")
        keys.insert(0, "id", ids.astype(np.int64))

    def layer(name: str) -> np.ndarray:
        matrix = adata.layers[name]
        return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float32)

    values = layer(TRUTH_LAYER)
    if CLIPPED_LAYER in adata.layers:
        clipped, source = layer(CLIPPED_LAYER), f"layer {CLIPPED_LAYER!r} of {path.name}"
    else:
        clipped, source = clip_layer(values), f"{path.name} clipped to ±{CLIP:g} (it has no {CLIPPED_LAYER!r} layer)"
    return Truth(keys, list(map(str, adata.var_names)), values, clipped, source, subset=True)


def read_truth_layers(path: Path | str) -> Truth:
    """A truth file (``test_truth.parquet``/``.csv`` in Kaggle's wide layout, or openproblems' de_test.h5ad)
    with its clipped layer: the h5ad's own when it has one, else the values clipped to ±4."""
    path = Path(path)
    if path.suffix == ".h5ad" and path.is_file():
        truth = _read_truth_h5ad(path)
    else:
        keys, genes, values = read_wide_truth(path)
        truth = Truth(keys, genes, values, clip_layer(values), f"{path.name} clipped to ±{CLIP:g}", subset=False)
    for name, matrix in (("values", truth.values), ("clipped layer", truth.clipped)):
        bad = ~np.isfinite(matrix)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataValidationError(f"{path}: non-finite truth {name} in column {truth.genes[col]!r} for id {truth.keys['id'].iloc[row]}")
    if not truth.values.any():  # predicting zeros would then score 0: every ratio to zeros is undefined
        raise DataValidationError(f"{path}: every truth value is 0, so no score relative to zeros exists (mrrmse_rel would be "
                                  "x / 0); this is no real truth file")
    return truth


def submission_layout(template: Path | str | None = None, data: str | Path | None = None, *,
                      demo_genes: int | None = None) -> tuple[np.ndarray, list[str], str]:
    """The ids, genes (in column order) and name of what a submission must match: a sample_submission.csv, a data folder
    (loaded and validated: its template when it has one, else id_map.csv's ids and de_train's genes), or by default the
    real competition's layout."""
    from perturbkit.data.layout import gene_names, test_layout

    if template is not None and data is not None:
        raise DataValidationError("give --template or --data, not both")
    if template is not None:
        from perturbkit.data.dataset import read_template

        ids, genes = read_template(template)
        return ids, genes, f"the template {template}"
    if data is not None:
        from perturbkit.data import load

        dataset = load(data, demo_genes=demo_genes)
        return dataset.test["id"].to_numpy(), list(dataset.genes), f"the data {dataset.source}"
    return test_layout()["id"].to_numpy(), list(gene_names()), "the competition's sample_submission.csv"


def check_submission(path: Path | str, template: Path | str | None = None, data: str | Path | None = None, *,
                     demo_genes: int | None = None) -> str:
    """Whether ``path`` is a submission Kaggle accepts: exactly the layout's ids (no duplicate, none missing or extra), its
    columns in its order, every value finite. Returns a one-line summary; raises :class:`DataValidationError` naming the
    first defect."""
    ids, genes, reference = submission_layout(template, data, demo_genes=demo_genes)
    read_submission(path, genes=genes, ids=ids, reference=reference, ordered=True)
    return f"{path}: a valid submission for {reference}: {len(ids)} rows x {len(genes)} genes, columns in its order, all values finite"


ROWS = ("all", "public", "private")
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def score_settings(*, threshold: float, resamples: int, seed: int) -> ScoreSettings:
    """The scores' settings from the flags, each checked (a NaN threshold or a negative seed is named, not a traceback)."""
    return ScoreSettings(threshold=parse_value(NonNegativeFloat, threshold, "--de-threshold"),
                         resamples=parse_value(PositiveCount, resamples, "--resamples"), seed=parse_value(Seed, seed, "--bootstrap-seed"))


def truth_rows(truth: Truth, truth_path: Path | str, rows: str) -> Truth:
    """The truth's ``public`` or ``private`` rows (``all``: every row): a demo world's own split (its public_test.csv) when
    the truth is a demo world's, else Kaggle's (the 50 public compounds of :func:`perturbkit.data.layout.leaderboard_split`)."""
    from perturbkit.data.hidden import is_demo_world, read_public_ids
    from perturbkit.data.layout import public_test_rows

    if rows not in ROWS:
        raise DataValidationError(f"--rows {rows!r}: expected one of {', '.join(ROWS)}")
    if rows == "all":
        return truth
    world = Path(truth_path).parent
    public = np.isin(truth.keys["id"].to_numpy(), read_public_ids(world)) if is_demo_world(world) else public_test_rows(truth.keys)
    keep = public if rows == "public" else ~public
    if not keep.any():
        raise DataValidationError(f"{truth_path}: none of its {len(keep)} rows is {rows} ({int(public.sum())} public)")
    return replace(truth, keys=truth.keys[keep].reset_index(drop=True), values=truth.values[keep], clipped=truth.clipped[keep],
                   subset=True)


def score_against(truth: Truth, submission: Path | str, settings: ScoreSettings = ScoreSettings(), *, rows: str = "all") -> Scorecard:
    """Every score of ``submission`` on the truth's rows (:mod:`perturbkit.scorecard`)."""
    y_pred = read_submission(submission, genes=truth.genes, ids=truth.keys["id"].to_numpy(), allow_extra_ids=truth.subset)
    return score_predictions(truth.values, y_pred, truth.keys, clipped_truth=truth.clipped, clipped_source=truth.clipped_source,
                             settings=settings, notes=[f"{len(truth.keys)} truth rows scored" + ("" if rows == "all" else f" ({rows})")])


def score_submission(submission: Path | str, truth: Path | str, settings: ScoreSettings = ScoreSettings(), *,
                     rows: str = "all") -> Scorecard:
    """Every score per cell type and overall (group ``all``), each with its bootstrap interval; ``rows``: all, or only the
    public or private leaderboard's rows (:func:`truth_rows`)."""
    return score_against(truth_rows(read_truth_layers(truth), truth, rows), submission, settings, rows=rows)


def score_text(submission: Path | str, truth: Path | str, card: Scorecard, *, as_json: bool = False) -> str:
    """What ``perturbkit score`` prints: the scorecard as text, or as JSON naming the submission and the truth."""
    if as_json:
        import json

        return json.dumps({"submission": str(submission), "truth": str(truth), **card.to_dict()}, indent=2)
    return f"{submission} against {truth}\n{card.text()}"


def with_test_scores(runs: pd.DataFrame, truth_path, settings: ScoreSettings = ScoreSettings(), *,
                     warn=warnings.warn) -> tuple[pd.DataFrame, list[Scorecard]]:
    """``runs`` (a :func:`perturbkit.cv.store.list_runs` table) with each group's test MRRMSE as ``test <group>``
    columns, and each run's scorecard: its ``test.parquet`` scored against the truth file, read once. A run whose
    test.parquet is missing or changed is left out, ``warn`` naming the file."""
    from perturbkit.cv.store import test_file_or_skip

    truth = read_truth_layers(truth_path)
    test_files = [test_file_or_skip(path, warn) for path in runs["path"]]
    runs = runs[[f is not None for f in test_files]].reset_index(drop=True)
    cards = [score_against(truth, f, settings) for f in test_files if f is not None]
    for position, card in enumerate(cards):
        for group in card.table.index.get_level_values("group").unique():
            runs.loc[position, f"test {group}"] = card.value("mrrmse", group)
    return runs, cards
