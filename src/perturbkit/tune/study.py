"""Tuning studies: one Optuna study in a relational storage, any number of worker processes on it.

The objective is a model's CV MRRMSE through the same harness as ``perturbkit cv`` (``run_cv``):
after each fold the running score (the scheme-weighted MRRMSE of the rows validated so far, the
trial's objective once every fold is in) goes to Optuna, and a trial the pruner stops
raises ``TrialPruned`` inside ``run_cv``, so a pruned trial writes no run. A kept trial's run is
stored under the run store like any other, its meta tagged ``tune = {study, trial}``.

The study records the model, the config it tunes (without ``[tune]``) and the data's hash; a
worker whose config or data differ is refused, so workers on several machines only join a study
they can add comparable trials to.

A local worker process stops when its ``tune`` parent dies (:func:`spawned_worker`), failing the trial
it was running; a worker that dies has the trials it left running failed by its parent
(:func:`fail_running_trials`), so no trial waits for the heartbeat's grace period on this machine.
"""

from __future__ import annotations


import os
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from perturbkit.config import apply_overrides, config_hash, load_config
from perturbkit.errors import ConfigError, PerturbkitError, redact
from perturbkit.config import without_tune
from perturbkit.tune.space import SearchSpace, parse_space
from perturbkit.tune.storage import HEARTBEAT_INTERVAL, open_storage
from perturbkit.tune.toml_text import dumps

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

        from perturbkit.cv import run_cv, save_run

        with _stoppable():
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


def run_worker(job: WorkerJob, dataset=None, callbacks=()) -> None:
    """One worker: ``study.optimize`` on the shared study with its own seeded sampler."""
    import optuna

    settings = job.settings
    dataset = dataset if dataset is not None else _load_data(settings, job.config, job.space)
    # Each worker samples with its own seed; constant_liar keeps concurrent workers off the same points.
    sampler = optuna.samplers.TPESampler(seed=settings.seed + job.index, constant_liar=True)
    study = open_study(settings, sampler=sampler)
    if job.index > 0:
        _wait_for_queued_trials(study)
    objective = Objective(dataset, without_tune(job.config), job.space, settings.study_name, Path(settings.oof), job.worker)
    _STOP.allowed = False  # inside Optuna's bookkeeping a stop waits for the objective (_stoppable)
    try:
        study.optimize(objective, n_trials=job.trials, timeout=settings.timeout, gc_after_trial=True,
                       callbacks=[*callbacks, _stop_if_requested])
    finally:
        _STOP.allowed = True
    if _STOP.pending:
        raise ParentGone("stopped between trials")


def _wait_for_queued_trials(study, seconds: float = 60.0) -> None:
    """Wait until the study's queued trials are taken: Optuna cannot lock a queued trial in SQLite, so two workers
    starting together may both run it (the second then fails with "Cannot tell a COMPLETE trial")."""
    import optuna

    deadline = time.monotonic() + seconds
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)) and time.monotonic() < deadline:
        time.sleep(0.05)


class ParentGone(KeyboardInterrupt):
    """The worker's parent ``tune`` died (or the worker was told to stop): Optuna marks the running trial failed."""


class _STOP:
    """Where a stop (SIGTERM) may raise. Inside a trial's objective it raises at once and Optuna marks the trial
    failed; inside Optuna's own bookkeeping (between creating a trial and calling the objective, or while it records
    one) it would leave the trial RUNNING, so there it is held until the next objective starts or a trial ends."""

    allowed = True
    pending = False


def _on_sigterm(signum, frame):
    if _STOP.allowed:
        raise ParentGone(f"signal {signum}")
    _STOP.pending = True


@contextmanager
def _stoppable():
    if _STOP.pending:
        raise ParentGone("stop requested before the trial started")
    previous, _STOP.allowed = _STOP.allowed, True
    try:
        yield
    finally:
        _STOP.allowed = previous


def _stop_if_requested(study, trial) -> None:
    if _STOP.pending:
        study.stop()


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM to this process when its parent dies (Linux ``PR_SET_PDEATHSIG``); SIGTERM stops the running trial."""
    import ctypes
    import signal
    import sys

    signal.signal(signal.SIGTERM, _on_sigterm)
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before the request above took effect
        raise ParentGone("parent gone at start")


def spawned_worker(job: WorkerJob, parent_pid: int) -> None:
    """A worker process of ``run_tune``: it stops when its parent does, at once on Linux, else between trials."""
    import signal

    def parent_watch(study, trial) -> None:  # the portable check, after each trial
        if os.getppid() != parent_pid:
            study.stop()

    try:
        _die_with_parent(parent_pid)
        run_worker(job, callbacks=[parent_watch])
    except ParentGone:
        raise SystemExit(128 + signal.SIGTERM) from None


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


def _shares(trials: int | None, workers: int) -> list[int | None]:
    """--trials split over the workers, so together they run exactly that many."""
    if trials is None:
        return [None] * workers
    return [trials // workers + (index < trials % workers) for index in range(workers)]


@contextmanager
def _thread_limits(workers: int):
    """Spawned workers inherit the environment: split the cores between them (unless the user set a limit)."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
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


def run_tune(settings: TuneSettings, *, say=print) -> TuneOutcome:
    """Check the config and space, create or join the study, run ``settings.workers`` workers, wait for them."""
    import multiprocessing

    config, space = load_tune_config(settings)
    dataset = _load_data(settings, config, space)  # also caches the demo world once, before workers read it
    study = open_study(settings, create=True, config=config, space=space, data_hash=dataset.data_hash)
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    say(f"study {settings.study_name!r} in {redact(settings.storage_url)}: {finished} finished trials so far; "
        f"{settings.workers} worker(s), {settings.trials or 'unlimited'} trials, pruner {settings.pruner}, "
        f"space {', '.join(d.key for d in space.dimensions)}")
    shares = _shares(settings.trials, settings.workers)
    started = time.perf_counter()
    failed: dict[int, int] = {}
    workers = worker_names(settings.workers)
    jobs = [WorkerJob(settings, config, space, index, share, worker) for index, (share, worker) in enumerate(zip(shares, workers))]
    if settings.workers == 1:
        run_worker(jobs[0], dataset)
    else:
        context = multiprocessing.get_context("spawn")  # no forked database connections or torch threads
        processes = [context.Process(target=spawned_worker, args=(job, os.getpid()), name=f"tune-worker-{job.index}") for job in jobs]
        with _thread_limits(settings.workers):
            for process in processes:
                process.start()
        for index, process in enumerate(processes):
            process.join()
            if process.exitcode != 0:
                failed[index] = process.exitcode
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
    path.write_text(dumps(config, header))
    return path, overrides, trial


def filter_study_runs(runs, study: str):
    """``perturbkit runs --study NAME``: the stored runs of that study's trials, with their trial numbers."""
    from perturbkit.cv.store import read_meta

    trials = [read_meta(path).get("tune", {}) for path in runs["path"]]
    runs = runs.assign(study=[t.get("study") for t in trials], trial=[t.get("trial") for t in trials])
    return runs[runs["study"] == study].drop(columns="study").sort_values("mrrmse", ignore_index=True)
