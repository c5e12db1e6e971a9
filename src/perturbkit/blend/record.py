"""The blend record: one type for what ``perturbkit blend`` writes to ``<name>.json`` and what everyone reads.

:class:`BlendRecord` is built by :meth:`BlendResult.record <perturbkit.blend.core.BlendResult.record>`
(then written by ``to_json``) and by :func:`perturbkit.blend.command.read_blend_record` (from the
JSON, after the file-hash checks); the kernel pipeline, ``rank`` and the report use it.

Each member records its weight per test cell type (``weights``); ``weight`` is the weight of any
other cell type (the global weight set), or null when the blend fitted none. The scale is recorded
the same way (``scales``, ``scale``). A test row's prediction is
``clip?(scale[cell_type] * sum_m weights_m[cell_type] * member_m[row])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from perturbkit.errors import PerturbkitError


class BlendRecordError(PerturbkitError, ValueError):
    """A blend record (``<name>.json``) that is unreadable or does not describe the files beside it."""


def _number(value, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BlendRecordError(f"{source}: {what} must be a finite number, got {value!r}")
    return float(value)


def _by_cell_type(values, what: str, source: str) -> dict[str, float]:
    if not isinstance(values, dict):
        raise BlendRecordError(f"{source}: {what} must be a table of cell type -> number, got {values!r}")
    return {str(ct): _number(v, f"{what}[{ct!r}]", source) for ct, v in values.items()}


@dataclass(frozen=True)
class BlendMember:
    name: str
    config: dict
    weights: dict[str, float]  # per test cell type
    weight: float | None = None  # any other cell type; None: the blend fitted no global weights
    model: str | None = None
    run_id: str | None = None
    path: str | None = None
    config_hash: str | None = None
    score: float | None = None

    def weight_of(self, cell_type: str) -> float | None:
        return self.weights.get(cell_type, self.weight)

    @property
    def used(self) -> bool:
        """Whether any cell type gives it a weight > 0."""
        return any(w > 0 for w in [*self.weights.values(), *([self.weight] if self.weight is not None else [])])

    def to_json(self) -> dict:
        return {"name": self.name, "model": self.model, "run_id": self.run_id, "path": self.path, "config": self.config,
                "config_hash": self.config_hash, "score": self.score, "weight": self.weight, "weights": dict(self.weights)}


@dataclass(frozen=True)
class BlendRecord:
    members: tuple[BlendMember, ...]
    scales: dict[str, float] = field(default_factory=dict)  # per test cell type
    scale: float | None = 1.0  # any other cell type
    clip: bool = False
    method: str = "blend"
    data_hash: str | None = None
    folds_hash: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    file_sha256: dict[str, str] = field(default_factory=dict)  # of each file in ``files``: read_blend_record checks them
    name: str = ""
    details: dict = field(default_factory=dict, compare=False)  # the rest of the JSON: scores, search, choice, options

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def cell_types(self) -> list[str]:
        """The cell types with their own weights (the blend's test cell types)."""
        return sorted({ct for m in self.members for ct in m.weights} | set(self.scales))

    def used_members(self) -> list[BlendMember]:
        return [m for m in self.members if m.used]

    def weights_for(self, cell_types) -> tuple[np.ndarray, np.ndarray]:
        """Every row's member weights (rows x members) and scale (rows), by the row's cell type."""
        cell_types = [str(ct) for ct in np.asarray(cell_types, dtype=object)]
        unknown = sorted(ct for ct in set(cell_types)
                         if any(m.weight_of(ct) is None for m in self.members) or self.scales.get(ct, self.scale) is None)
        if unknown:
            raise BlendRecordError(f"the blend has no weights for cell type(s) {unknown}; it has {self.cell_types}")
        columns = {ct: [m.weight_of(ct) for m in self.members] for ct in set(cell_types)}
        weights = np.array([columns[ct] for ct in cell_types], dtype=np.float64).reshape(len(cell_types), len(self.members))
        scale = np.array([self.scales.get(ct, self.scale) for ct in cell_types], dtype=np.float64)
        return weights, scale

    def to_json(self) -> dict:
        return {**self.details, "name": self.name, "members": [m.to_json() for m in self.members], "scales": dict(self.scales),
                "scale": self.scale, "clip": self.clip, "method": self.method, "data_hash": self.data_hash,
                "folds_hash": self.folds_hash, "files": dict(self.files), "file_sha256": dict(self.file_sha256)}

    @classmethod
    def from_json(cls, data: dict, *, source: str = "blend record") -> BlendRecord:
        """The record of a parsed ``<name>.json`` (or a kernel spec): each member needs ``config`` and its weights."""
        if not isinstance(data, dict) or not isinstance(data.get("members"), list) or not data["members"]:
            raise BlendRecordError(f"{source}: not a blend record (no 'members' list)")
        members = []
        for position, entry in enumerate(data["members"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise BlendRecordError(f"{source}: member {position} needs 'config' (the run's full config)")
            if "weights" not in entry and entry.get("weight") is None:
                raise BlendRecordError(f"{source}: member {position} has neither 'weights' per cell type nor a 'weight'")
            config = entry["config"]
            weight = entry.get("weight")
            score = entry.get("score")
            members.append(BlendMember(
                name=str(entry.get("name", config.get("model"))),
                config=config,
                weights=_by_cell_type(entry.get("weights", {}), f"member {position} weights", source),
                weight=None if weight is None else _number(weight, f"member {position} weight", source),
                model=entry.get("model", config.get("model")),
                run_id=entry.get("run_id"),
                path=entry.get("path"),
                config_hash=entry.get("config_hash"),
                score=None if score is None else float(score),
            ))
        scale = data.get("scale", 1.0)
        clip = data.get("clip", False)
        if not isinstance(clip, bool):
            raise BlendRecordError(f"{source}: 'clip' must be true or false, got {clip!r}")
        return cls(
            members=tuple(members),
            scales=_by_cell_type(data.get("scales", {}), "scales", source),
            scale=None if scale is None else _number(scale, "scale", source),
            clip=clip,
            method=str(data.get("method", "blend")),
            data_hash=data.get("data_hash"),
            folds_hash=data.get("folds_hash"),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            file_sha256={str(k): str(v) for k, v in (data.get("file_sha256") or {}).items()},
            name=str(data.get("name", "")),
            details={k: v for k, v in data.items() if k not in TYPED},
        )


TYPED = {"name", "members", "scales", "scale", "clip", "method", "data_hash", "folds_hash", "files", "file_sha256"}
