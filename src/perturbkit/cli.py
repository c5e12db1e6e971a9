"""``python -m perturbkit <command>``: a thin layer over the library; the Makefile calls it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from perturbkit.errors import PerturbkitError, redact
from perturbkit.types import GeneCount, PositiveCount, Seed, flag

PUBLIC_SPLIT_MODELS = "zeros,gene_mean,compound_mean,celltype_mean,pca_ridge,pca_knn,transfer_ridge,lowrank,pseudo"
TRUTH_HELP = "'demo' / 'demo:VARIANT' for that demo world's hidden test_truth.parquet (all 255 test rows)"


DATA_HELP = "'demo', 'demo:VARIANT' (perturbkit demo --list) or a directory with de_train.parquet|h5ad + id_map.csv (default: %(default)s)"
GENES_HELP = "genes of the demo worlds, 1 to 18,211, or 0 for all (default: %(default)s; None: all 18,211)"


def _whole_numbers(text: str) -> list[int]:
    """comma-separated whole numbers, e.g. 0,1,2"""
    return [int(part) for part in text.split(",")]


def _names(text: str) -> list[str]:
    """comma-separated names"""
    return [part.strip() for part in text.split(",") if part.strip()]


def _genes_or_all(text: str) -> int | None:
    """a whole number"""
    return None if text.strip() == "0" else int(text)


def _parent(*flags: str, **kwargs) -> argparse.ArgumentParser:
    """A parent parser declaring one flag shared by several commands: one help text (``%(default)s`` shows each
    command's own default)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(*flags, **kwargs)
    return parent


def _data(default: str | None = "demo") -> argparse.ArgumentParser:
    return _parent("--data", default=default, help=DATA_HELP)


def _genes(default: int | None = None) -> argparse.ArgumentParser:
    return _parent("--demo-genes", type=flag(GeneCount | None, _genes_or_all), default=default, help=GENES_HELP)


def _layer() -> argparse.ArgumentParser:
    return _parent("--layer", default="sign_log10_pval", help="h5ad layer holding the targets (default: %(default)s)")


def _dataset() -> list[argparse.ArgumentParser]:
    """The flags of every command that loads a dataset to fit on."""
    return [_data(), _genes(), _layer()]


def _store(default: Path = Path("oof")) -> argparse.ArgumentParser:
    return _parent("--oof", type=Path, default=default, help="root of the run store (default: %(default)s)")


def _submissions() -> argparse.ArgumentParser:
    return _parent("--submissions", type=Path, default=Path("submissions"),
                   help="folder of the submission sets, <submissions>/<name>/ (default: %(default)s)")


def _configs() -> argparse.ArgumentParser:
    return _parent("--configs-dir", type=Path, default=Path("configs"), help="folder of the model configs (default: %(default)s)")


def _progress() -> argparse.ArgumentParser:
    return _parent("--no-progress", action="store_true", help="no progress bars")


def _load_data(args):
    from perturbkit.data import load

    return load(args.data, demo_genes=args.demo_genes, layer=args.layer)


def cmd_cv(args) -> None:
    from perturbkit.cv import summary_text
    from perturbkit.cv.command import cv_and_store

    cv = {key: getattr(args, key) for key in ("scheme", "seed", "n_splits", "seeds") if getattr(args, key) is not None}
    result, run_dir = cv_and_store(args.model, oof=args.oof, data=args.data, demo_genes=args.demo_genes, layer=args.layer,
                                   config_path=args.config, configs_dir=args.configs_dir, overrides=args.set,
                                   cv={**cv, **({"refit": True} if args.refit else {})}, progress=not args.no_progress)
    print(summary_text(result.meta))
    print(f"run written to {run_dir}")


def cmd_recipe(args) -> None:
    from perturbkit.blend import blend_table
    from perturbkit.recipe import run_recipe_file

    result = run_recipe_file(args.recipe, oof_root=args.oof, submissions=args.submissions, data=args.data, demo_genes=args.demo_genes,
                             layer=args.layer, configs_dir=args.configs_dir, overrides=args.set, dataset_id=args.dataset_id,
                             progress=not args.no_progress, force=args.force)
    print(blend_table(result.blend))
    print(result.table())


def cmd_agreement(args) -> None:
    from perturbkit.agreement import run_agreement, write_agreement
    from perturbkit.data.demo import list_variants
    from perturbkit.folds import list_splitters
    from perturbkit.models import list_models
    from perturbkit.recipe import load_recipe

    recipe = load_recipe(args.recipe) if args.recipe else None
    result = run_agreement(
        args.variants or list_variants(),
        args.schemes or list_splitters(),
        args.models or list_models(),
        demo_genes=args.demo_genes,
        recipe=recipe,
        oof_root=args.oof,
        say=lambda message: print(message, flush=True),
    )
    files = write_agreement(result, args.out)
    print(result.spearman.round(3).to_string())
    print(f"best mean agreement: {result.best_scheme()}; written {', '.join(map(str, files.values()))}")


def cmd_results(args) -> None:
    from perturbkit.data.demo import list_variants
    from perturbkit.models import list_models
    from perturbkit.recipe import load_recipe
    from perturbkit.results import run_results

    out = run_results(list_variants(), args.models or list_models(), load_recipe(args.recipe),
                      demo_genes=args.demo_genes, oof_root=args.oof, out=args.out, say=lambda message: print(message, flush=True))
    print(f"written {out}")


def cmd_public_split(args) -> None:
    from perturbkit.data.demo import list_variants
    from perturbkit.public_split import run_public_split

    study = run_public_split(
        args.variants or list_variants(),
        args.models,
        demo_genes=args.demo_genes,
        splits=args.splits,
        seed=args.split_seed,
        oof_root=args.oof,
        say=lambda message: print(message, flush=True),
    )
    print(study.text())
    if args.out is not None:
        print(f"written {study.write_table(args.out)}")


def cmd_runs(args) -> None:
    from perturbkit.runs import runs_view

    view = runs_view(args.oof, data=args.data, demo_genes=args.demo_genes, study=args.study, per_cell_type=args.per_cell_type,
                     truth=args.truth, settings=_score_settings(args), clean=args.clean, configs_dir=args.configs_dir, warn=_warn)
    print(view.render(as_json=args.json))


def _score_settings(args):
    from perturbkit.submit import score_settings

    return score_settings(threshold=args.de_threshold, resamples=args.resamples, seed=args.bootstrap_seed)


def _scoring() -> argparse.ArgumentParser:
    """The flags of the commands that score (runs, score); the values are checked by :func:`perturbkit.submit.score_settings`."""
    from perturbkit.metrics import DE_THRESHOLD

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print the scores as JSON, for scripts")
    parent.add_argument("--resamples", type=flag(int), default=1000, help="bootstrap resamples of the compounds (default 1000)")
    parent.add_argument("--bootstrap-seed", type=flag(int), default=0, help="seed of the bootstrap of the compounds (default 0)")
    parent.add_argument("--de-threshold", type=flag(float), default=DE_THRESHOLD,
                        help=f"a gene is truly DE in a row when |truth| > this (-log10 p; default {DE_THRESHOLD:g})")
    return parent


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_score(args) -> None:
    from perturbkit.data import resolve_truth
    from perturbkit.submit import score_submission, score_text

    from perturbkit.blend.files import recommended_file
    from perturbkit.blend.record import check_blend_file

    settings = _score_settings(args)
    args.submission = args.submission or recommended_file(args.submissions, "csv", say=_warn)
    check_blend_file(args.submission)  # a blend's csv or h5ad must be the one its record lists
    truth = resolve_truth(args.truth, demo_genes=args.demo_genes)
    print(score_text(args.submission, truth, score_submission(args.submission, truth, settings, rows=args.rows), as_json=args.json))


def cmd_check(args) -> None:
    from perturbkit.submit import check_submission

    print(check_submission(args.submission, args.template, args.data, demo_genes=args.demo_genes))


def cmd_demo(args) -> None:
    from perturbkit.data.demo import demo_dir, describe_variants

    print(describe_variants() if args.list else demo_dir(root=args.root, n_genes=args.genes, seed=args.world_seed, variant=args.variant))


def cmd_validate(args) -> None:
    from perturbkit.data import describe_dataset

    print(describe_dataset(_load_data(args)))


def cmd_models(args) -> None:
    from perturbkit.models import list_models

    print("\n".join(list_models()))


def cmd_blend(args) -> None:
    from perturbkit.blend.command import check_name, dataset_id_for, run_blend
    from perturbkit.blend.options import resolve_options
    from perturbkit.io import check_writable
    from perturbkit.recipe import load_recipe

    flags = {key: getattr(args, key) for key in ("method", "trials", "scale", "clip", "nested", "storage")} | {"seed": args.search_seed}
    options = resolve_options(args.blend_config, args.set, flags)  # before loading data or blending
    check_name(args.name)
    check_writable(args.submissions, "--submissions")
    recipe = load_recipe(args.recipe) if args.recipe else None
    run_blend(_load_data(args), options, oof_root=args.oof, runs=args.runs, every=args.all, scheme=args.scheme,
              include_tuning=args.include_tuning, recipe_configs=recipe and recipe.members, recipe=args.recipe and str(args.recipe),
              submissions=args.submissions, name=args.name, force=args.force, dataset_id=dataset_id_for(args.data, args.dataset_id),
              h5ad=not args.no_h5ad)


def cmd_report(args) -> None:
    from perturbkit.io import check_writable
    from perturbkit.report.build import build_blend_report, build_runs_report

    from perturbkit.blend.files import recommended_file

    blend = None if args.runs else args.blend or recommended_file(args.submissions, say=_warn)
    out = check_writable(args.out or Path("reports") / ("runs" if args.runs else Path(blend).parent.name), "--out")
    out = build_runs_report(args.runs, out) if args.runs else build_blend_report(blend, out)
    print(f"report written to {out}/index.html (and index.md)")


def cmd_rank(args) -> None:
    from perturbkit.rank import rank_compounds

    from perturbkit.blend.files import recommended_file

    blend = args.blend if args.blend or args.runs else recommended_file(args.submissions, say=_warn)
    data = None if args.data is None else _load_data_dir(args)
    table, title = rank_compounds(gene=args.gene, cell_type=args.cell_type, data_dir=data, blend=blend, runs=args.runs,
                                  top=args.top, up=args.up, warn=_warn)
    print(title)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _load_data_dir(args):
    from perturbkit.data import resolve_data_dir

    return resolve_data_dir(args.data, demo_genes=args.demo_genes)


def _add_blend_commands(commands) -> None:
    """blend, report, rank: from stored runs to a submission, its report and compound rankings."""
    from perturbkit.blend.search import blend_method_help, list_blend_methods, method_settings

    blend = commands.add_parser("blend", help="tune blend weights over stored runs, write submission CSV + h5ad + json",
                                parents=[*_dataset(), _store(), _submissions()])
    blend.add_argument("--runs", nargs="+", type=Path, default=None, help="run directories (default: the best CV run of each model and config)")
    blend.add_argument("--all", action="store_true", help="every eligible run, not only the best of each model and config")
    blend.add_argument("--include-tuning", action="store_true", help="consider tuning trials' runs too (default: left out)")
    blend.add_argument("--recipe", type=Path, default=None, help="blend exactly this recipe's members' stored runs")
    blend.add_argument("--force", action="store_true", help="replace a set another command or configuration wrote")
    blend.add_argument("--scheme", default=None, help="only runs of this CV scheme")
    blend.add_argument("--method", choices=list_blend_methods(), default=None,
                       help="default: configs/blend.toml; " + "; ".join(f"{k}: {v}" for k, v in blend_method_help().items()))
    blend.add_argument("--trials", type=flag(int), default=None, help="optuna trials (default 1000)")
    blend.add_argument("--search-seed", type=flag(int), default=None, help="seed of the weight search (blend option seed; default 0)")
    for name, text in (("scale", "fit a global scale factor on the OOF rows"),
                       ("clip", "clip predictions to each gene's training range"),
                       ("nested", "nested score: fit on K-1 folds, score the held-out fold (default on)")):
        blend.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=text)
    blend.add_argument("--storage", default=None, help="Optuna RDB URL to resume or share studies, e.g. sqlite:///blend.db")
    blend.add_argument("--blend-config", type=Path, default=Path("configs/blend.toml"), help="the blend options (default: %(default)s)")
    blend.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="blend option or method setting, e.g. trials=200; the methods' settings: " + ", ".join(method_settings()))
    blend.add_argument("--name", default="blend", help="the set's folder under --submissions (default: blend)")
    blend.add_argument("--dataset-id", default=None, help="uns['dataset_id'] of the h5ad (default: from --data)")
    blend.add_argument("--no-h5ad", action="store_true", help="write the CSV and JSON only")
    blend.set_defaults(func=cmd_blend)

    report = commands.add_parser("report", help="plots and an index.html / index.md for a blend (or runs)", parents=[_submissions()])
    report.add_argument("--blend", type=Path, default=None, help="a blend's JSON (default: <submissions>/recipe/blend.json, else blend/)")
    report.add_argument("--runs", nargs="+", type=Path, default=None, help="report these runs instead of a blend")
    report.add_argument("--out", type=Path, default=None, help="default: reports/<set name>/")
    report.set_defaults(func=cmd_report)

    rank = commands.add_parser("rank", help="rank test compounds by a gene's predicted down- (or up-) regulation in a cell type",
                               description="Without --data: the data the predictions were fitted on.",
                               parents=[_data(None), _genes(), _submissions()])
    rank.add_argument("--gene", required=True)
    rank.add_argument("--cell-type", required=True, help='"B cells" or "Myeloid cells"')
    rank.add_argument("--top", type=flag(PositiveCount), default=20, help="how many compounds to show (default 20)")
    rank.add_argument("--up", action="store_true", help="rank by up-regulation instead")
    rank.add_argument("--blend", type=Path, default=None, help="a blend's JSON (default: <submissions>/recipe/blend.json, else blend/)")
    rank.add_argument("--runs", nargs="+", type=Path, default=None, help="rank by the mean of these runs instead")
    rank.set_defaults(func=cmd_rank)


def cmd_data_download(args) -> None:
    from perturbkit.data import load_dataset
    from perturbkit.kaggle import describe_download, download_competition

    print(describe_download(download_competition(args.out, validate=load_dataset, quiet=args.quiet, force=args.force)))


def cmd_kernel_build(args) -> None:
    from perturbkit.io import check_writable
    from perturbkit.kaggle import kaggle_username
    from perturbkit.kernel import build_kernel
    from perturbkit.kernel.build import describe_build, describe_upload
    from perturbkit.kernel.pipeline import kernel_spec

    from perturbkit.blend.files import recommended_file

    check_writable(args.kernels, "--kernels")
    blend = args.blend or (None if args.model or args.config else recommended_file(args.submissions, say=_warn, required=False))
    spec = kernel_spec(blend=blend, models=args.model, config_paths=args.config, configs_dir=args.configs_dir,
                       overrides=args.set, refit=args.refit)
    sources = [*args.dataset_source, *([args.deps_dataset] if args.deps_dataset else [])]
    built = build_kernel(spec, user=kaggle_username(args.user), slug=args.slug, out_root=args.kernels, title=args.title, enable_gpu=args.gpu,
                         dataset_sources=sources, force=args.force)
    print(describe_build(built, spec, gpu=args.gpu))
    for warning in built.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(describe_upload(built))


def cmd_kernel_deps(args) -> None:
    from perturbkit.kaggle import kaggle_username
    from perturbkit.kernel.deps import describe_deps, prepare_deps

    out = args.out or Path(args.kernels) / args.slug
    deps = prepare_deps(out, user=kaggle_username(args.user), slug=args.slug, packages=args.packages, python_version=args.python_version, with_deps=args.with_deps)
    print(describe_deps(deps))


def _kernel_folder(args) -> Path:
    return Path(args.dir) if args.dir else Path(args.kernels) / args.slug


def _follow_and_fetch(kernel: str, args, api) -> None:
    from perturbkit.kernel.remote import follow_and_fetch, output_folder

    follow_and_fetch(kernel, output_folder(kernel, args.out, args.kernels), interval=args.interval, timeout=args.timeout,
                     output=args.output, api=api)


def cmd_kernel_push(args) -> None:
    from perturbkit.kaggle import kaggle_api
    from perturbkit.kernel.metadata import read_metadata
    from perturbkit.kernel.remote import push_kernel

    folder = _kernel_folder(args)
    read_metadata(folder)  # an unbuilt or broken kernel folder is named before credentials are looked for
    api = kaggle_api()
    pushed = push_kernel(folder, api=api)
    print(f"pushed {pushed.kernel} version {pushed.version}: {pushed.url}")
    if args.follow:
        _follow_and_fetch(pushed.kernel, args, api)


def cmd_kernel_status(args) -> None:
    from perturbkit.kaggle import check_finished, kaggle_api, kernel_status
    from perturbkit.kernel.remote import kernel_id

    kernel = kernel_id(args.kernel, None if args.kernel else _kernel_folder(args))
    api = kaggle_api()
    if args.follow:
        _follow_and_fetch(kernel, args, api)
        return
    status = kernel_status(kernel, api=api)
    print(f"{kernel}: {status.status.lower()}" + (f" ({status.failure_message})" if status.failure_message else ""))
    if status.final:
        check_finished(status)


def cmd_kernel_output(args) -> None:
    from perturbkit.kaggle import download_output
    from perturbkit.kernel.remote import kernel_id, output_folder

    kernel = kernel_id(args.kernel, None if args.kernel else _kernel_folder(args))
    out = output_folder(kernel, args.out, args.kernels)
    files = download_output(kernel, out)
    print(f"{len(files)} file(s) from {kernel} in {out}/:")
    for path in files:
        print(f"  {path}")


def cmd_kernel_logs(args) -> None:
    from perturbkit.kaggle import kernel_logs
    from perturbkit.kernel.remote import kernel_id

    print(kernel_logs(kernel_id(args.kernel, None if args.kernel else _kernel_folder(args))), end="")


def cmd_submit(args) -> None:
    from perturbkit.blend.files import recommended_file
    from perturbkit.blend.record import check_blend_file
    from perturbkit.kaggle import submit_file
    from perturbkit.submit import check_submission

    args.file = args.file or recommended_file(args.submissions, "csv", say=_warn)
    check_blend_file(args.file)  # a blend's csv must be the one its record lists
    if not args.no_check:
        check_submission(args.file, args.template)
    print(submit_file(args.file, args.message, competition=args.competition))


def cmd_probes(args) -> None:
    from perturbkit.kaggle.probes import fetch_probe_scores, submit_probes

    from perturbkit.blend.leaderboard import PUBLIC_BOARD

    if args.probes_command == "submit":
        for reply in submit_probes(args.submissions, competition=args.competition):
            print(reply)
        print(f"submitted; once Kaggle has scored them: perturbkit probes fetch --submissions {args.submissions}")
        print(f"their public scores come from {PUBLIC_BOARD} (the 155 rows of the other 79 rank the competition and stay unseen)")
        return
    scores = fetch_probe_scores(args.submissions, competition=args.competition)
    print(f"public scores ({PUBLIC_BOARD}): " + ", ".join(f"x{s:g}: {'pending' if v is None else f'{v:.5f}'}" for s, v in scores.items()))
    if all(v is not None for v in scores.values()):
        print("all probes scored; rerun the recipe to apply the factor")


def _add_kaggle_commands(commands) -> None:
    """What talks to Kaggle: ``data download``, ``kernel ...``, ``probes``, ``submit``."""
    from perturbkit.data.layout import COMPETITION

    data = commands.add_parser("data", help="the competition data from Kaggle")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    download = data_commands.add_parser("download", help="download the competition files with the Kaggle client, unzip, validate")
    download.add_argument("--out", type=Path, default=Path("data/kaggle"))
    download.add_argument("--quiet", action="store_true")
    download.add_argument("--force", action="store_true", help="replace --out even if perturbkit did not write it")
    download.set_defaults(func=cmd_data_download)

    _add_kernel_commands(commands)
    competition = _parent("--competition", default=COMPETITION, help="the Kaggle competition (default: %(default)s)")

    probes = commands.add_parser("probes", help="submit the recipe's leaderboard probe files, or fetch their public scores "
                                 "(Kaggle's public leaderboard: the 100 test rows of its 50 public compounds)",
                                 description="--submissions: the folder holding probes.json.", parents=[_submissions(), competition])
    probes.add_argument("probes_command", choices=["submit", "fetch"])
    probes.set_defaults(func=cmd_probes)

    submit = commands.add_parser("submit", help="submit a file to the competition with the Kaggle client", parents=[_submissions(), competition])
    submit.add_argument("file", type=Path, nargs="?", default=None, help="default: <submissions>/recipe/blend.csv, else blend/")
    submit.add_argument("-m", "--message", required=True)
    submit.add_argument("--template", type=Path, default=None, help="check ids/genes against this sample_submission.csv")
    submit.add_argument("--no-check", action="store_true", help="skip the check against the competition's ids and genes")
    submit.set_defaults(func=cmd_submit)


def _kernels(slug: str = "perturbkit-submission") -> argparse.ArgumentParser:
    parent = _parent("--slug", default=slug, help="kernel slug (default: %(default)s)")
    parent.add_argument("--kernels", default="kernels", help="root of the kernel folders (default kernels/)")
    return parent


def _kernel_id() -> argparse.ArgumentParser:
    parent = _parent("kernel", nargs="?", default=None, help="<username>/<kernel-slug> (default: from --dir)")
    parent.add_argument("--dir", default=None, help="kernel folder (default kernels/<slug>)")
    return parent


def _following() -> argparse.ArgumentParser:
    parent = _parent("--follow", action="store_true", help="poll the run's status until it ends")
    parent.add_argument("--output", action="store_true", help="with --follow: then download its output")
    parent.add_argument("--interval", type=flag(float), default=30.0, help="seconds between status polls")
    parent.add_argument("--timeout", type=flag(float), default=12 * 3600.0, help="give up following after this many seconds")
    parent.add_argument("--out", type=Path, default=None, help="output folder (default kernels/<slug>-output)")
    return parent


def _add_kernel_commands(commands) -> None:
    """``kernel build|deps|push|status|output|logs``."""
    kernel = commands.add_parser("kernel", help="build, push and follow the Kaggle kernel")
    kernel_commands = kernel.add_subparsers(dest="kernel_command", required=True)
    user = _parent("--user", default=None, help="Kaggle username (default: KAGGLE_USERNAME)")

    build = kernel_commands.add_parser("build", help="write kernels/<slug>/: kernel-metadata.json + one offline script",
                                       parents=[_kernels(), user, _submissions(), _configs()])
    build.add_argument("--model", action="append", default=[], help="a model, with configs/<model>.toml (repeatable)")
    build.add_argument("--config", action="append", default=[], type=Path, help="a model config TOML naming its model (repeatable)")
    build.add_argument("--blend", type=Path, default=None, help="a blend record (default without --model/--config: "
                       "<submissions>/recipe/blend.json, else blend/)")
    build.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every --model/--config")
    build.add_argument("--refit", action="store_true", help="test predictions from refits on all rows")
    build.add_argument("--title", default=None, help="kernel title; must slugify to the slug")
    build.add_argument("--gpu", action="store_true", help="enable_gpu in the metadata")
    build.add_argument("--deps-dataset", default=None, metavar="USER/SLUG", help="the wheels dataset from `kernel deps`")
    build.add_argument("--dataset-source", action="append", default=[], metavar="USER/SLUG", help="another dataset to attach")
    build.add_argument("--force", action="store_true", help="replace <kernels>/<slug>[-code] even if perturbkit did not create them")
    build.set_defaults(func=cmd_kernel_build)

    deps = kernel_commands.add_parser("deps", help="download wheels the Kaggle image lacks into a dataset folder",
                                      parents=[_kernels("perturbkit-deps"), user])
    deps.add_argument("--packages", nargs="+", default=None, help="packages to download (default: those the feature blocks import)")
    deps.add_argument("--with-deps", action="store_true", help="their dependencies too")
    deps.add_argument("--python-version", default="3.11", help="the Kaggle image's Python (default 3.11)")
    deps.add_argument("--out", type=Path, default=None, help="default kernels/<slug>")
    deps.set_defaults(func=cmd_kernel_deps)

    push = kernel_commands.add_parser("push", help="push kernels/<slug> with the Kaggle client", parents=[_kernels(), _following()])
    push.add_argument("--dir", default=None, help="kernel folder (default kernels/<slug>)")
    push.set_defaults(func=cmd_kernel_push)

    status = kernel_commands.add_parser("status", help="the status of a pushed kernel's run", parents=[_kernel_id(), _kernels(), _following()])
    status.set_defaults(func=cmd_kernel_status)

    output = kernel_commands.add_parser("output", help="download a kernel's output files and log", parents=[_kernel_id(), _kernels()])
    output.add_argument("--out", type=Path, default=None, help="default kernels/<slug>-output")
    output.set_defaults(func=cmd_kernel_output)

    logs = kernel_commands.add_parser("logs", help="print the log of a kernel's latest run", parents=[_kernel_id(), _kernels()])
    logs.set_defaults(func=cmd_kernel_logs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perturbkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_fit_commands(commands)
    _add_study_commands(commands)
    _add_data_commands(commands)
    _add_blend_commands(commands)

    from perturbkit.tune.cli import add_parser as add_tune_parser

    add_tune_parser(commands, parents=[*_dataset(), _store(), _configs()])
    _add_kaggle_commands(commands)
    return parser


def _add_fit_commands(commands) -> None:
    """``cv`` (one model) and ``recipe`` (the recipe's members, blended)."""
    from perturbkit.folds import list_splitters, splitter_help

    cv = commands.add_parser("cv", help="cross-validate a model and store the run", parents=[*_dataset(), _store(), _configs(), _progress()])
    cv.add_argument("--model", required=True)
    cv.add_argument("--config", type=Path, default=None, help="the model config (default: <configs-dir>/<model>.toml if present)")
    cv.add_argument("--scheme", default=None, choices=list_splitters(), help="default: configs/cv.toml; " + "; ".join(f"{k}: {v}" for k, v in splitter_help().items()))
    cv.add_argument("--seeds", type=flag(list[int], _whole_numbers), default=None,
                    help="comma-separated seeds, e.g. 0,1,2: every fold fitted once per seed, predictions averaged")
    cv.add_argument("--seed", type=flag(int), default=None, help="the models' and folds' random seed (cv.seed; default 0)")
    cv.add_argument("--n-splits", type=flag(int), default=None, help="folds (cv.n_splits; default: the scheme's own)")
    cv.add_argument("--refit", action="store_true", help="test predictions from a model refitted on all rows")
    cv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. params.alpha=3")
    cv.set_defaults(func=cmd_cv)

    recipe = commands.add_parser("recipe", help="cross-validate the recipe's members (reusing stored runs), blend, write the submission",
                                 parents=[*_dataset(), _store(), _submissions(), _configs(), _progress()])
    recipe.add_argument("--recipe", type=Path, default=Path("configs/recipe.toml"), help="the recipe (default: %(default)s)")
    recipe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every member, e.g. cv.seed=1")
    recipe.add_argument("--dataset-id", default=None, help="uns['dataset_id'] of the h5ad (default: from --data)")
    recipe.add_argument("--force", action="store_true", help="replace <submissions>/recipe/ even if another configuration wrote it")
    recipe.set_defaults(func=cmd_recipe)


def _add_study_commands(commands) -> None:
    """The studies on the demo worlds: ``agreement``, ``results`` and ``public-split``; their run store holds one folder
    per variant, shared (each reuses the others' runs)."""
    study = Path("oof/agreement")
    agreement = commands.add_parser("agreement", help="CV vs hidden-test ranking of models, per scheme and demo variant",
                                    parents=[_genes(2000), _store(study)])
    agreement.add_argument("--variants", type=flag(list[str], _names), default=None, help="comma-separated demo variants (default: all)")
    agreement.add_argument("--schemes", type=flag(list[str], _names), default=None, help="comma-separated CV schemes (default: all registered)")
    agreement.add_argument("--models", type=flag(list[str], _names), default=None, help="comma-separated models (default: all registered)")
    agreement.add_argument("--recipe", type=Path, default=None, help="also score this recipe's blend (e.g. configs/recipe.toml)")
    agreement.add_argument("--out", type=Path, default=Path("reports/agreement"))
    agreement.set_defaults(func=cmd_agreement)

    results = commands.add_parser("results", help="the Results page: the agreement study under the recipe's scheme on every demo variant",
                                  parents=[_genes(), _store(study)])
    results.add_argument("--recipe", type=Path, default=Path("configs/recipe.toml"), help="the recipe: its scheme, its blend and members")
    results.add_argument("--models", type=flag(list[str], _names), default=None, help="comma-separated models (default: all registered)")
    results.add_argument("--out", type=Path, default=Path("docs/results.md"))
    results.set_defaults(func=cmd_results)

    split = commands.add_parser("public-split", help="on the demo worlds: how well Kaggle's public rows (and random ones) "
                                "predict the private score and the leaderboard factor", parents=[_genes(2000), _store(study)])
    split.add_argument("--variants", type=flag(list[str], _names), default=None, help="comma-separated demo variants (default: all)")
    split.add_argument("--models", type=flag(list[str], _names), default=PUBLIC_SPLIT_MODELS, help=f"comma-separated models, the submissions (default: {PUBLIC_SPLIT_MODELS})")
    split.add_argument("--splits", type=flag(PositiveCount), default=1000, help="random public/private splits to compare Kaggle's with")
    split.add_argument("--split-seed", type=flag(Seed), default=0, help="seed of the random splits (default 0)")
    split.add_argument("--out", type=Path, default=None, help="also write the long table as CSV")
    split.set_defaults(func=cmd_public_split)


def _add_data_commands(commands) -> None:
    """Stored runs, scores, data and models: ``runs``, ``score``, ``demo``, ``validate``, ``models``."""
    runs = commands.add_parser("runs", help="list stored runs with their scores", parents=[_data(None), _genes(), _store(), _configs(), _scoring()],
                               description="--data: only the runs of this data; --configs-dir: the configs the overrides column "
                               "compares against; --demo-genes: the genes of the demo world --data or --truth names.")
    runs.add_argument("--per-cell-type", action="store_true", help="add each cell type's CV MRRMSE")
    runs.add_argument("--truth", default=None, help=f"score each run's test predictions against this truth file, or {TRUTH_HELP}")
    runs.add_argument("--clean", action="store_true", help="first remove staging folders of runs killed more than a day ago")
    runs.add_argument("--study", default=None, help="only the kept trials of this tuning study, best first, with trial numbers")
    runs.set_defaults(func=cmd_runs)

    score = commands.add_parser("score", help="score a submission against a truth file", parents=[_genes(), _submissions(), _scoring()])
    score.add_argument("submission", type=Path, nargs="?", default=None, help="default: <submissions>/recipe/blend.csv, else blend/")
    score.add_argument("--truth", required=True, help="test_truth.parquet/.csv (Kaggle's wide layout), openproblems' de_test.h5ad, "
                       f"or {TRUTH_HELP}")
    score.add_argument("--rows", choices=["all", "public", "private"], default="all",
                       help="score all truth rows (default), or only Kaggle's public or private leaderboard's (a demo world's own split)")
    score.set_defaults(func=cmd_score)

    check = commands.add_parser("check", help="check a submission offline: ids, columns and their order, finite values",
                                description="--data: its template, else id_map.csv and de_train's genes.", parents=[_data(None), _genes()])
    check.add_argument("submission", type=Path)
    check.add_argument("--template", type=Path, default=None, help="a sample_submission.csv (default: the competition's layout)")
    check.set_defaults(func=cmd_check)

    demo = commands.add_parser("demo", help="generate (or find) the cached demo world and print its directory",
                               description="Generate (on first use) or find the cached demo world and print its folder.")
    demo.add_argument("--genes", type=flag(GeneCount), default=None, help="genes of the world, a fixed subset of the real ones (default: all 18,211)")
    demo.add_argument("--world-seed", type=flag(Seed), default=0, help="seed of the generator: another seed, another world (default 0)")
    demo.add_argument("--root", type=Path, default=None, help="cache folder of the worlds (default: $PERTURBKIT_DEMO_ROOT or data/demo)")
    demo.add_argument("--variant", default="default", help="which structure of world (default: default; see --list)")
    demo.add_argument("--list", action="store_true", help="list the demo variants and what differs between them")
    demo.set_defaults(func=cmd_demo)

    validate = commands.add_parser("validate", help="load and validate a dataset, print what it holds", parents=_dataset())
    validate.set_defaults(func=cmd_validate)

    models = commands.add_parser("models", help="list registered models")
    models.set_defaults(func=cmd_models)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PerturbkitError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `perturbkit rank ... | head`: the reader left, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not raise again
        return 0
    return 0
