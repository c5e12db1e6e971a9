"""Submissions: read and check a submission (CSV, parquet or prediction.h5ad) against a truth or template, score it locally, write one (``perturbkit.submit.write``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from perturbkit.data.hidden import TRUTH_KEYS, read_truth
from perturbkit.data.wide import read_wide_table
from perturbkit.errors import DataValidationError
from perturbkit.metrics import score_table

__all__ = ["TRUTH_KEYS", "check_competition_file", "read_submission", "read_truth", "score_submission"]


def read_submission(path: Path | str, *, genes, ids) -> np.ndarray:
    """The submission's predictions as a float32 matrix in the order of ``ids`` x ``genes``.

    Rejects, naming them, missing or extra ids and genes, duplicate ids and non-finite values.
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
        raise DataValidationError(f"{path}: gene columns differ from the truth's: missing {missing[:5]}, extra {extra[:5]}")
    submitted = pd.Index(table.column("id").to_numpy())
    if submitted.has_duplicates:
        raise DataValidationError(f"{path}: duplicate id {submitted[submitted.duplicated()][0]}")
    missing_ids, extra_ids = sorted(set(ids) - set(submitted)), sorted(set(submitted) - set(ids))
    if missing_ids or extra_ids:
        raise DataValidationError(f"{path}: ids differ from the truth's: missing {missing_ids[:5]}, extra {extra_ids[:5]}")
    position = {name: i for i, name in enumerate(table.column_names)}  # by-name lookups are linear in pyarrow
    for gene in genes:
        column_type = table.schema.field(position[gene]).type
        if not pa.types.is_floating(column_type) and not pa.types.is_integer(column_type):
            raise DataValidationError(f"{path}: column {gene!r} is not numeric")
    order = submitted.get_indexer(ids)
    matrix = np.empty((table.num_rows, len(genes)), dtype=np.float32)
    for j, gene in enumerate(genes):
        matrix[:, j] = table.column(position[gene]).to_numpy(zero_copy_only=False)
    matrix = matrix[order]
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(f"{path}: non-finite value in column {genes[col]!r} for id {ids[row]}")
    return matrix


def check_competition_file(path: Path | str, template: Path | str | None = None) -> None:
    """The file has exactly the template's (default: the real competition's layout) ids and genes, all finite."""
    from perturbkit.data.layout import gene_names, test_layout
    from perturbkit.submit.write import read_template

    if template is not None:
        ids, genes = read_template(template)
    else:
        genes, ids = list(gene_names()), test_layout()["id"].to_numpy()
    read_submission(path, genes=genes, ids=ids)


def score_submission(submission: Path | str, truth: Path | str) -> pd.DataFrame:
    """Every row-wise metric per cell type and overall (row ``all``)."""
    keys, genes, y_true = read_truth(truth)
    y_pred = read_submission(submission, genes=genes, ids=keys["id"].to_numpy())
    return score_table(y_true, y_pred, keys["cell_type"].astype(str))
