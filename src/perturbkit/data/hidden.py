"""What only a demo world has: the hidden truth of its test rows and which of them are public.

A demo world (:mod:`perturbkit.data.demo` writes one) declares itself in ``world.json`` and keeps,
beside Kaggle's file set, ``test_truth.parquet`` (every test row's values) and ``public_test.csv``
(the ids of the rows Kaggle's public leaderboard scores: every test row of the 50 public compounds
of Kaggle's split, :func:`perturbkit.data.layout.leaderboard_split`; the other rows are private).
This module reads them; it knows nothing of how they were simulated, so the production paths
(scoring, the leaderboard factor) never import the simulator.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from perturbkit.data.wide import read_wide_table, split_wide
from perturbkit.errors import DataValidationError

TRUTH_FILE = "test_truth.parquet"
PUBLIC_FILE = "public_test.csv"
WORLD_FILE = "world.json"  # a demo world's declaration: variant, genes, seed, generator version
TRUTH_KEYS = ("id", "cell_type", "sm_name")


def read_wide_truth(path: Path | str) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """A truth file in Kaggle's wide layout (``.parquet``, ``.csv``): its keys (``id, cell_type, sm_name``), genes and
    float32 values (:func:`perturbkit.submit.read_truth_layers` adds openproblems' h5ad and the clipped layer)."""
    path = Path(path)
    table = read_wide_table(path)
    missing = [c for c in TRUTH_KEYS if c not in table.column_names]
    if missing:
        raise DataValidationError(f"{path}: truth file is missing column(s) {missing}")
    return split_wide(table, TRUTH_KEYS)


def is_demo_world(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` declares itself a demo world (holds ``world.json``)."""
    return (Path(directory) / WORLD_FILE).is_file()


def read_world(directory: str | os.PathLike) -> dict:
    """A demo world's ``world.json``: ``variant``, ``n_genes``, ``seed``, ``generator_version``."""
    path = Path(directory) / WORLD_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise DataValidationError(f"{path}: not a demo world's declaration ({type(err).__name__}: {err})") from err


def read_hidden_test(world: str | os.PathLike, test_ids, genes) -> tuple[np.ndarray, np.ndarray]:
    """A demo world's ``test_truth.parquet`` aligned to ``test_ids`` (rows) and ``genes`` (columns), and per
    row whether it is public (listed in ``public_test.csv``)."""
    world = Path(world)
    keys, truth_genes, values = read_wide_truth(world / TRUTH_FILE)
    test_ids = np.asarray(test_ids)
    rows = pd.Index(keys["id"]).get_indexer(test_ids)
    columns = pd.Index(truth_genes).get_indexer(list(genes))
    if (rows < 0).any() or (columns < 0).any():
        raise DataValidationError(f"{world}: {TRUTH_FILE} does not cover the test ids and genes of id_map.csv / de_train")
    return values[np.ix_(rows, columns)], np.isin(test_ids, read_public_ids(world))


def read_public_ids(world: str | os.PathLike) -> np.ndarray:
    """The ids of a demo world's public-leaderboard test rows (its ``public_test.csv``)."""
    public_path = Path(world) / PUBLIC_FILE
    if not public_path.is_file():
        raise DataValidationError(f"{public_path}: file not found (a demo world lists its public-leaderboard rows there)")
    public = pd.read_csv(public_path)
    if "id" not in public.columns:
        raise DataValidationError(f"{public_path}: no 'id' column")
    return public["id"].to_numpy()
