"""The blend record: one type for what a blend writes to ``blend.json`` and what everyone reads.

:class:`BlendRecord` is built by :meth:`BlendResult.record <perturbkit.blend.result.BlendResult.record>`
and by :func:`read_blend_record` (from the JSON, after the file-hash checks); the kernel pipeline,
``rank``, ``report``, ``submit`` and ``score`` use it. :meth:`BlendRecord.to_json` is the one place its
JSON is built. Each member records its ``weight``; the blend one ``scale``. A test row's prediction is
``clip?(scale * sum_m weight_m * member_m[row])``.

A record lists its files with their sha256: :func:`read_blend_record` refuses a record whose files
are missing or changed since, and :func:`check_blend_file` refuses a csv or h5ad that its record does
not describe (a file left beside a record it does not belong to).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from perturbkit.errors import PerturbkitError, redact
from perturbkit.io import sha256_file
from perturbkit.submit.write import jsonable

RECORD_FILE = "blend.json"  # a blend set's record; its csv and h5ad beside it


class BlendRecordError(PerturbkitError, ValueError):
    """A blend record (``blend.json``) that is unreadable or does not describe the files beside it."""


def _number(value, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BlendRecordError(f"{source}: {what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class WeightSet:
    """The members' weights (in the blend's member order) and the global scale."""

    weights: tuple[float, ...]
    scale: float

    def used(self, member: int) -> bool:
        return self.weights[member] > 0


@dataclass(frozen=True)
class BlendMember:
    name: str
    config: dict
    model: str | None = None
    run_id: str | None = None
    path: str | None = None
    config_hash: str | None = None
    score: float | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "model": self.model, "run_id": self.run_id, "path": self.path, "config": self.config,
                "config_hash": self.config_hash, "score": self.score}


@dataclass(frozen=True)
class BlendRecord:
    members: tuple[BlendMember, ...]
    weights: WeightSet
    clip: bool = False
    method: str = "blend"
    data_hash: str | None = None
    folds_hash: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    file_sha256: dict[str, str] = field(default_factory=dict)  # of each file in ``files``: read_blend_record checks them
    name: str = ""
    details: dict = field(default_factory=dict, compare=False)  # the rest of the JSON: scores, search, choice, options, writer

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def used_members(self) -> list[BlendMember]:
        return [m for position, m in enumerate(self.members) if self.weights.used(position)]

    def to_json(self) -> dict:
        """The JSON of ``blend.json`` (passwords in URLs, e.g. an optuna ``storage``, redacted)."""
        members = [{**member.to_json(), "weight": weight} for member, weight in zip(self.members, self.weights.weights)]
        record = {**self.details, "name": self.name, "members": members, "scale": self.weights.scale, "clip": self.clip,
                  "method": self.method, "data_hash": self.data_hash, "folds_hash": self.folds_hash, "files": dict(self.files),
                  "file_sha256": dict(self.file_sha256)}
        return json.loads(redact(json.dumps(record, default=jsonable)))

    @classmethod
    def from_json(cls, data: dict, *, source: str = "blend record") -> BlendRecord:
        """The record of a parsed ``blend.json`` (or a kernel spec): each member needs ``config`` and ``weight``."""
        if not isinstance(data, dict) or not isinstance(data.get("members"), list) or not data["members"]:
            raise BlendRecordError(f"{source}: not a blend record (no 'members' list)")
        members, weights = [], []
        for position, entry in enumerate(data["members"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise BlendRecordError(f"{source}: member {position} needs 'config' (the run's full config)")
            if entry.get("weight") is None:
                hint = ("per-cell-type weights were retired (docs/experiments.md, Blend); blend the runs again"
                        if entry.get("weights") else "add its 'weight'")
                raise BlendRecordError(f"{source}: member {position} has no 'weight': {hint}")
            config, score = entry["config"], entry.get("score")
            weights.append(_number(entry["weight"], f"member {position} weight", source))
            members.append(BlendMember(
                name=str(entry.get("name", config.get("model"))),
                config=config,
                model=entry.get("model", config.get("model")),
                run_id=entry.get("run_id"),
                path=entry.get("path"),
                config_hash=entry.get("config_hash"),
                score=None if score is None else float(score),
            ))
        clip = data.get("clip", False)
        if not isinstance(clip, bool):
            raise BlendRecordError(f"{source}: 'clip' must be true or false, got {clip!r}")
        return cls(
            members=tuple(members),
            weights=WeightSet(weights=tuple(weights), scale=_number(data.get("scale", 1.0), "scale", source)),
            clip=clip,
            method=str(data.get("method", "blend")),
            data_hash=data.get("data_hash"),
            folds_hash=data.get("folds_hash"),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            file_sha256={str(k): str(v) for k, v in (data.get("file_sha256") or {}).items()},
            name=str(data.get("name", "")),
            details={k: v for k, v in data.items() if k not in TYPED},
        )


TYPED = {"name", "members", "scale", "clip", "method", "data_hash", "folds_hash", "files", "file_sha256",
         "scales"}  # "scales": per-cell-type scales of records written before per_celltype was retired


def read_blend_record(path: Path | str) -> BlendRecord:
    """A blend's record, after checking that the files it lists are the ones it was written with."""
    path = Path(path)
    if not path.is_file():
        raise BlendRecordError(f"{path}: blend record not found (run `perturbkit recipe` or `perturbkit blend` first)")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BlendRecordError(f"{path}: not a readable blend record ({exc})") from None
    record = BlendRecord.from_json(record, source=str(path))
    # The files beside the record: a record copied with its files to another folder describes the copies.
    record = dataclasses.replace(record, files={kind: str(path.parent / Path(file).name) for kind, file in record.files.items()})
    for kind, digest in record.file_sha256.items():
        file = Path(record.files.get(kind, ""))
        if not file.is_file() or sha256_file(file) != digest:
            state = "is missing" if not file.is_file() else "changed after the record was written"
            raise BlendRecordError(f"{path}: its {kind} file {file} {state} (an interrupted or concurrent blend?); "
                                   "run perturbkit blend again")
    return record


def check_blend_file(path: Path | str) -> BlendRecord | None:
    """The record of the blend ``path`` (a csv or h5ad) belongs to, after checking that it lists this very file
    with this content; None when no blend record is beside it (a file perturbkit's blends did not write)."""
    path = Path(path)
    record_path = path.parent / RECORD_FILE
    if path.suffix not in (".csv", ".h5ad") or not record_path.is_file():
        return None
    record = read_blend_record(record_path)
    if path.name not in {Path(file).name for file in record.files.values()}:
        raise BlendRecordError(f"{path}: not a file of the blend recorded in {record_path} (it lists "
                               f"{sorted(Path(f).name for f in record.files.values())}); submit or score one of those")
    return record
