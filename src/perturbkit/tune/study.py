"""Tuning studies: one Optuna study in a relational storage, any number of worker processes on it.

The objective is a model's CV MRRMSE through the same harness as ``perturbkit cv`` (``run_cv``):
after each fold the running score (the scheme-weighted MRRMSE of the rows validated so far, the
trial's objective once every fold is in) goes to Optuna, and a trial the pruner stops
raises ``TrialPruned`` inside ``run_cv``, so a pruned trial writes no run. A kept trial's run is
stored under the run store like any other, its meta tagged ``tune = {study, trial, worker}``.

The study records the model, the config it tunes (without ``[tune]``) and the data's hash; a
worker whose config or data differ is refused, so workers on several machines only join a study
they can add comparable trials to. Optuna's heartbeat fails the trials of a worker that died
anywhere; on this machine two things are faster than its grace period: a worker whose ``tune`` is
gone (or stops it) fails its running trial and exits, and ``tune`` fails those of a worker that died.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from perturbkit.config import apply_overrides, config_hash, load_config, without_tune
from perturbkit.constraints import available_cpus
from perturbkit.errors import ConfigError, PerturbkitError, redact
from perturbkit.io import OutputError, atomic_file, check_writable, is_plain_name
from perturbkit.tune.space import SearchSpace, parse_space
from perturbkit.tune.storage import HEARTBEAT_INTERVAL, open_storage
from perturbkit.tune.toml_text import dumps
from perturbkit.tune.watch import TrialLines

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _median():
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5)


def _halving():
    import optuna

    # Folds are the resource: rungs after 1, 2 and 4 folds.
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)


def _no_pruning():
    import optuna

    return optuna.pruners.NopPruner()


PRUNERS = {"median": _median, "halving": _halving, "none": _no_pruning}


class TuneError(PerturbkitError):
    """A study that cannot be joined or read, or workers that did not finish."""


@dataclass(frozen=True)
class TuneSettings:
    """What ``perturbkit tune`` was asked; ``storage`` defaults to ``sqlite:///<oof>/tune.db``, ``study`` to the model."""

    model: str
    trials: int | None = 20
    timeout: float | None = None
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    seed: int = 0
    pruner: str = "median"
    scheme: str | None = None
    overrides: tuple[str, ...] = ()
    config_path: Path | None = None
    configs_dir: Path = Path("configs")
    data: str = "demo"
    demo_genes: int | None = None
    layer: str = "sign_log10_pval"
    oof: Path = Path("oof")
    heartbeat: int = HEARTBEAT_INTERVAL

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.oof) / 'tune.db'}"

    @property
    def study_name(self) -> str:
        return self.study or self.model

    def __post_init__(self) -> None:
        check_study_name(self.study_name)


def check_study_name(name: str) -> str:
    """A study's name becomes the folder ``<reports>/<study>``: a plain name, never a path out of it."""
    if not is_plain_name(name):
        raise ConfigError(f"--study {name!r}: a study name is a folder under --reports: use a plain name "
                          "(no '/' or '\\', not starting with '.', no control characters, at most 100 characters)")
    return name


def check_outputs(out: Path | str, reports: Path | str) -> None:
    """Before any trial: the tuned config's file (``--out``) and the plots' folder (``--reports``) can be written."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"--out {out}: is a folder; name the tuned config's file, e.g. {out / 'tuned.toml'}")
    if out.exists():
        try:
            out.open("ab").close()  # opens for writing without changing it
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot write it ({exc.strerror}); nothing was computed") from None
    else:
        check_writable(out.parent, "--out")
    check_writable(reports, "--reports")


def load_tune_config(settings: TuneSettings) -> tuple[dict, SearchSpace]:
    """The model's config (``--set`` and ``--scheme`` applied) and its ``[tune]`` space, both checked."""
    if settings.pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner {settings.pruner!r}, known: {', '.join(PRUNERS)}")
    if settings.workers < 1 or (settings.trials is not None and settings.trials < 1):
        raise ConfigError(f"--workers {settings.workers} --trials {settings.trials}: both must be at least 1")
    config = load_config(settings.model, config_path=settings.config_path, configs_dir=settings.configs_dir, overrides=settings.overrides,
                         cv={"scheme": settings.scheme} if settings.scheme else None)
    where = str(settings.config_path or Path(settings.configs_dir) / f"{settings.model}.toml")
    return config, parse_space(config, where)


def _load_data(settings: TuneSettings, config: dict, space: SearchSpace):
    from perturbkit.data import load
    from perturbkit.models import feature_requirements

    # A trial may switch chemistry blocks on: then every trial's data needs SMILES.
    needs_smiles = feature_requirements(without_tune(config))[0] or any(d.key == "features.blocks" for d in space.dimensions)
    return load(settings.data, demo_genes=settings.demo_genes, layer=settings.layer, require_smiles=needs_smiles)


def _fingerprint(config: dict, data_hash: str) -> dict:
    base = without_tune(config)
    return {"model": base["model"], "config_hash": config_hash(base), "data_hash": data_hash}


def open_study(settings: TuneSettings, *, sampler=None, create: bool = False, config: dict | None = None, space: SearchSpace | None = None,
               data_hash: str | None = None):
    """Create or join (``create``) the study, refusing one made for another model, config or data; else load it.

    A new study's first trial is the config's own values when they lie in the space (queued for whichever worker starts first).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings.storage_url, heartbeat_interval=settings.heartbeat)
    where = f"study {settings.study_name!r} in {redact(settings.storage_url)}"
    pruner = PRUNERS[settings.pruner]()
    if not create:
        try:
            return optuna.load_study(study_name=settings.study_name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)) or "none"
            raise TuneError(f"{where}: no such study (studies there: {known})") from None
    study = optuna.create_study(storage=storage, study_name=settings.study_name, direction="minimize",
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    wanted = _fingerprint(config, data_hash)
    stored = {key: study.user_attrs.get(key) for key in wanted}
    if stored["config_hash"] is None:
        for key, value in wanted.items():
            study.set_user_attr(key, value)
        study.set_user_attr("config", without_tune(config))
        shipped = space.params_of(config)
        if shipped is not None:  # the config's own values run first: the study's best is never worse than it
            study.enqueue_trial(shipped, user_attrs={"shipped": True}, skip_if_exists=True)
    elif stored != wanted:
        differ = ", ".join(f"{k} {stored[k]} (this run: {wanted[k]})" for k in wanted if stored[k] != wanted[k])
        raise TuneError(f"{where} was made for other settings: {differ}; name another study with --study")
    return study


@dataclass
class Objective:
    """One trial: sample the space, cross-validate through ``run_cv``, report each fold, keep the run."""

    dataset: object
    config: dict  # without [tune]
    space: SearchSpace
    study_name: str
    oof: Path
    worker: str

    def __call__(self, trial) -> float:
        import optuna

        _Stop.inside = True
        try:
            if _Stop.pending:
                raise _Stopped
            return self._trial(trial)
        except _Stopped:  # fail it ourselves: Optuna would log the stop as an error, with a traceback (it lets SystemExit pass)
            trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise SystemExit(STOPPED) from None
        finally:
            _Stop.inside = False

    def _trial(self, trial) -> float:
        import optuna

        from perturbkit.cv import run_cv, save_run

        trial.set_user_attr("worker", self.worker)  # first: the parent fails a dead worker's running trials by this name
        trial.set_user_attr("pid", os.getpid())
        overrides = self.space.suggest(trial)
        trial.set_user_attr("overrides", overrides)

        def on_fold(fold: int, running: float) -> None:
            trial.report(running, fold)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {fold}: running MRRMSE {running:.4f}")

        result = run_cv(self.dataset, apply_overrides(self.config, overrides), progress=False, on_fold=on_fold)
        result.meta["tune"] = {"study": self.study_name, "trial": trial.number, "worker": self.worker}
        run_dir = save_run(result, self.oof)  # a run id of its own per writer: workers never write the same run
        trial.set_user_attr("run", str(run_dir))
        return float(result.meta["scores"]["overall"])


@dataclass(frozen=True)
class WorkerJob:
    settings: TuneSettings
    config: dict  # the checked config, with [tune]
    space: SearchSpace
    index: int
    trials: int | None  # this worker's share of --trials (None: until --timeout)
    worker: str  # how its trials name it (user_attrs["worker"])
    every: float = 0.0  # TrialLines.every


def run_worker(job: WorkerJob, dataset=None, say=print, callbacks=()) -> None:
    """One worker: ``study.optimize`` on the shared study with its own seeded sampler, a line per finished trial."""
    import optuna

    settings = job.settings
    dataset = dataset if dataset is not None else _load_data(settings, job.config, job.space)
    # Each worker samples with its own seed; constant_liar keeps concurrent workers off the same points.
    sampler = optuna.samplers.TPESampler(seed=settings.seed + job.index, constant_liar=True)
    study = open_study(settings, sampler=sampler)
    if job.index > 0:
        _wait_for_queued_trials(study)
    objective = Objective(dataset, without_tune(job.config), job.space, settings.study_name, Path(settings.oof), job.worker)
    study.optimize(objective, n_trials=job.trials, timeout=settings.timeout, gc_after_trial=True,
                   callbacks=[TrialLines(say, job.every, job.trials), *callbacks])


def _wait_for_queued_trials(study, seconds: float = 60.0) -> None:
    """Wait until the study's queued trials are taken: Optuna cannot lock a queued trial in SQLite, so two workers
    starting together may both run it (the second then fails with "Cannot tell a COMPLETE trial")."""
    import optuna

    deadline = time.monotonic() + seconds
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)) and time.monotonic() < deadline:
        time.sleep(0.05)


STOPPED = 128 + signal.SIGTERM  # a stopped worker's exit code, as if SIGTERM had ended it


class _Stopped(BaseException):
    """Raised in a trial's objective by SIGTERM; not an ``Exception``, so no model code catches it."""


class _Stop:
    """A spawned worker's SIGTERM. Inside an objective it raises at once (the objective fails its trial and exits);
    inside Optuna's bookkeeping (creating or recording a trial) it would leave that trial RUNNING, so there it is only
    noted, and the worker stops at the next objective's start or after the trial is recorded."""

    inside = False
    pending = False


def _on_sigterm(signum, frame) -> None:
    first, _Stop.pending = not _Stop.pending, True
    if _Stop.inside and first:
        raise _Stopped


def _exit_if_stopped(study, trial) -> None:  # an optimize callback: the trial is recorded
    if _Stop.pending:
        raise SystemExit(STOPPED)


def _watch_parent(parent_pid: int) -> None:
    """SIGTERM to this worker once its parent is gone (it is then another process's child)."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def spawned_worker(job: WorkerJob, parent_pid: int) -> None:
    """A worker process of ``run_tune``: it stops on SIGTERM, from its parent (interrupted) or from itself (parent gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops its workers
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    run_worker(job, say=functools.partial(print, flush=True), callbacks=[_exit_if_stopped])


def fail_running_trials(study, worker: str) -> list[int]:
    """Mark failed the trials a dead worker left RUNNING (instead of waiting for the heartbeat's grace period)."""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    numbers = [t.number for t in running if t.user_attrs.get("worker") == worker]
    for number in numbers:
        study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    return numbers


def worker_names(workers: int) -> list[str]:
    """Names unique to this command's workers: host, a random tag, the worker's index."""
    tag = uuid.uuid4().hex[:6]
    return [f"{socket.gethostname()}/{tag}-{index}" for index in range(workers)]


def worker_count(settings: TuneSettings) -> int:
    """Local worker processes: --workers, but never more than the trials to run or the cores to run them on."""
    return min(settings.workers, settings.trials or settings.workers, available_cpus())


def _shares(trials: int | None, workers: int) -> list[int | None]:
    """--trials split over the workers, so together they run exactly that many."""
    if trials is None:
        return [None] * workers
    return [trials // workers + (index < trials % workers) for index in range(workers)]


@contextmanager
def _thread_limits(workers: int):
    """Spawned workers inherit the environment: split the cores between them (unless the user set a limit)."""
    threads = str(max(1, available_cpus() // workers))
    previous = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, threads)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)


@dataclass(frozen=True)
class TuneOutcome:
    study: object
    workers: list[str]  # the names of this command's workers
    seconds: float
    failed_workers: dict[int, int]  # worker index -> exit code
    failed_trials: dict[int, list[int]]  # worker index -> the trials it left running, now marked failed

    def trials(self) -> list:
        return [t for t in self.study.trials if t.user_attrs.get("worker") in self.workers]

    def counts(self) -> dict[str, int]:
        """This command's trials by state."""
        return {state: sum(t.state.name == state for t in self.trials()) for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}

    def per_worker(self) -> dict[str, int]:
        return {worker: sum(t.user_attrs.get("worker") == worker for t in self.trials()) for worker in self.workers}

    def pruning_saving(self) -> tuple[int, int, float]:
        """(folds skipped by pruning, folds a full trial runs, share of this command's CV time saved)."""
        import optuna

        trials = self.trials()
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.duration]
        pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
        if not complete:
            return 0, 0, 0.0
        n_folds = max(len(t.intermediate_values) for t in complete)
        skipped = sum(n_folds - len(t.intermediate_values) for t in pruned)
        fold_seconds = sum(t.duration.total_seconds() for t in complete) / (len(complete) * n_folds)
        spent = sum(t.duration.total_seconds() for t in (*complete, *pruned) if t.duration)
        return skipped, n_folds, skipped * fold_seconds / (spent + skipped * fold_seconds)

    def summary(self) -> str:
        counts = self.counts()
        done = counts["COMPLETE"] + counts["PRUNED"]
        skipped, n_folds, saved = self.pruning_saving()
        lines = [
            f"{done} trials ({counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed) "
            f"in {self.seconds / 60:.2f} min: {done / max(self.seconds / 60, 1e-9):.2f} trials/min",
            "trials per worker: " + ", ".join(f"{w} {n}" for w, n in self.per_worker().items()),
        ]
        if n_folds:
            lines.append(f"pruning skipped {skipped} folds of {n_folds} per trial, about {saved:.0%} of the CV time")
        return "\n".join(lines)


def run_tune(settings: TuneSettings, *, say=print, terminal: bool | None = None) -> TuneOutcome:
    """Check the config, space and run store, create or join the study, run the workers and wait for them.

    A line per finished trial (:mod:`perturbkit.tune.watch`) goes to ``say`` (a worker process prints it); on no
    ``terminal`` (default: whether stdout is one) at most one per ``QUIET_INTERVAL`` seconds and worker, new bests always.
    """
    import multiprocessing

    from perturbkit.progress import QUIET_INTERVAL

    config, space = load_tune_config(settings)
    check_writable(settings.oof, "--oof")
    dataset = _load_data(settings, config, space)  # also caches the demo world once, before workers read it
    study = open_study(settings, create=True, config=config, space=space, data_hash=dataset.data_hash)
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    n = worker_count(settings)
    capped = f" (--workers {settings.workers} capped at the trials and cores)" if n < settings.workers else ""
    say(f"study {settings.study_name!r} in {redact(settings.storage_url)}: {finished} finished trials so far; "
        f"{n} worker(s){capped}, {settings.trials or 'unlimited'} trials, pruner {settings.pruner}, "
        f"space {', '.join(d.key for d in space.dimensions)}")
    every = 0.0 if (sys.stdout.isatty() if terminal is None else terminal) else QUIET_INTERVAL
    started = time.perf_counter()
    failed: dict[int, int] = {}
    workers = worker_names(n)
    jobs = [WorkerJob(settings, config, space, index, share, worker, every)
            for index, (share, worker) in enumerate(zip(_shares(settings.trials, n), workers))]
    if n == 1:
        run_worker(jobs[0], dataset, say)
    else:
        context = multiprocessing.get_context("spawn")  # no forked database connections or torch threads
        processes = [context.Process(target=spawned_worker, args=(job, os.getpid()), name=f"tune-worker-{job.index}") for job in jobs]
        with _thread_limits(n):
            for process in processes:
                process.start()
        try:
            for process in processes:
                while process.exitcode is None:
                    process.join(1.0)  # wakes each second: a Ctrl-C may have gone to another thread of this process
        finally:  # an interrupted tune (Ctrl-C) stops its workers; each fails its running trial
            for process in processes:
                process.terminate()
                process.join()
        failed = {index: p.exitcode for index, p in enumerate(processes) if p.exitcode != 0}
    study = open_study(settings)
    failed_trials = {index: fail_running_trials(study, workers[index]) for index in failed}
    return TuneOutcome(study=study, workers=workers, seconds=time.perf_counter() - started, failed_workers=failed,
                       failed_trials=failed_trials)


def best_config(study) -> tuple[dict, list[str], object]:
    """The study's tuned config (its recorded config plus the best trial's overrides), the overrides, the trial."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise TuneError(f"study {study.study_name!r} has no complete trial yet ({len(study.trials)} trials)")
    trial = study.best_trial
    overrides = list(trial.user_attrs.get("overrides", []))
    return apply_overrides(study.user_attrs["config"], overrides), overrides, trial


def shipped_trial(study):
    """The complete trial that ran the config's own values (queued first in a new study), if any."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return next((t for t in complete if t.user_attrs.get("shipped")), None)


def write_tuned_config(study, path: Path | str, storage_url: str) -> tuple[Path, list[str], object]:
    """configs/tuned/<model>.toml: a complete config that ``cv --config`` reads back unchanged."""
    config, overrides, trial = best_config(study)
    header = (
        f"{config['model']} tuned by `perturbkit tune`: study {study.study_name!r} in {redact(storage_url)},\n"
        f"trial {trial.number} of {len(study.trials)}, CV MRRMSE {trial.value:.6f} (scheme {config['cv']['scheme']}).\n"
        f"overrides: {' '.join(overrides)}\n"
        f"cross-validate: perturbkit cv --model {config['model']} --config {path}"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as staging:
        staging.write_text(dumps(config, header))
    return path, overrides, trial


def filter_study_runs(runs, study: str):
    """``perturbkit runs --study NAME``: the stored runs of that study's trials, with their trial numbers."""
    from perturbkit.cv.store import read_meta

    trials = [read_meta(path).get("tune", {}) for path in runs["path"]]
    runs = runs.assign(study=[t.get("study") for t in trials], trial=[t.get("trial") for t in trials])
    return runs[runs["study"] == study].drop(columns="study").sort_values("mrrmse", ignore_index=True)
