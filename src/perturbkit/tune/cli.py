"""``perturbkit tune``: its arguments and command; ``perturbkit.cli`` adds the parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from perturbkit.types import Seed, flag

TUNED_DIR = Path("configs/tuned")
REPORTS_DIR = Path("reports/tune")


def add_parser(commands, parents) -> argparse.ArgumentParser:
    """The ``tune`` command; ``parents``: the CLI's shared data, run store and configs flags."""
    from perturbkit.folds import list_splitters
    from perturbkit.tune.storage import HEARTBEAT_INTERVAL
    from perturbkit.tune.study import PRUNERS

    tune = commands.add_parser(
        "tune",
        help="tune a model's [tune] space by CV MRRMSE in an Optuna study (SQLite here, PostgreSQL across machines)",
        description="Workers on other machines join the same study by running the same command with the same --storage "
        "(a PostgreSQL URL) and --study; give each machine its own --sampler-seed.",
        parents=parents,
    )
    tune.add_argument("--model", required=True)
    tune.add_argument("--trials", type=flag(int), default=20, help="finished or pruned trials this command adds, split over --workers (default 20)")
    tune.add_argument("--timeout", type=flag(float), default=None, help="each worker stops starting trials after this many seconds")
    tune.add_argument("--workers", type=flag(int), default=1, help="local worker processes on the study, at most one per trial and core (default 1)")
    tune.add_argument("--storage", default=None, help="SQLAlchemy URL of the study's storage (default sqlite:///<oof>/tune.db)")
    tune.add_argument("--study", default=None, help="study name (default: the model's name)")
    tune.add_argument("--sampler-seed", type=flag(Seed), default=0, help="seed of the trials' sampler: worker i samples with seed+i (default 0)")
    tune.add_argument("--pruner", choices=list(PRUNERS), default="median", help="prune on the folds' running MRRMSE (default median)")
    tune.add_argument("--scheme", default=None, choices=list_splitters(), help="CV scheme of the objective (default: configs/cv.toml)")
    tune.add_argument("--config", type=Path, default=None, help="the model config, whose [tune] table is the space (default: <configs-dir>/<model>.toml)")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed config override for every trial")
    tune.add_argument("--best", action="store_true", help="run no trial: print the study's best overrides, write the tuned config and plots")
    tune.add_argument("--out", type=Path, default=None, help=f"tuned config (default {TUNED_DIR}/<model>.toml)")
    tune.add_argument("--reports", type=Path, default=REPORTS_DIR, help=f"plots go to <reports>/<study>/ (default {REPORTS_DIR})")
    tune.add_argument("--heartbeat", type=flag(int), default=HEARTBEAT_INTERVAL,
                      help=f"seconds between a running trial's heartbeats; a trial silent for 4 of them is marked failed (default {HEARTBEAT_INTERVAL})")
    tune.set_defaults(func=cmd_tune)
    return tune


def cmd_tune(args) -> None:
    from perturbkit.tune.plots import write_study_plots
    from perturbkit.tune.study import TuneError, TuneSettings, check_outputs, open_study, run_tune, shipped_trial, write_tuned_config

    settings = TuneSettings(
        model=args.model, trials=args.trials, timeout=args.timeout, storage=args.storage, study=args.study, workers=args.workers,
        seed=args.sampler_seed, pruner=args.pruner, scheme=args.scheme, overrides=tuple(args.set), config_path=args.config,
        configs_dir=args.configs_dir, data=args.data, demo_genes=args.demo_genes, layer=args.layer, oof=args.oof, heartbeat=args.heartbeat,
    )
    out, reports = args.out or TUNED_DIR / f"{args.model}.toml", Path(args.reports) / settings.study_name
    check_outputs(out, reports)
    outcome = None
    if args.best:
        study = open_study(settings)
        if study.user_attrs.get("model") != args.model:
            raise TuneError(f"study {settings.study_name!r} tunes model {study.user_attrs.get('model')!r}, not {args.model!r}")
    else:
        outcome = run_tune(settings, say=lambda message: print(message, flush=True))
        study = outcome.study
        print(outcome.summary())
    path, overrides, trial = write_tuned_config(study, out, settings.storage_url)
    print(f"best trial {trial.number} of {len(study.trials)}: CV MRRMSE {trial.value:.4f}")
    shipped = shipped_trial(study)
    if shipped is not None:
        print(f"shipped config (trial {shipped.number}): CV MRRMSE {shipped.value:.4f}; tuned lower by {shipped.value - trial.value:.4f}")
    print("overrides: " + " ".join(f"--set {o}" for o in overrides))
    print("recipe member: set = [" + ", ".join(f"'{o}'" for o in overrides) + "]")
    print(f"tuned config written to {path}")
    for name, result in write_study_plots(study, reports).items():
        print(f"  {result}" if isinstance(result, Path) else f"  {name}: not drawn ({result})")
    if outcome is not None and outcome.failed_workers:
        raise TuneError("; ".join(
            f"worker {i} exited {code}: " + (f"its running trial(s) {outcome.failed_trials[i]} are marked failed"
                                            if outcome.failed_trials[i] else "it left no trial running")
            for i, code in outcome.failed_workers.items()) + "; the study is intact")
