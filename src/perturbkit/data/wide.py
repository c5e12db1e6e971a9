"""Kaggle's wide layout: key columns, then one float32 column per gene (de_train, runs, truths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from perturbkit.errors import DataValidationError


def printable(text: str, limit: int = 200) -> str:
    """``text`` safe for a terminal: control characters and undecodable bytes escaped, cut to ``limit`` characters."""
    text = "".join(ch if ch.isprintable() and ch != "\ufffd" else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= limit else text[:limit] + "..."


def utf8_bytes(path: Path) -> bytes:
    """The file's bytes, checked to be UTF-8 text; bytes that are not are named by value and line, never echoed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataValidationError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataValidationError(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} on line {line})") from None
    return data


def wide_table(keys: pd.DataFrame, genes, matrix: np.ndarray, dtype=np.float32) -> pa.Table:
    """Key columns followed by one column per gene, Kaggle's wide layout."""
    # Fortran order makes every gene column contiguous, so arrow wraps it without copying.
    matrix = np.asfortranarray(matrix, dtype=dtype)
    columns = [pa.array(keys[c].to_numpy()) for c in keys.columns]
    columns += [pa.array(matrix[:, j]) for j in range(matrix.shape[1])]
    return pa.Table.from_arrays(columns, names=[*keys.columns, *genes])


def split_wide(table: pa.Table, key_columns) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """A wide table's key columns, gene names and float32 gene matrix (every non-key column is a gene)."""
    genes = [c for c in table.column_names if c not in key_columns]
    matrix = np.column_stack([table.column(g).to_numpy() for g in genes]).astype(np.float32)
    return table.select(list(key_columns)).to_pandas(), genes, matrix


def read_wide(path: Path, key_columns) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    return split_wide(pq.read_table(path), key_columns)


def read_h5ad_file(path: Path):
    """An .h5ad file as an AnnData, a missing anndata or an unreadable file a named error."""
    try:
        import anndata
    except ImportError as exc:
        raise DataValidationError(f"{path}: reading .h5ad needs anndata: pip install 'perturbkit[h5ad]'") from exc
    try:
        return anndata.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a bad file
        raise DataValidationError(f"{path}: cannot be read as h5ad ({exc})") from exc


def _read_h5ad(path: Path) -> pa.Table:
    """openproblems' prediction.h5ad as a wide table: ``id`` (from obs_names) + ``layers['prediction']``."""
    adata = read_h5ad_file(path)
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


def read_wide_table(path: Path) -> pa.Table:
    """A wide table from ``.csv``, ``.parquet`` or openproblems' ``prediction.h5ad``; a bad file is named."""
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        if path.suffix == ".csv":  # one block for the whole file: much faster for 18,212 columns
            data = utf8_bytes(path)
            block = int(min(max(len(data) + 1, 1 << 20), 1 << 30))
            return pacsv.read_csv(pa.BufferReader(data), read_options=pacsv.ReadOptions(block_size=block))
    except pa.ArrowException as exc:
        raise DataValidationError(f"{path}: cannot be read ({printable(str(exc))})") from None
    if path.suffix == ".h5ad":
        return _read_h5ad(path)
    raise DataValidationError(f"{path}: unsupported file type {path.suffix!r} (expected .csv, .parquet or .h5ad)")
