"""Write a demo world: Kaggle's file set for the real layout, its values drawn by :mod:`.model`."""

from __future__ import annotations

import csv
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from perturbkit.data.demo.model import simulate, world_compounds
from perturbkit.data.demo.variants import DEFAULT_VARIANT, get_variant
from perturbkit.data.hidden import PUBLIC_FILE, TRUTH_FILE, WORLD_FILE
from perturbkit.data.layout import CELL_TYPES, gene_names, public_test_rows, test_layout, train_layout
from perturbkit.data.wide import wide_table
from perturbkit.errors import ConfigError

GENERATOR_VERSION = 5  # 5: private test compounds the more potent (4: Kaggle's split; 3: a random quarter public)
DEMO_FILES: tuple[str, ...] = ("de_train.parquet", "id_map.csv", "sample_submission.csv", TRUTH_FILE, PUBLIC_FILE, WORLD_FILE)


def check_gene_count(n_genes: int | None) -> int | None:
    """``n_genes`` if a demo world can have that many genes (None: all of them); else a :class:`ConfigError`."""
    total = len(gene_names())
    if n_genes is not None and not 1 <= n_genes <= total:
        raise ConfigError(f"{n_genes} genes: a demo world has between 1 and {total} genes")
    return n_genes


def gene_indices(n_genes: int | None) -> np.ndarray:
    """Indices into ``gene_names()`` of a world's genes (None: all)."""
    total = len(gene_names())
    if check_gene_count(n_genes) is None:
        return np.arange(total)
    # Evenly spaced over the alphabetical list, so small worlds keep alphabetical order.
    return np.linspace(0, total - 1, n_genes).round().astype(int)


def _pair_rows(
    layout: pd.DataFrame, cell_index: dict[str, int], compound_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    return (
        layout["cell_type"].map(cell_index).to_numpy(),
        layout["sm_name"].map(compound_index).to_numpy(),
    )


def generate_demo(
    out_dir: str | os.PathLike, n_genes: int | None = None, seed: int = 0, *, variant: str = DEFAULT_VARIANT
) -> Path:
    """Write Kaggle's file set for a demo world into ``out_dir`` (created or overwritten) and return it.

    Files: ``de_train.parquet`` (the 614 real training pairs), ``id_map.csv`` (Kaggle's own),
    ``sample_submission.csv`` (zeros), ``test_truth.parquet`` (the hidden truth of the 255 test
    rows, float32), ``public_test.csv`` (the ids of the public-leaderboard rows: the 100 test rows of
    the 50 public compounds of Kaggle's split; the other 155 are the private rows) and ``world.json``
    (the world's parameters: it declares the folder a demo world). ``n_genes`` keeps that many evenly spaced genes (alphabetical order) instead of
    all 18,211; ``variant`` names the world's structure (:func:`list_variants`). The same
    ``(variant, n_genes, seed)`` always gives the same values. An unknown variant writes nothing.
    """
    parameters = get_variant(variant)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gene_idx = gene_indices(n_genes)
    genes = [gene_names()[i] for i in gene_idx]
    values = simulate(gene_idx, seed, parameters)

    cell_index = {cell_type: k for k, cell_type in enumerate(CELL_TYPES)}
    compound_index = {name: c for c, name in enumerate(world_compounds()["sm_name"])}
    train, test = train_layout(), test_layout()
    train_values = values[_pair_rows(train, cell_index, compound_index)]
    test_values = values[_pair_rows(test, cell_index, compound_index)]

    _write_table(train, train_values.astype(np.float64), genes, out_dir / "de_train.parquet")
    _write_table(test, test_values, genes, out_dir / TRUTH_FILE)
    (out_dir / "id_map.csv").write_bytes(
        resources.files("perturbkit.data").joinpath("layout", "id_map.csv").read_bytes()
    )
    _write_zero_submission(test["id"], genes, out_dir / "sample_submission.csv")
    test.loc[public_test_rows(test), ["id"]].to_csv(out_dir / PUBLIC_FILE, index=False)
    world = {"variant": variant, "n_genes": len(genes), "seed": seed, "generator_version": GENERATOR_VERSION}
    (out_dir / WORLD_FILE).write_text(json.dumps(world, indent=2) + "\n")
    return out_dir


def _write_table(obs: pd.DataFrame, values: np.ndarray, genes: list[str], path: Path) -> None:
    table = wide_table(obs, genes, values, dtype=values.dtype)
    # With 18k float columns, dictionary pages and column statistics only cost write time.
    pq.write_table(table, path, use_dictionary=False, write_statistics=False)


def _write_zero_submission(ids: pd.Series, genes: list[str], path: Path) -> None:
    zeros = ",0.0" * len(genes)
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow(["id", *genes])
        fh.writelines(f"{i}{zeros}\n" for i in ids)

