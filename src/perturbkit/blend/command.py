"""``perturbkit blend``: options from configs/blend.toml, flags and --set; runs from the store; files out."""

from __future__ import annotations

import sys
from pathlib import Path

from perturbkit.blend.core import BlendOptions, blend_members
from perturbkit.blend.members import load_members, select_runs
from perturbkit.config import apply_overrides, read_toml
from perturbkit.errors import ConfigError

FLAG_OPTIONS = ("method", "trials", "seed", "per_celltype", "scale", "clip", "nested", "storage")


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


def dataset_id_for(args) -> str:
    if getattr(args, "dataset_id", None):
        return args.dataset_id
    return "perturbkit_demo" if str(args.data) == "demo" else "neurips-2023-data"


def run(args, dataset, out=None) -> dict:
    out = out or sys.stdout
    flags = {key: getattr(args, key, None) for key in FLAG_OPTIONS}
    options = resolve_options(args.blend_config, args.set, flags)
    if args.runs:
        paths, notes = [Path(p) for p in args.runs], []
    else:
        paths, notes = select_runs(args.oof, every=args.all, data_hash=dataset.data_hash, scheme=args.scheme)
    for note in notes:
        print(f"note: {note}", file=out)
    print(f"blending {len(paths)} run(s): " + ", ".join(f"{p.parent.name}/{p.name}" for p in paths), file=out, flush=True)
    members = load_members(paths, dataset)
    result = blend_members(members, dataset, options, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(result.table(), file=out)
    from perturbkit.blend import write_blend

    files = write_blend(result, dataset, args.submissions, args.name, dataset_id=dataset_id_for(args), h5ad=not args.no_h5ad)
    for kind, path in files.items():
        print(f"{kind:>5}: {path}", file=out)
    return files
