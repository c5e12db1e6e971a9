"""Cell-type-aware splitters in scikit-learn's ``BaseCrossValidator`` style, and fold persistence.

The schemes validate only test-like rows, so some rows are never validated: their fold is -1, as
in ``PredefinedSplit``. ``split`` takes the obs frame (``cell_type``, ``sm_name``) as ``X``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator, KFold

from perturbkit.errors import ConfigError
from perturbkit.data.layout import LYMPHOID_CELL_TYPES, TEST_CELL_TYPES

NEVER_VALIDATED = -1


class _AssignedFolds(BaseCrossValidator):
    """Splitters defined by a per-row fold id; training rows of a fold are all rows not validated in it."""

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:
        fold_ids = self.fold_ids(X)
        for fold in range(self.n_splits):
            yield np.flatnonzero(fold_ids == fold)

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        fold_ids = self.fold_ids(X)
        for fold in range(self.n_splits):
            yield np.flatnonzero(fold_ids != fold), np.flatnonzero(fold_ids == fold)


class LymphoidHoldout(_AssignedFolds):
    """Fold k validates one lymphoid cell type's rows of the test compounds.

    Like the test: the cell type is seen for other compounds, the compound in other cell types.
    """

    def __init__(self, test_compounds, cell_types=LYMPHOID_CELL_TYPES):
        self.test_compounds = test_compounds
        self.cell_types = cell_types

    @property
    def n_splits(self) -> int:
        return len(self.cell_types)

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        fold_ids = np.full(len(X), NEVER_VALIDATED, dtype=np.int64)
        is_test_compound = X["sm_name"].astype(str).isin(set(self.test_compounds)).to_numpy()
        cell_type = X["cell_type"].astype(str).to_numpy()
        for fold, name in enumerate(self.cell_types):
            fold_ids[is_test_compound & (cell_type == name)] = fold
        return fold_ids


class BMHoldout(_AssignedFolds):
    """B and Myeloid rows of the compounds that have them, in folds grouped by compound."""

    def __init__(self, n_splits: int = 4, random_state: int = 0, cell_types=TEST_CELL_TYPES):
        self.n_splits = n_splits
        self.random_state = random_state
        self.cell_types = cell_types

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        fold_ids = np.full(len(X), NEVER_VALIDATED, dtype=np.int64)
        in_scope = X["cell_type"].astype(str).isin(set(self.cell_types)).to_numpy()
        compounds = np.sort(X.loc[in_scope, "sm_name"].astype(str).unique())
        if len(compounds) < self.n_splits:
            raise ValueError(f"bm_holdout: {len(compounds)} compounds with B/Myeloid rows, fewer than {self.n_splits} folds")
        shuffled = np.random.default_rng(self.random_state).permutation(compounds)
        fold_of = {name: fold for fold, chunk in enumerate(np.array_split(shuffled, self.n_splits)) for name in chunk}
        names = X["sm_name"].astype(str).to_numpy()
        for position in np.flatnonzero(in_scope):
            fold_ids[position] = fold_of[names[position]]
        return fold_ids


class ShuffledKFold(_AssignedFolds):
    """Plain shuffled KFold over all rows; optimistic for this task, for comparison only."""

    def __init__(self, n_splits: int = 5, random_state: int = 0):
        self.n_splits = n_splits
        self.random_state = random_state

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        fold_ids = np.full(len(X), NEVER_VALIDATED, dtype=np.int64)
        splitter = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
        for fold, (_, valid) in enumerate(splitter.split(np.zeros(len(X)))):
            fold_ids[valid] = fold
        return fold_ids


SCHEMES = ("lymphoid_holdout", "bm_holdout", "kfold")


def make_splitter(scheme: str, *, test_compounds, seed: int = 0, n_splits: int | None = None) -> _AssignedFolds:
    if scheme == "lymphoid_holdout":
        return LymphoidHoldout(test_compounds=tuple(sorted(set(test_compounds))))
    if scheme == "bm_holdout":
        return BMHoldout(n_splits=n_splits or 4, random_state=seed)
    if scheme == "kfold":
        return ShuffledKFold(n_splits=n_splits or 5, random_state=seed)
    raise ConfigError(f"unknown CV scheme {scheme!r}; known: {list(SCHEMES)}")


def folds_frame(obs: pd.DataFrame, fold_ids: np.ndarray) -> pd.DataFrame:
    """The persisted fold assignment: one row per training row, keyed by (cell_type, sm_name)."""
    return pd.DataFrame(
        {
            "cell_type": obs["cell_type"].astype(str).to_numpy(),
            "sm_name": obs["sm_name"].astype(str).to_numpy(),
            "fold": np.asarray(fold_ids, dtype=np.int64),
        }
    )


def folds_hash(folds: pd.DataFrame) -> str:
    ordered = folds.sort_values(["cell_type", "sm_name"], kind="stable")
    return hashlib.blake2b(ordered.to_csv(index=False).encode(), digest_size=16).hexdigest()
