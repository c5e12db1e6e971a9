"""A blend's files as one set: ``<submissions>/<name>/blend.csv``, ``blend.h5ad`` and ``blend.json``.

The three are written into a staging folder beside the set (:func:`perturbkit.io.atomic_dir`) and
the folder replaces the previous set in one step, only once all three are complete and read back;
an interruption (Ctrl-C, SIGTERM, an exception, a full disk) before that leaves the previous set as
it was. The record (``blend.json``) names the command and configuration that wrote the set
(``writer``): writing over a set of another command or configuration needs ``force``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from perturbkit.blend.record import RECORD_FILE, BlendRecordError, read_blend_record
from perturbkit.blend.result import BlendResult
from perturbkit.config import config_hash
from perturbkit.data import Dataset
from perturbkit.errors import ConfigError
from perturbkit.io import PARTIAL, OutputError, atomic_dir, is_plain_name, orphans, sha256_file
from perturbkit.submit import read_submission
from perturbkit.submit.write import write_json, write_prediction_h5ad, write_submission_csv

STEM = "blend"  # the files of a set: blend.csv, blend.h5ad, blend.json
RECIPE_SET = "recipe"  # the recipe writes its set here; blend writes under --name (default "blend")
RECOMMENDED = (RECIPE_SET, "blend")  # the sets the defaults of kernel, submit, score, report and rank take, first found


class SetOwnedError(OutputError):
    """A blend set that another command or configuration wrote: replacing it needs --force."""


def check_name(name: str) -> str:
    """A set's name: one plain folder name under ``--submissions`` (no separator, ``..``, control character or
    leading dot, which staging names use)."""
    if not is_plain_name(name):
        raise ConfigError(f"--name {name!r}: must be a plain folder name (letters, digits, '-', '_', '.'; no path separator, "
                          "no control character, not starting with '.'); choose the parent folder with --submissions")
    return name


def set_folder(submissions: Path | str, name: str) -> Path:
    return Path(submissions) / check_name(name)


def writer(command: str, config: dict, *, describe: str) -> dict:
    """Who writes a set: the command and a hash of its configuration (what a rerun that may replace it must repeat)."""
    return {"command": command, "config": describe, "config_hash": config_hash(config)}


def blend_writer(options, *, every: bool = False, scheme: str | None = None, include_tuning: bool = False,
                 recipe: str | None = None, runs=()) -> dict:
    """The writer of a blend set: ``blend`` with its options (:class:`BlendOptions`) and its rule for choosing runs."""
    rule = {"runs": sorted(map(str, runs or ())), "every": every, "scheme": scheme, "include_tuning": include_tuning, "recipe": recipe}
    return writer("blend", {"options": options.to_json(), "rule": rule},
                  describe=f"method {options.method}" + (f", runs of recipe {recipe}" if recipe else ""))


def check_replaceable(folder: Path, new_writer: dict, *, force: bool = False) -> None:
    """Refuse, before any work, to replace a set that another command or configuration wrote (unless ``force``)."""
    if force or not folder.exists() and not folder.is_symlink():
        return
    record = folder / RECORD_FILE
    try:
        old = json.loads(record.read_text()).get("writer") if folder.is_dir() and not folder.is_symlink() else None
    except (OSError, ValueError, AttributeError):
        old = None
    if not isinstance(old, dict):
        raise SetOwnedError(f"{folder}: exists but holds no blend set perturbkit wrote (no {RECORD_FILE} naming its writer); "
                            "move it away, choose another --name, or pass --force")
    if (old.get("command"), old.get("config_hash")) != (new_writer["command"], new_writer["config_hash"]):
        same = "another configuration of " if old.get("command") == new_writer["command"] else ""
        raise SetOwnedError(f"{folder}: written by {same}`perturbkit {old.get('command')}` ({old.get('config')}); "
                            f"this is `perturbkit {new_writer['command']}` ({new_writer['config']}). Pass --force to replace it, "
                            "or write elsewhere (blend: --name NAME)")


def recover(folder: Path) -> Path | None:
    """Put back a complete set that a process killed between the two renames of a swap left under a staging name
    (only when no set is in place); the write's own cleanup (:func:`perturbkit.io.remove_orphans`) removes the rest."""
    if folder.exists():
        return None
    complete = []
    for path in orphans(folder):
        try:
            read_blend_record(path / RECORD_FILE)
            complete.append(path)
        except (BlendRecordError, OSError):
            continue
    if not complete:
        return None
    newest = max(complete, key=lambda p: (p / RECORD_FILE).stat().st_mtime)
    os.replace(newest, folder)
    return folder


def write_blend(result: BlendResult, dataset: Dataset, submissions: Path | str, name: str, *, dataset_id: str,
                writer: dict | None = None, force: bool = False, method_id: str | None = None, h5ad: bool = True) -> dict[str, Path]:
    """Write the set ``<submissions>/<name>/``: ``blend.csv`` (Kaggle), ``blend.h5ad`` (openproblems), ``blend.json``
    (the record, with each file's sha256), all three or none.

    The CSV follows ``sample_submission.csv`` when the data directory has one; every file is read back
    with the checks of ``perturbkit score`` before the record is written. ``writer``: who writes the set
    (default: ``blend`` with the result's options).
    """
    writer = writer or blend_writer(result.options)
    folder = set_folder(submissions, name)
    recover(folder)
    check_replaceable(folder, writer, force=force)
    template = Path(dataset.source) / "sample_submission.csv"
    template = template if template.is_file() else None
    ids, genes = result.members.test_ids, result.members.genes
    try:
        with atomic_dir(folder, replace=True, force=True) as staging:
            files = {"csv": write_submission_csv(staging / f"{STEM}.csv", ids, genes, result.test, template=template)}
            if h5ad:
                files["h5ad"] = write_prediction_h5ad(staging / f"{STEM}.h5ad", ids, genes, result.test,
                                                      dataset_id=dataset_id, method_id=method_id or f"perturbkit_{name}")
            for path in files.values():
                read_submission(path, genes=genes, ids=ids)
            record = result.record(
                name=name, files={kind: str(folder / path.name) for kind, path in files.items()},
                file_sha256={kind: sha256_file(path) for kind, path in files.items()},
                extra={"writer": writer, "template": None if template is None else str(template), "data_source": dataset.source},
            )
            write_json(staging / RECORD_FILE, record.to_json())
    except OutputError as exc:  # named by the set's own folder, not the staging folder it was written in
        raise type(exc)(re.sub(rf"\.{re.escape(folder.name)}\.\d+-[0-9a-f]+{re.escape(PARTIAL)}", folder.name, str(exc))) from None
    return {**{kind: folder / path.name for kind, path in files.items()}, "json": folder / RECORD_FILE}


def recommended_file(submissions: Path | str, kind: str = "json", say=None, *, required: bool = True) -> Path | None:
    """The file of the recommended set under ``submissions``: the recipe's when there is one, else ``blend``'s;
    ``say`` is told which file was taken. None when there is none and not ``required``."""
    for name in RECOMMENDED:
        folder = Path(submissions) / name
        if (folder / RECORD_FILE).is_file():
            path = folder / (RECORD_FILE if kind == "json" else f"{STEM}.{kind}")
            if say is not None:
                say(f"using {path} (the {'recipe' if name == 'recipe' else 'default blend'}'s set; name another file to change it)")
            return path
    if not required:
        return None
    raise BlendRecordError(f"no blend set under {submissions} (looked for {', '.join(f'{n}/{RECORD_FILE}' for n in RECOMMENDED)}); "
                           "run `make recipe` (or `perturbkit blend`) first, or name the file")
