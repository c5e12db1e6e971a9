"""``perturbkit blend``: options from configs/blend.toml, flags and --set; runs from the store; files out.

The files are written by :func:`perturbkit.blend.record.write_blend` and read back by
:func:`perturbkit.blend.record.read_blend_record`, beside the record type they carry.
"""

from __future__ import annotations

import sys
from pathlib import Path

from perturbkit.blend.core import BlendOptions, blend_members
from perturbkit.blend.members import BlendError, load_members, select_runs
from perturbkit.blend.record import check_name, write_blend
from perturbkit.config import apply_overrides, read_toml
from perturbkit.data import Dataset
from perturbkit.errors import ConfigError


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


def dataset_id_for(data: str, dataset_id: str | None = None) -> str:
    """The h5ad's dataset id: ``dataset_id`` if given, else the real data's or the demo variant's of ``--data``."""
    if dataset_id:
        return dataset_id
    from perturbkit.data import demo_variant

    variant = demo_variant(data)
    return "neurips-2023-data" if variant is None else f"perturbkit_demo_{variant}"


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
