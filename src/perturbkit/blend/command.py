"""``perturbkit blend``: options from configs/blend.toml, flags and --set; runs from the store; files out.

The blend's files are one unit: ``<name>.csv`` and ``<name>.h5ad`` are written first (each atomically),
then ``<name>.json``, the record, which lists every file with its sha256. :func:`read_blend_record`
is how every reader (report, rank, kernel) opens a blend: it refuses a record whose files are
missing or changed since, e.g. after an interrupted blend left a new CSV beside the old record.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from perturbkit.blend.core import BlendOptions, BlendResult, blend_members
from perturbkit.blend.members import BlendError, load_members, select_runs
from perturbkit.blend.record import BlendRecord, BlendRecordError
from perturbkit.config import apply_overrides, read_toml
from perturbkit.data import Dataset
from perturbkit.errors import ConfigError, redact
from perturbkit.io import remove_stale, sha256_file


def resolve_options(config_path: Path | None, overrides=(), flags: dict | None = None) -> BlendOptions:
    """configs/blend.toml (if present), then ``--set key=value``, then explicit flags."""
    values = {}
    if config_path is not None:
        if Path(config_path).is_file():
            values = read_toml(Path(config_path))
        elif str(config_path) != "configs/blend.toml":
            raise ConfigError(f"{config_path}: blend config not found")
    values = apply_overrides(values, overrides)
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    return BlendOptions.from_dict(values)


def check_name(name: str) -> str:
    """A blend's file stem: a plain name inside ``--submissions``, never a path out of it or a hidden (staging) name."""
    if not name or name.startswith(".") or any(sep and sep in name for sep in (os.sep, os.altsep, "/")):
        raise ConfigError(f"--name {name!r}: must be a plain file name (no path separator, not starting with '.'); "
                          "choose the folder with --submissions")
    return name


def dataset_id_for(data: str, dataset_id: str | None = None) -> str:
    """The h5ad's dataset id: ``dataset_id`` if given, else the real data's or the demo variant's of ``--data``."""
    if dataset_id:
        return dataset_id
    from perturbkit.data import demo_variant

    variant = demo_variant(data)
    return "neurips-2023-data" if variant is None else f"perturbkit_demo_{variant}"


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


def run_blend(
    dataset: Dataset,
    options: BlendOptions,
    *,
    submissions: Path | str,
    dataset_id: str,
    oof_root: Path | str | None = None,
    runs=(),
    every: bool = False,
    scheme: str | None = None,
    name: str = "blend",
    h5ad: bool = True,
    out=None,
) -> dict[str, Path]:
    """Blend ``runs`` (run directories), or the runs selected from ``oof_root`` (the latest per model, or ``every``
    one; of ``scheme``), fitted on ``dataset``; write ``<submissions>/<name>.*``. Progress goes to stderr, the table to ``out``."""
    out = out or sys.stdout
    if runs:
        paths, notes = [Path(p) for p in runs], []
    else:
        from perturbkit.cv.store import list_runs

        if oof_root is None:
            raise BlendError("name the runs to blend or the run store (oof_root) to select them from")
        notes = [f"skipped damaged run: {message}" for message in list_runs(oof_root).attrs.get("damaged", [])]
        paths, selection_notes = select_runs(oof_root, every=every, data_hash=dataset.data_hash, scheme=scheme)
        notes += selection_notes
    for note in notes:
        print(f"note: {note}", file=out)
    print(f"blending {len(paths)} run(s): " + ", ".join(f"{p.parent.name}/{p.name}" for p in paths), file=out, flush=True)
    members = load_members(paths, dataset)
    result = blend_members(members, dataset, options, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(result.table(), file=out)
    files = write_blend(result, dataset, submissions, name, dataset_id=dataset_id, h5ad=h5ad)
    for kind, path in files.items():
        print(f"{kind:>5}: {path}", file=out)
    return files
