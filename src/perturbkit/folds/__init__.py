"""Cell-type-aware splitters in scikit-learn's ``BaseCrossValidator`` style, and fold persistence.

The schemes validate only test-like rows, so some rows are never validated: their fold is -1, as
in ``PredefinedSplit``. ``split`` takes the obs frame (``cell_type``, ``sm_name``) as ``X``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator, KFold, PredefinedSplit

from perturbkit.errors import ConfigError
from perturbkit.registry import Registry
from perturbkit.data.layout import LYMPHOID_CELL_TYPES, TEST_CELL_TYPES

NEVER_VALIDATED = -1


class AssignedFolds(BaseCrossValidator):
    """Splitters defined by a per-row fold id (-1: never validated), split as ``PredefinedSplit`` does.

    Subclasses implement ``fold_ids(X)`` and ``n_splits``; ``row_weights(X)`` gives each row's
    weight in the run's overall score (equal by default).
    """

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def row_weights(self, X: pd.DataFrame) -> np.ndarray:
        return np.ones(len(X))

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def _predefined(self, X) -> PredefinedSplit:
        fold_ids = self.fold_ids(X)
        empty = sorted(set(range(self.n_splits)) - set(np.unique(fold_ids)))
        if empty:
            raise ValueError(f"{type(self).__name__}: fold(s) {empty} have no validation rows")
        return PredefinedSplit(fold_ids)

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self._predefined(X).split()


SPLITTERS = Registry("CV scheme")


def register_splitter(name: str, help: str):
    """Register ``factory(test_compounds=..., seed=..., n_splits=...)`` as CV scheme ``name``."""
    return SPLITTERS.register(name, help)


def list_splitters() -> list[str]:
    return SPLITTERS.names()


def splitter_help() -> dict[str, str]:
    return SPLITTERS.help()


def make_splitter(scheme: str, *, test_compounds, seed: int = 0, n_splits: int | None = None) -> AssignedFolds:
    factory = SPLITTERS.get(scheme)
    return factory(test_compounds=tuple(sorted(set(map(str, test_compounds)))), seed=seed, n_splits=n_splits)


def _compound_folds(compounds, n_splits: int, seed: int) -> dict[str, int]:
    """Compounds shuffled with ``seed`` and dealt into ``n_splits`` groups: compound -> fold."""
    shuffled = np.random.default_rng(seed).permutation(np.sort(np.asarray(compounds, dtype=object)))
    return {name: fold for fold, chunk in enumerate(np.array_split(shuffled, n_splits)) for name in chunk}


class LymphoidHoldout(AssignedFolds):
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


class BMHoldout(AssignedFolds):
    """B and Myeloid rows of the compounds that have them, in folds grouped by compound."""

    def __init__(self, n_splits: int = 4, random_state: int = 0, cell_types=TEST_CELL_TYPES):
        self.n_splits = n_splits
        self.random_state = random_state
        self.cell_types = cell_types

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        fold_ids = np.full(len(X), NEVER_VALIDATED, dtype=np.int64)
        in_scope = X["cell_type"].astype(str).isin(set(self.cell_types)).to_numpy()
        compounds = X.loc[in_scope, "sm_name"].astype(str).unique()
        if len(compounds) < self.n_splits:
            raise ConfigError(f"cv.n_splits={self.n_splits}: the data has {len(compounds)} compounds with B/Myeloid rows, "
                              f"fewer than the folds of bm_holdout")
        fold_of = _compound_folds(compounds, self.n_splits, self.random_state)
        names = X["sm_name"].astype(str).to_numpy()
        fold_ids[in_scope] = [fold_of[name] for name in names[in_scope]]
        return fold_ids


class TestLike(AssignedFolds):
    """Both test-shaped validations at once, weighted so the score is mostly B/Myeloid error.

    Fold k validates the k-th lymphoid cell type's rows of the test compounds (``lymphoid_holdout``)
    and the B and Myeloid rows of the k-th group of panel compounds (``bm_holdout``, grouped by
    compound; their lymphoid rows stay in training, as the test compounds' do). The two sets are
    disjoint (panel compounds are not test compounds). Weighting: the B/Myeloid rows together
    carry ``bm_share`` of the overall score (default 0.5) and the lymphoid rows the rest, so the
    34 B/Myeloid rows count as much as the ~510 lymphoid rows: the number tracks the test's cell
    types while the lymphoid rows steady it against the handful of panel compounds.
    """

    def __init__(self, test_compounds, random_state: int = 0, bm_share: float = 0.5,
                 cell_types=LYMPHOID_CELL_TYPES, bm_cell_types=TEST_CELL_TYPES):
        self.test_compounds = test_compounds
        self.random_state = random_state
        self.bm_share = bm_share
        self.cell_types = cell_types
        self.bm_cell_types = bm_cell_types

    @property
    def n_splits(self) -> int:
        return len(self.cell_types)

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        lymphoid = LymphoidHoldout(self.test_compounds, self.cell_types).fold_ids(X)
        bm = BMHoldout(self.n_splits, self.random_state, self.bm_cell_types).fold_ids(X)
        return np.where(bm != NEVER_VALIDATED, bm, lymphoid)

    def row_weights(self, X: pd.DataFrame) -> np.ndarray:
        fold_ids = self.fold_ids(X)
        is_bm = X["cell_type"].astype(str).isin(set(self.bm_cell_types)).to_numpy() & (fold_ids != NEVER_VALIDATED)
        is_lymphoid = ~is_bm & (fold_ids != NEVER_VALIDATED)
        weights = np.ones(len(X))
        weights[is_bm] = self.bm_share / is_bm.sum()
        weights[is_lymphoid] = (1 - self.bm_share) / is_lymphoid.sum()
        return weights * (is_bm | is_lymphoid).sum()  # mean weight 1 over the validated rows


class ShuffledKFold(AssignedFolds):
    """Plain shuffled KFold over all rows; optimistic for this task, for comparison only."""

    def __init__(self, n_splits: int = 5, random_state: int = 0):
        self.n_splits = n_splits
        self.random_state = random_state

    def fold_ids(self, X: pd.DataFrame) -> np.ndarray:
        if self.n_splits > len(X):
            raise ConfigError(f"cv.n_splits={self.n_splits}: more folds than the data's {len(X)} rows")
        fold_ids = np.full(len(X), NEVER_VALIDATED, dtype=np.int64)
        splitter = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
        for fold, (_, valid) in enumerate(splitter.split(np.zeros(len(X)))):
            fold_ids[valid] = fold
        return fold_ids


def _fixed_folds(scheme: str, n_splits: int | None, fixed: int) -> None:
    if n_splits not in (None, fixed):
        raise ConfigError(f"cv.n_splits={n_splits}: scheme {scheme!r} has exactly {fixed} folds (one per lymphoid cell type)")


@register_splitter("lymphoid_holdout", "fold k: one lymphoid cell type x the test compounds")
def _lymphoid_holdout(*, test_compounds, seed, n_splits):
    _fixed_folds("lymphoid_holdout", n_splits, len(LYMPHOID_CELL_TYPES))
    return LymphoidHoldout(test_compounds=test_compounds)


@register_splitter("bm_holdout", "B and Myeloid rows of the panel compounds, folds grouped by compound")
def _bm_holdout(*, test_compounds, seed, n_splits):
    return BMHoldout(n_splits=n_splits or 4, random_state=seed)


@register_splitter("test_like", "lymphoid_holdout + bm_holdout rows in the same 4 folds, B/Myeloid rows weighted to half the score")
def _test_like(*, test_compounds, seed, n_splits):
    _fixed_folds("test_like", n_splits, len(LYMPHOID_CELL_TYPES))
    return TestLike(test_compounds=test_compounds, random_state=seed)


@register_splitter("kfold", "shuffled 5-fold over all rows (optimistic; comparison only)")
def _kfold(*, test_compounds, seed, n_splits):
    return ShuffledKFold(n_splits=n_splits or 5, random_state=seed)


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


def splitter_for(dataset, cv: dict):
    """The splitter a run's ``[cv]`` table names, on this dataset's test compounds."""
    return make_splitter(
        cv["scheme"], test_compounds=dataset.test["sm_name"].astype(str), seed=int(cv["seed"]), n_splits=int(cv.get("n_splits") or 0) or None
    )
