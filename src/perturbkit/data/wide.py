"""Kaggle's wide layout: key columns, then one float32 column per gene (de_train, runs, truths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


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
