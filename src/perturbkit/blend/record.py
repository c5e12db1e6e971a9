"""The blend record: one type for what ``perturbkit blend`` writes to ``<name>.json`` and what everyone reads.

:class:`BlendRecord` is built by :meth:`BlendResult.record <perturbkit.blend.core.BlendResult.record>`
and by :func:`read_blend_record` (from the JSON, after the file-hash checks); the kernel pipeline,
``rank`` and the report use it. The blend's files are one unit: :func:`write_blend` writes
``<name>.csv`` and ``<name>.h5ad`` first (each atomically), then ``<name>.json``, the record, which
lists every file with its sha256. :func:`read_blend_record` refuses a record whose files are
missing or changed since, e.g. after an interrupted blend left a new CSV beside the old record.

In memory the weights are one :class:`CellTypeWeights` (a weight set per test cell type, and one
for any other cell type, or None when the blend fitted no global set). On disk each member records
its weight per test cell type (``weights``); ``weight`` is the weight of any other cell type, or
null when the blend fitted none. The scale is recorded the same way (``scales``, ``scale``). A test row's prediction is
``clip?(scale[cell_type] * sum_m weights_m[cell_type] * member_m[row])``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from perturbkit.errors import ConfigError, PerturbkitError, redact
from perturbkit.io import remove_stale, sha256_file

if TYPE_CHECKING:
    from perturbkit.blend.core import BlendResult
    from perturbkit.data import Dataset


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
class WeightSet:
    """One cell type's member weights (in the blend's member order) and scale."""

    weights: tuple[float, ...]
    scale: float


@dataclass(frozen=True)
class CellTypeWeights:
    """A blend's weights by test cell type: the one form they take from the blend's fit to its record and the kernel.

    ``other`` applies to any other cell type: the global weight set, or None when the blend fitted none
    (a per-cell-type blend), so that a row of another cell type is refused rather than given a guess.
    """

    by_cell_type: dict[str, WeightSet] = field(default_factory=dict)
    other: WeightSet | None = None

    @property
    def cell_types(self) -> list[str]:
        return sorted(self.by_cell_type)

    def of(self, cell_type: str) -> WeightSet | None:
        return self.by_cell_type.get(cell_type, self.other)

    def member_weights(self, member: int) -> tuple[dict[str, float], float | None]:
        """One member's weight per cell type and its weight for any other cell type (None: no global set)."""
        other = None if self.other is None else self.other.weights[member]
        return {ct: s.weights[member] for ct, s in self.by_cell_type.items()}, other

    def used(self, member: int) -> bool:
        """Whether any cell type gives the member a weight > 0."""
        sets = [*self.by_cell_type.values(), *([self.other] if self.other is not None else [])]
        return any(s.weights[member] > 0 for s in sets)

    def for_rows(self, cell_types, n_members: int) -> tuple[np.ndarray, np.ndarray]:
        """Every row's member weights (rows x members) and scale (rows), by the row's cell type."""
        cell_types = [str(ct) for ct in np.asarray(cell_types, dtype=object)]
        unknown = sorted(ct for ct in set(cell_types) if self.of(ct) is None)
        if unknown:
            raise BlendRecordError(f"the blend has no weights for cell type(s) {unknown}; it has {self.cell_types}")
        sets = [self.of(ct) for ct in cell_types]
        weights = np.array([s.weights for s in sets], dtype=np.float64).reshape(len(cell_types), n_members)
        return weights, np.array([s.scale for s in sets], dtype=np.float64)


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
    weights: CellTypeWeights
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
        return self.weights.cell_types

    def used_members(self) -> list[BlendMember]:
        return [m for position, m in enumerate(self.members) if self.weights.used(position)]

    def weights_for(self, cell_types) -> tuple[np.ndarray, np.ndarray]:
        """Every row's member weights (rows x members) and scale (rows), by the row's cell type."""
        return self.weights.for_rows(cell_types, len(self.members))

    def to_json(self) -> dict:
        """The JSON of ``<name>.json``: each member's ``weights`` per cell type and ``weight``, the ``scales`` and ``scale``."""
        members = []
        for position, member in enumerate(self.members):
            weights, other = self.weights.member_weights(position)
            members.append({**member.to_json(), "weight": other, "weights": weights})
        scales = {ct: s.scale for ct, s in self.weights.by_cell_type.items()}
        scale = None if self.weights.other is None else self.weights.other.scale
        return {**self.details, "name": self.name, "members": members, "scales": scales, "scale": scale, "clip": self.clip, "method": self.method, "data_hash": self.data_hash,
                "folds_hash": self.folds_hash, "files": dict(self.files), "file_sha256": dict(self.file_sha256)}

    @classmethod
    def from_json(cls, data: dict, *, source: str = "blend record") -> BlendRecord:
        """The record of a parsed ``<name>.json`` (or a kernel spec): each member needs ``config`` and its weights."""
        if not isinstance(data, dict) or not isinstance(data.get("members"), list) or not data["members"]:
            raise BlendRecordError(f"{source}: not a blend record (no 'members' list)")
        members, weights, other = [], [], []
        for position, entry in enumerate(data["members"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise BlendRecordError(f"{source}: member {position} needs 'config' (the run's full config)")
            if "weights" not in entry and entry.get("weight") is None:
                raise BlendRecordError(f"{source}: member {position} has neither 'weights' per cell type nor a 'weight'")
            config = entry["config"]
            weight = entry.get("weight")
            score = entry.get("score")
            weights.append(_by_cell_type(entry.get("weights", {}), f"member {position} weights", source))
            other.append(None if weight is None else _number(weight, f"member {position} weight", source))
            members.append(BlendMember(
                name=str(entry.get("name", config.get("model"))),
                config=config,
                model=entry.get("model", config.get("model")),
                run_id=entry.get("run_id"),
                path=entry.get("path"),
                config_hash=entry.get("config_hash"),
                score=None if score is None else float(score),
            ))
        scale = data.get("scale", 1.0)
        scale = None if scale is None else _number(scale, "scale", source)
        clip = data.get("clip", False)
        if not isinstance(clip, bool):
            raise BlendRecordError(f"{source}: 'clip' must be true or false, got {clip!r}")
        return cls(
            members=tuple(members),
            weights=_cell_type_weights(weights, other, _by_cell_type(data.get("scales", {}), "scales", source), scale),
            clip=clip,
            method=str(data.get("method", "blend")),
            data_hash=data.get("data_hash"),
            folds_hash=data.get("folds_hash"),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            file_sha256={str(k): str(v) for k, v in (data.get("file_sha256") or {}).items()},
            name=str(data.get("name", "")),
            details={k: v for k, v in data.items() if k not in TYPED},
        )


def _cell_type_weights(weights: list[dict[str, float]], other: list[float | None], scales: dict[str, float],
                       scale: float | None) -> CellTypeWeights:
    """The record JSON's per-member weights (``weights`` per cell type, ``weight`` otherwise) and ``scales`` / ``scale``
    as weight sets per cell type. A cell type that some member or the scale leaves without a value has no set,
    as a cell type the blend never saw: its rows are refused."""

    def weight_set(member_weights: list[float | None], set_scale: float | None) -> WeightSet | None:
        if set_scale is None or any(w is None for w in member_weights):
            return None
        return WeightSet(weights=tuple(member_weights), scale=set_scale)

    by_cell_type = {}
    for cell_type in sorted({ct for w in weights for ct in w} | set(scales)):
        found = weight_set([w.get(cell_type, o) for w, o in zip(weights, other)], scales.get(cell_type, scale))
        if found is not None:
            by_cell_type[cell_type] = found
    return CellTypeWeights(by_cell_type=by_cell_type, other=weight_set(other, scale))


TYPED = {"name", "members", "scales", "scale", "clip", "method", "data_hash", "folds_hash", "files", "file_sha256"}


def check_name(name: str) -> str:
    """A blend's file stem: a plain name inside ``--submissions``, never a path out of it or a hidden (staging) name."""
    if not name or name.startswith(".") or any(sep and sep in name for sep in (os.sep, os.altsep, "/")):
        raise ConfigError(f"--name {name!r}: must be a plain file name (no path separator, not starting with '.'); "
                          "choose the folder with --submissions")
    return name


def write_blend(result: BlendResult, dataset: Dataset, out_dir: Path | str, name: str, *, dataset_id: str,
                method_id: str | None = None, h5ad: bool = True) -> dict[str, Path]:
    """``<out_dir>/<name>.csv`` (Kaggle), ``.h5ad`` (openproblems), then ``.json``: the record, with each file's sha256.

    The CSV follows ``sample_submission.csv`` when the data directory has one; every file is
    read back with the checks of ``perturbkit score`` before the record is written. Passwords
    in URLs (``--storage``) never reach the record.
    """
    from perturbkit.submit import read_submission
    from perturbkit.submit.write import jsonable, write_json, write_prediction_h5ad, write_submission_csv

    out_dir = Path(out_dir)
    check_name(name)
    remove_stale(out_dir)  # staging files of blends killed more than a day ago
    template = Path(dataset.source) / "sample_submission.csv"
    ids, genes = result.members.test_ids, result.members.genes
    files = {}
    try:
        files["csv"] = write_submission_csv(out_dir / f"{name}.csv", ids, genes, result.test,
                                            template=template if template.is_file() else None)
        if h5ad:
            files["h5ad"] = write_prediction_h5ad(out_dir / f"{name}.h5ad", ids, genes, result.test,
                                                  dataset_id=dataset_id, method_id=method_id or f"perturbkit_{name}")
        for path in files.values():
            read_submission(path, genes=genes, ids=ids)
        record = result.to_json(name=name, files={k: str(v) for k, v in files.items()}, dataset=dataset,
                                file_sha256={kind: sha256_file(path) for kind, path in files.items()})
        record["template"] = str(template) if template.is_file() else None
        record = json.loads(redact(json.dumps(record, default=jsonable)))
        files["json"] = write_json(out_dir / f"{name}.json", record)
    except BaseException:
        for path in files.values():  # a blend without its record is no blend: nothing of it stays
            path.unlink(missing_ok=True)
        raise
    return files


def read_blend_record(path: Path | str) -> BlendRecord:
    """A blend's record, after checking that the files it lists are the ones it was written with."""
    path = Path(path)
    if not path.is_file():
        raise BlendRecordError(f"{path}: blend record not found (run `perturbkit blend` first)")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
