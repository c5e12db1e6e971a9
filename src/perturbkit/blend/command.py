"""``perturbkit blend``: options (:mod:`perturbkit.blend.options`), runs chosen by one rule
(:func:`perturbkit.blend.members.select_runs`), the blend fitted, its set written
(:func:`perturbkit.blend.files.write_blend`) under ``<submissions>/<name>/``."""

from __future__ import annotations

import sys
from pathlib import Path

from perturbkit.blend.files import blend_writer, check_name, check_replaceable, set_folder, write_blend
from perturbkit.blend.members import BlendError, load_members, select_runs
from perturbkit.blend.options import BlendOptions
from perturbkit.blend.result import blend_members
from perturbkit.blend.table import blend_table
from perturbkit.data import Dataset


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
    include_tuning: bool = False,
    recipe_configs=None,
    recipe: str | None = None,
    name: str = "blend",
    force: bool = False,
    h5ad: bool = True,
    out=None,
) -> dict[str, Path]:
    """Blend ``runs`` (run directories), or the runs chosen from ``oof_root`` (by :func:`select_runs`: the best CV of each
    model and config, or a recipe's members ``recipe_configs``); write the set ``<submissions>/<name>/``.
    Progress goes to stderr, the table and the choice of runs to ``out``."""
    out = out or sys.stdout
    identity = blend_writer(options, every=every, scheme=scheme, include_tuning=include_tuning, recipe=recipe, runs=runs)
    check_replaceable(set_folder(submissions, check_name(name)), identity, force=force)  # before any work
    if runs:
        paths = [Path(p) for p in runs]
    else:
        from perturbkit.cv.store import list_runs

        if oof_root is None:
            raise BlendError("name the runs to blend or the run store (oof_root) to select them from")
        for message in list_runs(oof_root).attrs.get("damaged", []):
            print(f"note: skipped damaged run: {message}", file=out)
        paths, lines = select_runs(oof_root, every=every, data_hash=dataset.data_hash, scheme=scheme,
                                   include_tuning=include_tuning, configs=recipe_configs)
        for line in lines:
            print(line, file=out)
    print(f"blending {len(paths)} run(s): " + ", ".join(f"{p.parent.name}/{p.name}" for p in paths), file=out, flush=True)
    members = load_members(paths, dataset)
    result = blend_members(members, dataset, options, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(blend_table(result), file=out)
    files = write_blend(result, dataset, submissions, name, dataset_id=dataset_id, writer=identity, force=force, h5ad=h5ad)
    for kind, path in files.items():
        print(f"{kind:>5}: {path}", file=out)
    return files
