"""The pipeline a kernel runs: re-run each member model on the competition data, combine, write submission.csv.

A *pipeline spec* is a plain JSON-able dict, embedded in the kernel script::

    {"competition": "open-problems-single-cell-perturbations",
     "members": [{"model": ..., "run_id": ..., "config": {model, params, features, cv}, "weight": w}, ...],
     "scale": 1.0, "clip": false, "method": "...", "source": "...", "data_hash": ... or null}

Each member is cross-validated with its own config (:func:`perturbkit.cv.run_cv`): its test
predictions are the mean over folds, or a refit on all rows when the config says ``cv.refit``.
The submission is ``scale * sum_i weight_i * prediction_i``, clipped to each gene's training
range when ``clip`` is set.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from perturbkit.data.layout import COMPETITION
from perturbkit.errors import ConfigError

__all__ = ["combine", "spec_from_blend", "spec_from_configs", "validate_spec", "run_pipeline", "write_submission"]


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
        path = Path(blend)
        if not path.is_file():
            raise ConfigError(f"{path}: blend result not found")
        try:
            blend = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not JSON ({exc})") from exc
        source = str(path)
    members = blend.get("members")
    if not isinstance(members, list) or not members:
        raise ConfigError(f"{source}: blend result has no 'members' list")
    spec_members = []
    for position, member in enumerate(members):
        if not isinstance(member, dict) or not isinstance(member.get("config"), dict) or "weight" not in member:
            raise ConfigError(f"{source}: member {position} needs 'config' (the run's full config) and 'weight'")
        config = member["config"]
        spec_members.append(
            {"model": member.get("model", config.get("model")), "run_id": member.get("run_id"), "config": config, "weight": member["weight"]}
        )
    return validate_spec(
        {
            "competition": COMPETITION,
            "members": spec_members,
            "scale": blend.get("scale", 1.0),
            "clip": blend.get("clip", False),
            "method": blend.get("method", "blend"),
            "source": source,
            "data_hash": blend.get("data_hash"),
        },
        source=source,
    )


def validate_spec(spec: dict, *, source: str = "pipeline spec") -> dict:
    """Check the spec's shape and every member's model and parameters (by building it)."""
    from perturbkit.cv import build_model

    for position, member in enumerate(spec["members"]):
        config, weight = member["config"], member["weight"]
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight):
            raise ConfigError(f"{source}: member {position} has a non-numeric or non-finite weight {weight!r}")
        missing = [k for k in ("model", "cv") if k not in config]
        if missing:
            raise ConfigError(f"{source}: member {position} config lacks {missing}")
        if member.get("model") not in (None, config["model"]):
            raise ConfigError(f"{source}: member {position} says model {member['model']!r} but its config is of {config['model']!r}")
        build_model(config, int(config["cv"].get("seed", 0)))
    scale = spec.get("scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale):
        raise ConfigError(f"{source}: 'scale' must be a finite number, got {scale!r}")
    if not isinstance(spec.get("clip", False), bool):
        raise ConfigError(f"{source}: 'clip' must be true or false, got {spec.get('clip')!r}")
    json.dumps(spec)  # must embed as JSON
    return spec


def combine(predictions, weights, *, scale: float = 1.0, clip_range: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``scale * sum_i weights[i] * predictions[i]``, optionally clipped per gene to ``clip_range`` (lo, hi)."""
    if len(predictions) != len(weights) or not predictions:
        raise ValueError(f"{len(predictions)} predictions but {len(weights)} weights")
    total = np.zeros_like(np.asarray(predictions[0], dtype=np.float64))
    for prediction, weight in zip(predictions, weights):
        prediction = np.asarray(prediction, dtype=np.float64)
        if prediction.shape != total.shape:
            raise ValueError(f"prediction shapes differ: {prediction.shape} vs {total.shape}")
        total += float(weight) * prediction
    total *= float(scale)
    if clip_range is not None:
        total = np.clip(total, clip_range[0], clip_range[1])
    return total.astype(np.float32)


def write_submission(path: Path | str, ids, genes, matrix: np.ndarray) -> Path:
    """Kaggle's layout: ``id`` then one column per gene, in the given orders."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(matrix, dtype=np.float32)
    columns = [pa.array(np.asarray(ids, dtype=np.int64))] + [pa.array(matrix[:, j]) for j in range(matrix.shape[1])]
    table = pa.Table.from_arrays(columns, names=["id", *genes])
    partial = path.with_name(f".{path.name}.partial")
    pacsv.write_csv(table, partial)
    partial.replace(path)
    return path


def run_pipeline(spec: dict, data_dir: Path | str, output: Path | str, *, work_dir: Path | str | None = None, progress: bool = False, log=print) -> Path:
    """Run every member on ``data_dir`` (Kaggle layout), combine them, write and check ``output``."""
    from perturbkit.cv import run_cv, summary_text
    from perturbkit.data import load_dataset
    from perturbkit.submit import read_submission

    validate_spec(spec)
    started = time.perf_counter()
    chemistry = any(m["config"].get("features", {}).get("chemistry") for m in spec["members"])
    dataset = load_dataset(data_dir, require_smiles=bool(chemistry))
    log(f"data {data_dir}: {len(dataset.obs)} training rows x {dataset.n_genes} genes, {len(dataset.test)} test rows, hash {dataset.data_hash}")
    if spec.get("data_hash"):
        same = spec["data_hash"] == dataset.data_hash
        log("data hash matches the blend's" if same else f"note: the blend was fitted on other data (hash {spec['data_hash']})")
    work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="perturbkit-runs-"))
    predictions = []
    for position, member in enumerate(spec["members"]):
        config = member["config"]
        mode = "refit on all rows" if config["cv"].get("refit") else "mean over folds"
        log(f"[{position + 1}/{len(spec['members'])}] {config['model']} (weight {member['weight']:.4g}, test predictions: {mode})")
        result = run_cv(dataset, config, oof_root=work_dir, progress=progress)
        log(summary_text(result.meta))
        predictions.append(result.test)
    clip_range = (dataset.targets.min(axis=0), dataset.targets.max(axis=0)) if spec.get("clip") else None
    matrix = combine(predictions, [m["weight"] for m in spec["members"]], scale=spec.get("scale", 1.0), clip_range=clip_range)
    ids = dataset.test["id"].to_numpy()
    path = write_submission(output, ids, dataset.genes, matrix)
    read_submission(path, genes=list(dataset.genes), ids=ids)  # the file reads back as a valid submission
    log(f"wrote {path}: {len(ids)} rows x {dataset.n_genes} genes in {time.perf_counter() - started:.1f} s")
    return path
