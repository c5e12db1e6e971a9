"""Submissions: read and check a submission (CSV, parquet or prediction.h5ad) against a truth or template, score it locally, write one (``perturbkit.submit.write``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from perturbkit.data.wide import split_wide, wide_table
from perturbkit.errors import DataValidationError
from perturbkit.metrics import score_table

TRUTH_KEYS = ("id", "cell_type", "sm_name")


def _read_h5ad(path: Path) -> pa.Table:
    """openproblems' prediction.h5ad as a wide table: ``id`` (from obs_names) + ``layers['prediction']``."""
    try:
        import anndata
    except ImportError as exc:
        raise DataValidationError(f"{path}: reading .h5ad needs anndata: pip install 'perturbkit[h5ad]'") from exc
    try:
        adata = anndata.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a bad file
        raise DataValidationError(f"{path}: cannot be read as h5ad ({exc})") from exc
    if "prediction" not in adata.layers:
        raise DataValidationError(f"{path}: no layer 'prediction' (the openproblems prediction format); layers: {sorted(adata.layers)}")
    matrix = adata.layers["prediction"]
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    names = pd.Index(adata.obs_names.astype(str))
    ids = names.astype(np.int64) if names.str.fullmatch(r"-?\d+").all() else names
    genes = list(map(str, adata.var_names))
    if len(set(genes)) != len(genes):
        raise DataValidationError(f"{path}: duplicate var_names (genes)")
    if not np.issubdtype(matrix.dtype, np.number):
        raise DataValidationError(f"{path}: layer 'prediction' is not numeric (dtype {matrix.dtype})")
    return wide_table(pd.DataFrame({"id": np.asarray(ids)}), genes, matrix)


def _read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        if path.suffix == ".csv":  # one block for the whole file: much faster for 18,212 columns
            block = int(min(max(path.stat().st_size + 1, 1 << 20), 1 << 30))
            return pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=block))
    except pa.ArrowException as exc:
        raise DataValidationError(f"{path}: cannot be read ({exc})") from exc
    if path.suffix == ".h5ad":
        return _read_h5ad(path)
    raise DataValidationError(f"{path}: unsupported file type {path.suffix!r} (expected .csv, .parquet or .h5ad)")


def read_submission(path: Path | str, *, genes, ids, reference: str = "the truth") -> np.ndarray:
    """The submission's predictions as a float32 matrix in the order of ``ids`` x ``genes``.

    Rejects, naming them, missing or extra ids and genes (those of ``reference``, as messages call it),
    duplicate ids and non-finite values.
    """
    path = Path(path)
    table = _read_table(path)
    if "id" not in table.column_names:
        raise DataValidationError(f"{path}: no 'id' column")
    columns = [c for c in table.column_names if c != "id"]
    if len(set(columns)) != len(columns):
        duplicated = pd.Index(columns)[pd.Index(columns).duplicated()].unique().tolist()
        raise DataValidationError(f"{path}: duplicate gene column(s) {duplicated[:5]}")
    missing, extra = sorted(set(genes) - set(columns)), sorted(set(columns) - set(genes))
    if missing or extra:
        raise DataValidationError(f"{path}: gene columns differ from those of {reference}: missing {missing[:5]}, extra {extra[:5]}")
    submitted = pd.Index(table.column("id").to_numpy())
    if submitted.has_duplicates:
        raise DataValidationError(f"{path}: duplicate id {submitted[submitted.duplicated()][0]}")
    wanted, given = set(np.asarray(ids).tolist()), set(submitted.tolist())  # plain ints in the message, not np.int64(1)
    missing_ids, extra_ids = sorted(wanted - given), sorted(given - wanted)
    if missing_ids or extra_ids:
        raise DataValidationError(f"{path}: ids differ from those of {reference}: missing {missing_ids[:5]}, extra {extra_ids[:5]}")
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


def read_truth(path: Path | str) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    path = Path(path)
    table = _read_table(path)
    missing = [c for c in TRUTH_KEYS if c not in table.column_names]
    if missing:
        raise DataValidationError(f"{path}: truth file is missing column(s) {missing}")
    return split_wide(table, TRUTH_KEYS)


def check_competition_file(path: Path | str, template: Path | str | None = None) -> None:
    """The file has exactly the template's (default: the real competition's layout) ids and genes, all finite."""
    from perturbkit.data.layout import gene_names, test_layout
    from perturbkit.submit.write import read_template

    if template is not None:
        ids, genes = read_template(template)
    else:
        genes, ids = list(gene_names()), test_layout()["id"].to_numpy()
    read_submission(path, genes=genes, ids=ids,
                    reference=f"the template {template}" if template is not None else "the competition's sample_submission.csv")


def score_submission(submission: Path | str, truth: Path | str) -> pd.DataFrame:
    """Every row-wise metric per cell type and overall (row ``all``)."""
    keys, genes, y_true = read_truth(truth)
    y_pred = read_submission(submission, genes=genes, ids=keys["id"].to_numpy())
    return score_table(y_true, y_pred, keys["cell_type"].astype(str))
