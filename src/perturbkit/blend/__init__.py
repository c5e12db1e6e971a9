"""Blending stored OOF runs: weights tuned on MRRMSE, honest nested scores, submissions.

``load_members`` aligns runs by key and refuses incompatible ones; ``blend_members`` searches
the weights (optuna, slsqp or caruana, one :class:`SearchResult` type) on per-row Gram
matrices, scores the blend in-sample and nested, and predicts the test rows; ``write_blend``
writes ``<name>.csv``, ``<name>.h5ad`` and ``<name>.json`` (the record, written last, listing the
files' hashes) under the submissions folder and ``read_blend_record`` checks them on reading.
"""

from __future__ import annotations

from perturbkit.blend.record import read_blend_record, write_blend
from perturbkit.blend.core import BlendOptions, BlendResult, Fit, blend_members, fit_weights
from perturbkit.blend.members import (
    GROUPS,
    BlendError,
    IncompatibleRunsError,
    Members,
    cell_group,
    load_members,
    member_names,
    select_runs,
)
from perturbkit.blend.objective import gram_matrices, row_rmse, score
from perturbkit.blend.search import SearchResult, list_blend_methods, register_blend_method, search, weights_from_uniform
from perturbkit.data import Dataset

__all__ = [
    "GROUPS",
    "BlendError",
    "BlendOptions",
    "BlendResult",
    "Fit",
    "IncompatibleRunsError",
    "Members",
    "SearchResult",
    "blend_members",
    "blend_runs",
    "cell_group",
    "fit_weights",
    "gram_matrices",
    "list_blend_methods",
    "read_blend_record",
    "load_members",
    "member_names",
    "register_blend_method",
    "row_rmse",
    "score",
    "search",
    "select_runs",
    "weights_from_uniform",
    "write_blend",
]


def blend_runs(paths, dataset: Dataset, options: BlendOptions | None = None, *, progress=None) -> BlendResult:
    """Load, check and align the runs at ``paths`` on ``dataset``, then fit and score their blend."""
    return blend_members(load_members(paths, dataset), dataset, options or BlendOptions(), progress=progress)
