"""The pipeline a kernel runs: re-run each member model on the competition data, combine, write submission.csv.

A :class:`KernelSpec` is what a kernel runs: a :class:`~perturbkit.blend.record.BlendRecord`
(members' configs, weights, scale, clip), checked once when the spec is made, plus where it came
from. The kernel script embeds it as JSON (:meth:`KernelSpec.to_json`)::

    {"competition": "open-problems-single-cell-perturbations",
     "members": [{"model": ..., "run_id": ..., "config": {model, params, features, cv}, "weight": w}, ...],
     "scale": 1.0, "clip": false, "method": "...", "source": "...", "data_hash": ... or null}

and parses it back with :meth:`KernelSpec.from_json`, the one reader of that JSON.

Each member is cross-validated with its own config (:func:`perturbkit.cv.run_cv`): its test
predictions are the mean over folds, or a refit on all rows when the config says ``cv.refit``.
The submission is ``scale * sum_i weight_i * prediction_i`` (:class:`~perturbkit.blend.record.WeightSet`), clipped
to each gene's training range when ``clip`` is set.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perturbkit.blend.record import BlendMember, BlendRecord, BlendRecordError, WeightSet
from perturbkit.data.layout import COMPETITION
from perturbkit.errors import ConfigError

__all__ = ["KernelSpec", "blend_predictions", "kernel_spec", "spec_from_blend", "spec_from_configs",
           "run_pipeline"]

SPEC_FIELDS = ("scale", "clip", "method", "data_hash")


@dataclass(frozen=True)
class KernelSpec:
    """A blend record whose members' configs build, and where it came from. Make one with :meth:`checked`."""

    record: BlendRecord
    source: str = "pipeline spec"
    competition: str = COMPETITION

    @property
    def members(self) -> tuple[BlendMember, ...]:
        return self.record.members

    @classmethod
    def checked(cls, record: BlendRecord, *, source: str = "pipeline spec", competition: str = COMPETITION) -> KernelSpec:
        """The spec of ``record`` after checking every member's model and parameters (by building it)."""
        from perturbkit.models import build_model

        for position, member in enumerate(record.members):
            config = member.config
            missing = [k for k in ("model", "cv") if k not in config]
            if missing:
                raise ConfigError(f"{source}: member {position} config lacks {missing}")
            if member.model not in (None, config["model"]):
                raise ConfigError(f"{source}: member {position} says model {member.model!r} but its config is of {config['model']!r}")
            build_model(config, int(config["cv"].get("seed", 0)))
        spec = cls(record=record, source=source, competition=competition)
        json.dumps(spec.to_json())  # must embed as JSON
        return spec

    @classmethod
    def from_json(cls, data: dict, *, source: str | None = None) -> KernelSpec:
        """The spec of its JSON (as embedded in the kernel script), checked."""
        if source is None:
            source = str(data.get("source", "pipeline spec")) if isinstance(data, dict) else "pipeline spec"
        record = _record(data, source)
        return cls.checked(record, source=source, competition=str(data.get("competition", COMPETITION)))  # a dict: _record refused others

    def to_json(self) -> dict:
        """The weights part of the record (no scores or search history, to keep the script small) and the source."""
        record = self.record.to_json()
        members = [{"model": m["model"], "run_id": m["run_id"], "config": m["config"], "weight": m["weight"]}
                   for m in record["members"]]
        return {"competition": self.competition, "members": members, **{k: record[k] for k in SPEC_FIELDS}, "source": self.source}


def _record(data: dict, source: str) -> BlendRecord:
    try:
        return BlendRecord.from_json(data, source=source)
    except BlendRecordError as exc:
        raise ConfigError(str(exc)) from None


def spec_from_configs(configs: list[dict], *, source: str = "configs") -> KernelSpec:
    """A simple average of the given model configs."""
    if not configs:
        raise ConfigError("a kernel needs at least one model config")
    weight = 1.0 / len(configs)
    members = tuple(BlendMember(name=c["model"], config=c, model=c["model"]) for c in configs)
    weights = WeightSet(weights=(weight,) * len(configs), scale=1.0)
    return KernelSpec.checked(BlendRecord(members=members, weights=weights, method="mean"), source=source)


def kernel_spec(*, blend: Path | str | None = None, models=(), config_paths=(), configs_dir: Path = Path("configs"),
                overrides=(), refit: bool = False) -> KernelSpec:
    """The spec of a blend record, or the simple average of models (``configs/<model>.toml``) and config files.

    ``overrides`` (``--set``) apply to every model and config; ``refit`` makes each member predict the test rows
    from a refit on all rows (a config's own ``cv.refit = true`` stays).
    """
    from perturbkit.config import load_config, read_toml

    if blend and (models or config_paths):
        raise ConfigError("give either --blend or --model/--config, not both")
    if blend:
        return spec_from_blend(blend)
    configs = [load_config(m, configs_dir=configs_dir, overrides=overrides) for m in models]
    for path in map(Path, config_paths):
        model = read_toml(path).get("model") if path.is_file() else None
        if not model:
            raise ConfigError(f"{path}: config file not found or without a 'model' key")
        configs.append(load_config(model, config_path=path, configs_dir=configs_dir, overrides=overrides))
    if not configs:
        raise ConfigError("name the kernel's models (--model, --config) or a blend result (--blend submissions/<name>.json)")
    for config in configs:
        config["cv"]["refit"] = bool(config["cv"].get("refit")) or refit
    return spec_from_configs(configs, source=", ".join([*models, *map(str, config_paths)]))


def spec_from_blend(blend: BlendRecord | dict | str | Path) -> KernelSpec:
    """The spec of a blend (its record, or ``submissions/<name>/blend.json``): members' configs, weights, scale, clip."""
    source = "blend"
    if isinstance(blend, (str, Path)):
        from perturbkit.blend.record import read_blend_record

        source, blend = str(blend), read_blend_record(blend)
    elif isinstance(blend, dict):
        blend = _record(blend, source)
    return KernelSpec.checked(blend, source=source)


def blend_predictions(predictions, record: BlendRecord, *, clip_range: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The blend's formula (``perturbkit.blend.fit.weighted_sum``) with the record's weights, then the optional clip."""
    from perturbkit.blend.fit import weighted_sum

    weights = record.weights.weights
    if len(predictions) != len(weights):
        raise ValueError(f"{len(predictions)} predictions but {len(weights)} members")
    matrix = weighted_sum(np.stack([np.asarray(p, dtype=np.float32) for p in predictions]), np.asarray(weights), record.weights.scale)
    return np.clip(matrix, *clip_range, out=matrix) if clip_range is not None else matrix


def run_pipeline(spec: KernelSpec, data_dir: Path | str, output: Path | str, *, progress: bool = False, log=print) -> Path:
    """Run every member on ``data_dir`` (Kaggle layout), combine them, write and check ``output``."""
    from perturbkit.cv import run_cv, summary_text
    from perturbkit.data import load_dataset
    from perturbkit.models import feature_requirements
    from perturbkit.submit import read_submission
    from perturbkit.submit.write import write_submission_csv

    started = time.perf_counter()
    dataset = load_dataset(data_dir, require_smiles=any(feature_requirements(m.config)[0] for m in spec.members))
    log(f"data {data_dir}: {len(dataset.obs)} training rows x {dataset.n_genes} genes, {len(dataset.test)} test rows, hash {dataset.data_hash}")
    blend_hash = spec.record.data_hash
    if blend_hash:
        same = blend_hash == dataset.data_hash
        log("data hash matches the blend's" if same else f"note: the blend was fitted on other data (hash {blend_hash})")
    predictions = []
    for position, member in enumerate(spec.members):
        config = member.config
        label = f"[{position + 1}/{len(spec.members)}] {config['model']}"
        if not spec.record.weights.used(position):
            # Weight 0: its term is 0 whatever it predicts, so zeros give the same sum, bit for bit.
            log(f"{label} (weight 0): not fitted, it adds nothing to the blend")
            predictions.append(np.zeros((len(dataset.test), dataset.n_genes), dtype=np.float32))
            continue
        mode = "refit on all rows" if config["cv"].get("refit") else "mean over folds"
        log(f"{label} (weight {spec.record.weights.weights[position]:.4g}, test predictions: {mode})")
        result = run_cv(dataset, config, progress=progress)
        log(summary_text(result.meta))
        predictions.append(result.test)
    clip_range = (dataset.targets.min(axis=0), dataset.targets.max(axis=0)) if spec.record.clip else None
    matrix = blend_predictions(predictions, spec.record, clip_range=clip_range)
    ids = dataset.test["id"].to_numpy()
    template = Path(data_dir) / "sample_submission.csv"
    path = write_submission_csv(output, ids, dataset.genes, matrix, template=template if template.is_file() else None)
    read_submission(path, genes=list(dataset.genes), ids=ids)  # the file reads back as a valid submission
    log(f"wrote {path}: {len(ids)} rows x {dataset.n_genes} genes in {time.perf_counter() - started:.1f} s")
    return path
