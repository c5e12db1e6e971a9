"""Helpers shared by several test files: leakage folds and sentinels, report tables."""

from __future__ import annotations

import pandas as pd

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


def markdown_table(markdown: str, heading: str) -> pd.DataFrame:
    """The first table under ``## heading`` of a report page, as strings, indexed by its first column."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    return pd.DataFrame(rows[2:], columns=rows[0]).set_index(rows[0][0])
