"""The pipeline a kernel runs: re-run each member model on the competition data, combine, write submission.csv.

A *pipeline spec* is a plain JSON-able dict, embedded in the kernel script::

    {"competition": "open-problems-single-cell-perturbations",
     "members": [{"model": ..., "run_id": ..., "config": {model, params, features, cv}, "weight": w}, ...],
     "scale": 1.0, "clip": false, "method": "...", "source": "...", "data_hash": ... or null}

Each member is cross-validated with its own config (:func:`perturbkit.cv.run_cv`): its test
predictions are the mean over folds, or a refit on all rows when the config says ``cv.refit``.
The submission is ``scale * sum_i weight_i * prediction_i``, clipped to each gene's training
range when ``clip`` is set. A per-cell-type blend (the blender's ``per_celltype``) adds
``weight_by_cell_type`` to members and ``scale_by_cell_type`` to the spec: each test row then
takes the weights and scale of its cell type.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from perturbkit.data.layout import COMPETITION
from perturbkit.errors import ConfigError

__all__ = ["combine", "row_weights", "spec_from_blend", "spec_from_configs", "validate_spec", "run_pipeline"]


def spec_from_configs(configs: list[dict], *, source: str = "configs") -> dict:
    """A simple average of the given model configs."""
    if not configs:
        raise ConfigError("a kernel needs at least one model config")
    weight = 1.0 / len(configs)
    members = [{"model": c["model"], "run_id": None, "config": c, "weight": weight} for c in configs]
    return validate_spec(
        {"competition": COMPETITION, "members": members, "scale": 1.0, "clip": False, "method": "mean", "source": source, "data_hash": None}
    )


def spec_from_blend(blend: dict | str | Path) -> dict:
    """The spec of a blend result (``submissions/<name>.json``): its members' configs and weights, scale, clip."""
    source = "blend"
    if not isinstance(blend, dict):
        from perturbkit.blend.command import read_blend_record

        source = str(blend)
        blend = read_blend_record(blend)
    members = blend.get("members")
    if not isinstance(members, list) or not members:
        raise ConfigError(f"{source}: blend result has no 'members' list")
    spec_members = []
    for position, member in enumerate(members):
        if not isinstance(member, dict) or not isinstance(member.get("config"), dict) or "weight" not in member:
            raise ConfigError(f"{source}: member {position} needs 'config' (the run's full config) and 'weight'")
        config = member["config"]
        entry = {"model": member.get("model", config.get("model")), "run_id": member.get("run_id"), "config": config, "weight": member["weight"]}
        if member.get("weight_by_cell_type"):
            entry["weight_by_cell_type"] = dict(member["weight_by_cell_type"])
        spec_members.append(entry)
    scale = blend.get("scale", 1.0)
    by_cell_type = dict(blend.get("scale_by_cell_type") or {})
    if isinstance(scale, dict):  # one scale per cell group: applied per test cell type
        if not by_cell_type:
            raise ConfigError(f"{source}: 'scale' is per group but there is no 'scale_by_cell_type'")
        scale = 1.0
    elif not any("weight_by_cell_type" in m for m in spec_members):
        by_cell_type = {}  # a global blend: the global scale says it all
    return validate_spec(
        {
            "competition": COMPETITION,
            "members": spec_members,
            "scale": scale,
            "scale_by_cell_type": by_cell_type,
            "clip": blend.get("clip", False),
            "method": blend.get("method", "blend"),
            "source": source,
            "data_hash": blend.get("data_hash"),
        },
        source=source,
    )


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def row_weights(spec: dict, cell_types) -> tuple[np.ndarray, np.ndarray]:
    """Every test row's member weights (rows x members: its cell type's, else the member's) and scale."""
    cell_types = np.asarray(cell_types, dtype=object).astype(str)
    weights = np.array(
        [[m.get("weight_by_cell_type", {}).get(ct, m["weight"]) for m in spec["members"]] for ct in cell_types],
        dtype=np.float64,
    ).reshape(len(cell_types), len(spec["members"]))
    by_cell_type = spec.get("scale_by_cell_type", {})
    scale = np.array([by_cell_type.get(ct, spec.get("scale", 1.0)) for ct in cell_types], dtype=np.float64)
    return weights, scale


def validate_spec(spec: dict, *, source: str = "pipeline spec") -> dict:
    """Check the spec's shape and every member's model and parameters (by building it)."""
    from perturbkit.cv import build_model

    for position, member in enumerate(spec["members"]):
        config, weight = member["config"], member["weight"]
        if not _finite(weight):
            raise ConfigError(f"{source}: member {position} has a non-numeric or non-finite weight {weight!r}")
        missing = [k for k in ("model", "cv") if k not in config]
        if missing:
            raise ConfigError(f"{source}: member {position} config lacks {missing}")
        if member.get("model") not in (None, config["model"]):
            raise ConfigError(f"{source}: member {position} says model {member['model']!r} but its config is of {config['model']!r}")
        build_model(config, int(config["cv"].get("seed", 0)))
        for cell_type, value in member.get("weight_by_cell_type", {}).items():
            if not _finite(value):
                raise ConfigError(f"{source}: member {position} has a non-numeric or non-finite weight {value!r} for {cell_type!r}")
    scale = spec.get("scale", 1.0)
    if not _finite(scale):
        raise ConfigError(f"{source}: 'scale' must be a finite number, got {scale!r}")
    for cell_type, value in spec.get("scale_by_cell_type", {}).items():
        if not _finite(value):
            raise ConfigError(f"{source}: scale_by_cell_type[{cell_type!r}] must be a finite number, got {value!r}")
    if not isinstance(spec.get("clip", False), bool):
        raise ConfigError(f"{source}: 'clip' must be true or false, got {spec.get('clip')!r}")
    json.dumps(spec)  # must embed as JSON
    return spec


def combine(predictions, spec: dict, cell_types, *, clip_range: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The blend's formula (``perturbkit.blend.core.combine``) with the spec's weights, then the optional clip."""
    from perturbkit.blend.core import combine as blend_combine

    weights, scale = row_weights(spec, cell_types)
    if len(predictions) != weights.shape[1]:
        raise ValueError(f"{len(predictions)} predictions but {weights.shape[1]} members")
    matrix = blend_combine(np.stack([np.asarray(p, dtype=np.float32) for p in predictions]), weights, scale)
    return np.clip(matrix, *clip_range, out=matrix) if clip_range is not None else matrix


def run_pipeline(spec: dict, data_dir: Path | str, output: Path | str, *, progress: bool = False, log=print) -> Path:
    """Run every member on ``data_dir`` (Kaggle layout), combine them, write and check ``output``."""
    from perturbkit.cv import run_cv, summary_text
    from perturbkit.data import load_dataset
    from perturbkit.features import feature_requirements
    from perturbkit.submit import read_submission
    from perturbkit.submit.write import write_submission_csv

    validate_spec(spec)
    started = time.perf_counter()
    dataset = load_dataset(data_dir, require_smiles=any(feature_requirements(m["config"])[0] for m in spec["members"]))
    log(f"data {data_dir}: {len(dataset.obs)} training rows x {dataset.n_genes} genes, {len(dataset.test)} test rows, hash {dataset.data_hash}")
    if spec.get("data_hash"):
        same = spec["data_hash"] == dataset.data_hash
        log("data hash matches the blend's" if same else f"note: the blend was fitted on other data (hash {spec['data_hash']})")
    predictions = []
    for position, member in enumerate(spec["members"]):
        config = member["config"]
        mode = "refit on all rows" if config["cv"].get("refit") else "mean over folds"
        log(f"[{position + 1}/{len(spec['members'])}] {config['model']} (weight {member['weight']:.4g}, test predictions: {mode})")
        result = run_cv(dataset, config, progress=progress)
        log(summary_text(result.meta))
        predictions.append(result.test)
    clip_range = (dataset.targets.min(axis=0), dataset.targets.max(axis=0)) if spec.get("clip") else None
    matrix = combine(predictions, spec, dataset.test["cell_type"], clip_range=clip_range)
    ids = dataset.test["id"].to_numpy()
    template = Path(data_dir) / "sample_submission.csv"
    path = write_submission_csv(output, ids, dataset.genes, matrix, template=template if template.is_file() else None)
    read_submission(path, genes=list(dataset.genes), ids=ids)  # the file reads back as a valid submission
    log(f"wrote {path}: {len(ids)} rows x {dataset.n_genes} genes in {time.perf_counter() - started:.1f} s")
    return path
