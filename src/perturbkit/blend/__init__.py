"""Blending stored OOF runs: weights tuned on MRRMSE, honest nested scores, submissions.

``load_members`` aligns runs by key and refuses incompatible ones; ``blend_members`` searches
the weights (optuna, slsqp or caruana, one :class:`SearchResult` type) on per-row Gram
matrices, scores the blend in-sample and nested, and predicts the test rows; ``write_blend``
writes ``<name>.csv``, ``<name>.h5ad`` and ``<name>.json`` under the submissions folder.
"""

from __future__ import annotations

from pathlib import Path

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


def write_blend(result: BlendResult, dataset: Dataset, out_dir: Path | str, name: str, *, dataset_id: str,
                method_id: str | None = None, h5ad: bool = True) -> dict[str, Path]:
    """``<out_dir>/<name>.csv`` (Kaggle), ``.h5ad`` (openproblems) and ``.json`` (the blend's record).

    The CSV follows ``sample_submission.csv`` when the data directory has one; every file is
    read back with the checks of ``perturbkit score`` before the JSON is written.
    """
    from perturbkit.submit import read_submission
    from perturbkit.submit.write import write_json, write_prediction_h5ad, write_submission_csv

    out_dir = Path(out_dir)
    template = Path(dataset.source) / "sample_submission.csv"
    ids, genes = result.members.test_ids, result.members.genes
    files = {"csv": write_submission_csv(out_dir / f"{name}.csv", ids, genes, result.test,
                                         template=template if template.is_file() else None)}
    if h5ad:
        files["h5ad"] = write_prediction_h5ad(out_dir / f"{name}.h5ad", ids, genes, result.test,
                                              dataset_id=dataset_id, method_id=method_id or f"perturbkit_{name}")
    for path in files.values():
        read_submission(path, genes=genes, ids=ids)
    record = result.to_json(name=name, files={k: str(v) for k, v in files.items()}, dataset=dataset)
    record["template"] = str(template) if template.is_file() else None
    files["json"] = write_json(out_dir / f"{name}.json", record)
    return files
