"""``python -m perturbkit <command>``: a thin layer over the library; the Makefile calls it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perturbkit.errors import PerturbkitError


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="demo", help="'demo' (default) or a directory with de_train.parquet|h5ad + id_map.csv")
    parser.add_argument("--demo-genes", type=int, default=None, help="genes in the demo world (default: all 18,211)")
    parser.add_argument("--layer", default="sign_log10_pval", help="h5ad layer holding the targets")


def _load_data(args, *, require_smiles: bool = False):
    from perturbkit.data import load

    return load(args.data, demo_genes=args.demo_genes, layer=args.layer, require_smiles=require_smiles)


def cmd_cv(args) -> None:
    from perturbkit.config import load_config
    from perturbkit.cv import build_model, run_cv, summary_text

    config = load_config(args.model, config_path=args.config, configs_dir=args.configs_dir, overrides=args.set)
    config["cv"].update({key: getattr(args, key) for key in ("scheme", "seed", "n_splits") if getattr(args, key) is not None})
    if args.refit:
        config["cv"]["refit"] = True
    build_model(config, int(config["cv"]["seed"]))  # an unknown model or parameter fails before loading data
    dataset = _load_data(args, require_smiles=bool(config.get("features", {}).get("chemistry")))
    result = run_cv(dataset, config, oof_root=args.oof, progress=not args.no_progress)
    print(summary_text(result.meta))
    print(f"run written to {result.run_dir}")


def cmd_runs(args) -> None:
    from perturbkit.cv import list_runs

    runs = list_runs(args.oof)
    if runs.empty:
        print(f"no complete runs under {args.oof}")
        return
    print(runs.drop(columns=["path"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cmd_score(args) -> None:
    from perturbkit.submit import score_submission

    table = score_submission(args.submission, args.truth)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


def cmd_demo(args) -> None:
    from perturbkit.data.demo import demo_dir

    print(demo_dir(root=args.root, n_genes=args.genes, seed=args.seed))


def cmd_validate(args) -> None:
    dataset = _load_data(args)
    counts = dataset.obs["cell_type"].astype(str).value_counts().sort_index()
    print(f"{dataset.source}: {len(dataset.obs)} training rows x {dataset.n_genes} genes, {len(dataset.test)} test rows")
    print(counts.to_string())
    print(f"data hash {dataset.data_hash}")


def cmd_models(args) -> None:
    from perturbkit.models import list_models

    print("\n".join(list_models()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perturbkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    cv = commands.add_parser("cv", help="cross-validate a model and store the run")
    cv.add_argument("--model", required=True)
    cv.add_argument("--config", type=Path, default=None, help="default: <configs-dir>/<model>.toml if present")
    cv.add_argument("--configs-dir", type=Path, default=Path("configs"))
    cv.add_argument("--scheme", default=None, help="lymphoid_holdout (default), bm_holdout or kfold")
    cv.add_argument("--seed", type=int, default=None)
    cv.add_argument("--n-splits", dest="n_splits", type=int, default=None)
    cv.add_argument("--refit", action="store_true", help="test predictions from a model refitted on all rows")
    cv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. params.alpha=3")
    cv.add_argument("--oof", type=Path, default=Path("oof"), help="root of the run store")
    cv.add_argument("--no-progress", action="store_true")
    _add_data_options(cv)
    cv.set_defaults(func=cmd_cv)

    runs = commands.add_parser("runs", help="list stored runs with their scores")
    runs.add_argument("--oof", type=Path, default=Path("oof"))
    runs.set_defaults(func=cmd_runs)

    score = commands.add_parser("score", help="score a submission against a truth file")
    score.add_argument("submission", type=Path)
    score.add_argument("--truth", type=Path, required=True)
    score.set_defaults(func=cmd_score)

    demo = commands.add_parser("demo", help="generate (or find) the cached demo world and print its directory")
    demo.add_argument("--genes", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--root", type=Path, default=None)
    demo.set_defaults(func=cmd_demo)

    validate = commands.add_parser("validate", help="load and validate a dataset, print what it holds")
    _add_data_options(validate)
    validate.set_defaults(func=cmd_validate)

    models = commands.add_parser("models", help="list registered models")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PerturbkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
