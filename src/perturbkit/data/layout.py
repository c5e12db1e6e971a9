"""The competition's public layout, shipped as package data: pairs, genes, compounds, leaderboard split, cell-type means.

These are public facts about the Kaggle files (no target values); see the README beside them in
``layout/`` for their provenance.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

CELL_TYPES: tuple[str, ...] = (
    "B cells",
    "Myeloid cells",
    "NK cells",
    "T cells CD4+",
    "T cells CD8+",
    "T regulatory cells",
)
LYMPHOID_CELL_TYPES: tuple[str, ...] = ("NK cells", "T cells CD4+", "T cells CD8+", "T regulatory cells")
TEST_CELL_TYPES: tuple[str, ...] = ("B cells", "Myeloid cells")
OBS_COLUMNS: tuple[str, ...] = ("cell_type", "sm_name", "sm_lincs_id", "SMILES", "control")
KEY_COLUMNS: tuple[str, str] = ("cell_type", "sm_name")
COMPETITION = "open-problems-single-cell-perturbations"


def _layout_file(name: str):
    return resources.files("perturbkit.data").joinpath("layout").joinpath(name)


@cache
def train_layout() -> pd.DataFrame:
    """The 614 training pairs in Kaggle's row order, with sm_lincs_id, SMILES and control."""
    with _layout_file("train_layout.csv").open("rb") as fh:
        return pd.read_csv(fh)


@cache
def test_layout() -> pd.DataFrame:
    """Kaggle's id_map.csv: the 255 test pairs."""
    with _layout_file("id_map.csv").open("rb") as fh:
        return pd.read_csv(fh)


@cache
def gene_names() -> tuple[str, ...]:
    """The 18,211 target genes in de_train's column order."""
    return tuple(_layout_file("genes.txt").read_text().split())


@cache
def compounds() -> pd.DataFrame:
    """All compounds with their LINCS id and SMILES."""
    with _layout_file("compounds.csv").open("rb") as fh:
        return pd.read_csv(fh)


@cache
def leaderboard_split() -> pd.DataFrame:
    """Kaggle's public/private leaderboard split of the compounds: ``sm_lincs_id, sm_name, split``.

    ``split`` is ``public`` (50 test compounds, 100 test rows: the public leaderboard), ``private``
    (79, 155 rows: the final ranking) or ``control`` (the 2 positive controls, not in the test).
    """
    with _layout_file("public_private_split.csv").open("rb") as fh:
        return pd.read_csv(fh)


def public_test_rows(test: pd.DataFrame) -> np.ndarray:
    """Per test row (``sm_name`` column), whether Kaggle's public leaderboard scores it: its compound is public."""
    split = leaderboard_split()
    return test["sm_name"].isin(split.loc[split["split"] == "public", "sm_name"]).to_numpy()


@cache
def celltype_means() -> pd.DataFrame:
    """Per gene (index), the mean profile of each cell type (columns), believed to be of the real de_train."""
    with _layout_file("celltype_means.parquet").open("rb") as fh:
        return pd.read_parquet(fh).set_index("gene")


@cache
def nk_per_gene_std() -> pd.Series:
    """Per gene (index, de_train order), the std (ddof 0) of its values over the 146 real NK training rows."""
    with _layout_file("nk_per_gene_std.parquet").open("rb") as fh:
        return pd.read_parquet(fh).set_index("gene")["std"]
