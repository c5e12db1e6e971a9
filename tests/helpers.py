"""Helpers shared by the leakage tests of several model families."""

from __future__ import annotations

from perturbkit.folds import make_splitter


def lymphoid_fold(dataset, fold=0):
    """(train_idx, valid_idx) of one lymphoid_holdout fold."""
    splitter = make_splitter("lymphoid_holdout", test_compounds=dataset.test["sm_name"].astype(str))
    return list(splitter.split(dataset.obs))[fold]


def with_sentinel(targets, row):
    """A copy of the targets with a huge value planted in one row."""
    planted = targets.copy()
    planted[row] = 1e6
    return planted
