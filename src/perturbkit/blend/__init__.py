"""Blending stored OOF runs: weights tuned on MRRMSE, honest nested scores, submissions.

The modules, each importing only those listed before it:
``objective`` (Gram matrices), ``members`` (runs loaded, aligned, chosen), ``choice`` (never worse than
the simple average or the best member), ``search`` (the weight searches), ``options``, ``record``
(the record's one JSON), ``leaderboard``, ``fit``, ``nested`` (the nested choice), ``result``
(:func:`blend_members`), ``table``, ``files`` (the set ``<submissions>/<name>/blend.csv|h5ad|json``
replaced as a whole), ``command`` (``perturbkit blend``).
"""

from __future__ import annotations

from perturbkit.blend.files import SetOwnedError, check_name, write_blend
from perturbkit.blend.fit import Fit, fit_weights
from perturbkit.blend.members import BlendError, IncompatibleRunsError, Members, load_members, member_names, select_runs
from perturbkit.blend.objective import gram_matrices, row_rmse, score
from perturbkit.blend.options import BlendOptions
from perturbkit.blend.record import read_blend_record
from perturbkit.blend.result import BlendResult, blend_members
from perturbkit.blend.search import SearchResult, list_blend_methods, register_blend_method, search, weights_from_uniform
from perturbkit.blend.table import blend_table
from perturbkit.data import Dataset

__all__ = [
    "BlendError",
    "BlendOptions",
    "BlendResult",
    "Fit",
    "IncompatibleRunsError",
    "Members",
    "SearchResult",
    "SetOwnedError",
    "blend_members",
    "blend_runs",
    "blend_table",
    "check_name",
    "fit_weights",
    "gram_matrices",
    "list_blend_methods",
    "load_members",
    "member_names",
    "read_blend_record",
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
