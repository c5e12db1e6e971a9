"""perturbkit tune: the [tune] space and its errors, pruning through the harness, workers sharing one
study in SQLite and in a real PostgreSQL server, a killed worker, the tuned config back into cv."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path

import optuna
import pytest

import postgres_cluster
from perturbkit.cli import main
from perturbkit.config import apply_overrides, load_config, parse_override
from perturbkit.cv import list_runs
from perturbkit.data import load_dataset
from perturbkit.errors import ConfigError
from perturbkit.io import OutputError
from perturbkit.tune import (
    TuneError,
    TuneSettings,
    filter_study_runs,
    load_tune_config,
    open_storage,
    open_study,
    parse_space,
    run_tune,
    without_tune,
    write_tuned_config,
)
from perturbkit.tune.study import Objective, WorkerJob, check_outputs, run_worker, worker_count
from perturbkit.tune.toml_text import dumps, toml_literal
from perturbkit.tune.watch import TrialLines, trial_line

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# A small space keeps the trials short; the shipped pca_ridge [tune] table is parsed on its own below.
SMALL_SPACE = ('tune={params = {alpha = {log = [0.1, 1000.0]}, n_components = {int = [8, 32]}}}', "params.n_components=16",
               "features.stats_components=8")


def settings(world, tmp_path, **changes) -> TuneSettings:
    values = dict(model="pca_ridge", trials=4, data=str(world), oof=tmp_path / "oof", configs_dir=CONFIGS,
                  overrides=SMALL_SPACE, heartbeat=2)
    values.update(changes)
    return TuneSettings(**values)


def pca_ridge_config(tune: dict) -> dict:
    return {**load_config("pca_ridge", configs_dir=CONFIGS), "tune": tune}


# --- the search space --------------------------------------------------------------------------


SHIPPED_SPACES = sorted(path.stem for path in CONFIGS.glob("*.toml") if "tune" in tomllib.loads(path.read_text()))
RECIPE_MODELS = sorted({member["model"] for member in tomllib.loads((CONFIGS / "recipe.toml").read_text())["members"]})


def test_every_model_of_the_recipe_ships_a_tune_space():
    assert set(RECIPE_MODELS) == {"transfer_ridge", "pca_knn", "compound_mean"}
    assert set(RECIPE_MODELS) <= set(SHIPPED_SPACES)


@pytest.mark.parametrize("model", SHIPPED_SPACES)
def test_every_shipped_tune_table_parses_and_builds(model):
    config, space = load_tune_config(TuneSettings(model=model, configs_dir=CONFIGS))
    assert space.dimensions
    assert {d.key.split(".")[0] for d in space.dimensions} <= {"params", "features"}
    assert "tune" not in without_tune(config) and "tune" in config


def test_dotted_and_quoted_keys_give_the_same_space_and_samples_become_overrides():
    dotted = parse_space(pca_ridge_config({"params": {"alpha": {"log": [0.1, 10.0]}}, "features": {"stats_components": {"choice": [8, 16]}}}), "t")
    quoted = parse_space(pca_ridge_config({"params.alpha": {"log": [0.1, 10.0]}, "features.stats_components": {"choice": [8, 16]}}), "t")
    assert dotted == quoted
    overrides = dotted.suggest(optuna.trial.FixedTrial({"params.alpha": 2.5, "features.stats_components": 16}))
    assert overrides == ["params.alpha=2.5", "features.stats_components=16"]
    config = apply_overrides(load_config("pca_ridge", configs_dir=CONFIGS), overrides)
    assert config["params"]["alpha"] == 2.5 and config["features"]["stats_components"] == 16
    # The config's own values as a trial (a new study runs them first), only when they lie in the space.
    assert dotted.params_of(config) == {"params.alpha": 2.5, "features.stats_components": 16}
    assert dotted.params_of(apply_overrides(config, ["params.alpha=20.0"])) is None
    assert dotted.params_of(apply_overrides(config, ["features.stats_components=4"])) is None


def test_list_choices_travel_as_toml_text_and_come_back_as_lists():
    config = {**load_config("mlp", configs_dir=CONFIGS), "tune": {"params": {"hidden": {"choice": [[64], [128, 64]]}}}}
    (dimension,) = parse_space(config, "t").dimensions
    assert dimension.choices() == ["[64]", "[128, 64]"]  # Optuna stores scalars only
    overrides = parse_space(config, "t").suggest(optuna.trial.FixedTrial({"params.hidden": "[128, 64]"}))
    assert apply_overrides(config, overrides)["params"]["hidden"] == [128, 64]


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"params": {"alph": {"log": [0.1, 10.0]}}}, "params.alph"),  # not a parameter of the model
        ({"features": {"stat_components": {"int": [4, 8]}}}, "features.stat_components"),
        ({"cv": {"seed": {"int": [0, 3]}}}, "only params.* and features.*"),
        ({"params": {"alpha": {"uniform": [0.1, 10.0]}}}, "kinds: log, float, int, choice"),
        ({"params": {"alpha": {"log": [0.1, 10.0], "step": 1}}}, "expected one distribution"),
        ({"params": {"alpha": {"log": [10.0, 0.1]}}}, "is empty"),
        ({"params": {"alpha": {"log": [0.0, 10.0]}}}, "needs low > 0"),
        ({"params": {"alpha": {"float": [1.0]}}}, "[low, high]"),
        ({"params": {"n_components": {"int": [8.5, 32]}}}, "whole-number bounds"),
        ({"params": {"alpha": {"choice": []}}}, "non-empty list"),
        ({"params": {"alpha": {"choice": [1.0, 1.0]}}}, "repeated choices"),
        ({"params": {"alpha": {"float": [-5.0, 1.0]}}}, "params.alpha=-5.0: model 'pca_ridge': params.alpha: The 'alpha' parameter of pca_ridge"),
        ({"params": {"alpha": 3.0}}, "params.alpha"),
    ],
)
def test_bad_space_is_a_named_config_error(tune, message):
    with pytest.raises(ConfigError, match="configs/pca_ridge.toml") as error:
        parse_space(pca_ridge_config(tune), "configs/pca_ridge.toml")
    assert message in str(error.value)


@pytest.mark.parametrize("model", RECIPE_MODELS)
def test_the_shipped_space_of_each_recipe_model_runs_a_short_study(model, small_world, tmp_path):
    outcome = run_tune(settings(small_world, tmp_path, model=model, trials=2, pruner="none", overrides=()), say=lambda _: None)
    trials = outcome.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert trials[0].user_attrs.get("shipped")  # the shipped config lies in its own space
    assert trials[1].params != trials[0].params and all(math.isfinite(t.value) for t in trials)


@pytest.mark.parametrize("model", ["transfer_ridge", "compound_mean", "pca_ridge", "mlp"])
def test_a_config_without_tune_suggests_a_line_the_model_accepts(model):
    config = without_tune(load_config(model, configs_dir=CONFIGS))
    with pytest.raises(ConfigError, match=rf"configs/{model}.toml: no \[tune\] table") as error:
        parse_space(config, f"configs/{model}.toml")
    example = str(error.value).split("e.g. [tune] ")[1]
    (dimension,) = parse_space({**config, "tune": tomllib.loads(example)}, "t").dimensions  # builds at both ends
    assert dimension.key.split(".")[0] in ("params", "features")


def test_a_bad_space_fails_before_any_trial_and_writes_nothing(small_world, tmp_path):
    bad = settings(small_world, tmp_path, overrides=("tune={params = {n_neighbors = {int = [1, 5]}}}",))
    with pytest.raises(ConfigError, match=r"\[tune\] params.n_neighbors"):
        run_tune(bad)
    assert not (tmp_path / "oof").exists()


def test_toml_text_reads_back_as_the_same_config():
    config = load_config("mlp", configs_dir=CONFIGS, overrides=['params.train.lr=1.5e-05', 'cv.seeds=[0, 1]'])
    assert tomllib.loads(dumps(config, "header\nline two")) == config
    for value in (3, -2.5, 1e-05, 1e16, True, "distance", 'say "hi"', [512, 256], ["a", 1.0]):
        assert parse_override(f"x={toml_literal(value)}")[1] == value


# --- storage ------------------------------------------------------------------------------------


def test_bad_storage_url_is_named_with_its_password_masked():
    with pytest.raises(ConfigError) as error:
        open_storage("postgresql+psycopg://tuner:s3cret@127.0.0.1:1/studies")  # nothing listens on port 1
    assert "tuner:***@127.0.0.1:1/studies" in str(error.value) and "s3cret" not in str(error.value)
    with pytest.raises(ConfigError, match=r"--storage nodb://x:\*\*\*@h/db: cannot open .*nodb"):
        open_storage("nodb://x:pw9@h/db")  # no such SQLAlchemy dialect
    with pytest.raises(ConfigError, match="--storage no url: cannot open"):
        open_storage("no url")


def test_sqlite_storage_is_created_on_first_use(tmp_path):
    open_storage(f"sqlite:///{tmp_path}/new/folder/tune.db")
    assert (tmp_path / "new" / "folder" / "tune.db").is_file()


# --- pruning through the harness -----------------------------------------------------------------


def test_a_pruned_trial_writes_no_run_and_a_kept_one_is_tagged(small_world, tmp_path):
    config, space = load_tune_config(settings(small_world, tmp_path))
    dataset = load_dataset(small_world)
    objective = Objective(dataset, without_tune(config), space, "pruning", tmp_path / "oof", "test/1")

    always = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # every fold score is above 0
    always.optimize(objective, n_trials=2)
    assert [t.state for t in always.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert [len(t.intermediate_values) for t in always.trials] == [1, 1]  # stopped after the first fold
    assert list_runs(tmp_path / "oof").empty

    never = optuna.create_study(pruner=optuna.pruners.NopPruner())
    never.optimize(objective, n_trials=1)
    (trial,) = never.trials
    runs = list_runs(tmp_path / "oof")
    assert len(runs) == 1 and runs.loc[0, "mrrmse"] == pytest.approx(trial.value)
    meta = json.loads((Path(runs.loc[0, "path"]) / "meta.json").read_text())
    assert meta["tune"] == {"study": "pruning", "trial": 0, "worker": "test/1"}
    assert "tune" not in meta["config"]
    assert meta["config"]["params"]["alpha"] == pytest.approx(trial.params["params.alpha"])
    assert len(trial.intermediate_values) == 4  # one report per lymphoid_holdout fold


def test_the_pruner_sees_the_weighted_running_score_the_trial_returns(small_world, tmp_path):
    import numpy as np

    from perturbkit.cv import load_run, splitter_for
    from perturbkit.metrics import rowwise_rmse

    config, space = load_tune_config(settings(small_world, tmp_path))
    config = without_tune(config)
    config["cv"]["scheme"] = "test_like"  # B/Myeloid rows carry half the score
    dataset = load_dataset(small_world)
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    study.optimize(Objective(dataset, config, space, "weighted", tmp_path / "oof", "test/1"), n_trials=1)
    (trial,) = study.trials

    run = load_run(trial.user_attrs["run"])
    obs = dataset.obs.set_index(["cell_type", "sm_name"]).index
    rows = obs.get_indexer(run.oof_keys.set_index(["cell_type", "sm_name"]).index)
    rmse = rowwise_rmse(dataset.targets[rows], run.oof)
    weights = splitter_for(dataset, run.meta["config"]["cv"]).row_weights(dataset.obs)[rows]
    folds = run.oof_keys["fold"].to_numpy()
    expected = {k: np.average(rmse[folds <= k], weights=weights[folds <= k]) for k in sorted(set(folds))}
    unweighted = {k: np.mean([rmse[folds == j].mean() for j in range(k + 1)]) for k in expected}
    assert trial.intermediate_values == pytest.approx(expected, rel=1e-6)
    assert trial.intermediate_values[max(expected)] == pytest.approx(trial.value, rel=1e-6)
    assert trial.intermediate_values != pytest.approx(unweighted, rel=1e-3)  # the weighting matters under test_like


# --- watching a study ----------------------------------------------------------------------------

LINE = re.compile(r"trial (\d+): (\d+\.\d{4}|pruned after fold \d+ at \d+\.\d{4}|failed) in \d+ s; best (\d+\.\d{4}) \(trial (\d+)\)")


def test_tuning_says_one_line_per_finished_trial_with_its_value_and_the_best_so_far(small_world, tmp_path):
    lines = []
    outcome = run_tune(settings(small_world, tmp_path, trials=4, pruner="none"), say=lines.append, terminal=True)
    trial_lines = [LINE.fullmatch(line) for line in lines if line.startswith("trial ")]
    assert len(trial_lines) == 4 and all(trial_lines), lines
    best = float("inf")
    for match, trial in zip(trial_lines, outcome.study.trials):
        assert int(match[1]) == trial.number and float(match[2]) == pytest.approx(trial.value, abs=5e-5)
        best = min(best, trial.value)
        assert float(match[3]) == pytest.approx(best, abs=5e-5)


def _scripted_study(values, pruned=()):
    """An in-memory study whose trial i reports two folds and ends with values[i] (or is pruned after fold 1)."""
    study = optuna.create_study()

    def objective(trial):
        trial.report(values[trial.number] + 0.1, 0)
        trial.report(values[trial.number], 1)
        if trial.number in pruned:
            raise optuna.TrialPruned()
        return values[trial.number]

    return study, objective


def test_a_pruned_trial_line_says_so_and_a_log_file_gets_only_bests_and_the_last_trial_within_the_interval():
    values = [0.9, 0.8, 0.95, 0.7, 0.85, 0.99]
    study, objective = _scripted_study(values, pruned={2})
    every_trial, throttled = [], []
    study.optimize(objective, n_trials=6, callbacks=[TrialLines(every_trial.append), TrialLines(throttled.append, 3600.0, 6)])
    assert len(every_trial) == 6 and every_trial[2].startswith("trial 2: pruned after fold 1 at 0.9500")
    assert every_trial[5].startswith("trial 5: 0.9900") and every_trial[5].endswith("best 0.7000 (trial 3)")
    # Within the interval: the first line, each new best (trials 1 and 3) and the worker's last trial.
    assert [int(line.split(":")[0].split()[1]) for line in throttled] == [0, 1, 3, 5]
    assert trial_line(optuna.create_study(), study.trials[2]).endswith("no complete trial yet")


# --- workers sharing one study -------------------------------------------------------------------


def assert_workers_shared_one_study(outcome, trials: int, workers: int, oof: Path, study_name: str) -> None:
    states = outcome.counts()
    assert states["COMPLETE"] + states["PRUNED"] == trials and states["FAIL"] == states["RUNNING"] == 0
    per_worker = outcome.per_worker()
    assert len(per_worker) == workers and sorted(per_worker.values()) == [trials // workers] * workers
    pids = {t.user_attrs["pid"] for t in outcome.study.trials}
    assert len(pids) == workers and os.getpid() not in pids  # separate worker processes did the trials
    numbers = [t.number for t in outcome.study.trials]
    assert sorted(numbers) == list(range(trials))  # no trial number twice
    complete = [t for t in outcome.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert outcome.study.best_value == min(t.value for t in complete)
    # One run per kept trial, none for pruned ones, no run directory written twice.
    runs = filter_study_runs(list_runs(oof), study_name)
    assert sorted(runs["trial"]) == sorted(t.number for t in complete)
    assert runs["run_id"].is_unique
    assert {t.user_attrs["run"] for t in complete} == set(runs["path"])


def test_two_worker_processes_share_a_sqlite_study(small_world, tmp_path):
    study_settings = settings(small_world, tmp_path, trials=6, workers=2)
    outcome = run_tune(study_settings, say=lambda _: None)
    assert study_settings.storage_url == f"sqlite:///{tmp_path / 'oof' / 'tune.db'}"
    assert_workers_shared_one_study(outcome, 6, 2, tmp_path / "oof", "pca_ridge")


@pytest.fixture(scope="session")
def postgres_url():
    """PERTURBKIT_TEST_POSTGRES_URL (.ci/run starts a server), else a throw-away cluster of our own, else skip."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[dev]'): no PostgreSQL test")
    url = os.environ.get("PERTURBKIT_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    folder = tempfile.mkdtemp(prefix="perturbkit-pg-")  # not under pytest's 0700 folder: the server's user must enter it
    try:
        url = postgres_cluster.start(folder)
    except postgres_cluster.Unavailable as exc:
        postgres_cluster.stop(folder)
        pytest.skip(f"PERTURBKIT_TEST_POSTGRES_URL is unset and no PostgreSQL server could be started: {exc}")
    yield url
    postgres_cluster.stop(folder)


def test_two_worker_processes_share_a_postgresql_study(small_world, tmp_path, postgres_url):
    name = f"pca_ridge-{uuid.uuid4().hex[:8]}"
    outcome = run_tune(settings(small_world, tmp_path, trials=4, workers=2, storage=postgres_url, study=name), say=lambda _: None)
    assert_workers_shared_one_study(outcome, 4, 2, tmp_path / "oof", name)


def test_a_second_command_joins_the_study_and_other_settings_are_refused(small_world, tmp_path):
    first = run_tune(settings(small_world, tmp_path, trials=2), say=lambda _: None)
    second = run_tune(settings(small_world, tmp_path, trials=1, seed=7), say=lambda _: None)
    assert len(second.study.trials) == 3 and len(second.trials()) == 1 and len(first.trials()) == 2
    with pytest.raises(TuneError, match="config_hash"):
        run_tune(settings(small_world, tmp_path, trials=1, overrides=(*SMALL_SPACE, "features.leave_one_out=true")))
    assert len(open_study(settings(small_world, tmp_path)).trials) == 3


def test_workers_are_capped_at_the_trials_and_the_cores(small_world, tmp_path):
    lines = []
    outcome = run_tune(settings(small_world, tmp_path, trials=1, workers=10_000), say=lines.append)
    assert len(outcome.workers) == 1 and outcome.study.trials[0].user_attrs["pid"] == os.getpid()  # no process started
    assert "1 worker(s) (--workers 10000 capped at the trials and cores)" in lines[0]
    assert worker_count(settings(small_world, tmp_path, trials=None, timeout=1.0, workers=10_000)) == len(os.sched_getaffinity(0))


def _kill_target(job):
    run_worker(job)


def test_a_worker_killed_mid_trial_leaves_that_trial_failed_and_the_study_usable(small_world, tmp_path):
    study_settings = settings(small_world, tmp_path, trials=1, heartbeat=1)  # grace period: 4 s
    config, space = load_tune_config(study_settings)
    study = open_study(study_settings, create=True, config=config, space=space, data_hash=load_dataset(small_world).data_hash)
    worker = multiprocessing.get_context("spawn").Process(target=_kill_target, args=(WorkerJob(study_settings, config, space, 0, 5, "doomed"),))
    worker.start()

    def running() -> set[int]:
        return {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)) if "pid" in t.user_attrs}

    deadline = time.time() + 120
    while True:  # a trial inside the objective, so past its first heartbeat, and still running a moment later
        assert time.time() < deadline and worker.is_alive(), "the worker never ran a trial long enough"
        before = running()
        time.sleep(0.3)
        if before & running():
            break
    worker.kill()
    worker.join()
    (killed,) = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    time.sleep(5)  # past the grace period, the next worker marks the silent trial failed before its own trial
    outcome = run_tune(study_settings, say=lambda _: None)
    states = {t.number: t.state for t in outcome.study.trials}
    assert states[killed.number] == optuna.trial.TrialState.FAIL
    assert outcome.counts()["COMPLETE"] == 1
    assert outcome.study.best_trial.number != killed.number


def _tune_command(world, tmp_path, *, trials: int) -> list[str]:
    return [sys.executable, "-m", "perturbkit", "tune", "--model", "pca_ridge", "--workers", "2", "--trials", str(trials),
            "--data", str(world), "--configs-dir", str(CONFIGS), "--oof", str(tmp_path / "oof"),
            "--out", str(tmp_path / "tuned.toml"), "--reports", str(tmp_path / "reports"),
            *(part for override in SMALL_SPACE for part in ("--set", override))]


def _trials(tmp_path) -> list:
    storage = open_storage(f"sqlite:///{tmp_path / 'oof' / 'tune.db'}")
    try:
        return optuna.load_study(study_name="pca_ridge", storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the parent has not created the study yet
        return []


def _running_trials(tmp_path, until: float, workers: int) -> list:
    """Wait until ``workers`` workers run a trial (their pids are in the trials' user attributes)."""
    while True:
        assert time.time() < until, "the workers never ran trials"
        running = [t for t in _trials(tmp_path) if t.state == optuna.trial.TrialState.RUNNING and "pid" in t.user_attrs]
        if len({t.user_attrs["pid"] for t in running}) >= workers:
            return running
        time.sleep(0.3)


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until_gone(pids: set[int], seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while any(_alive(pid) for pid in pids):
        assert time.time() < deadline, f"workers {sorted(p for p in pids if _alive(p))} outlived their parent"
        time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_killing_the_tune_parent_stops_its_workers_and_the_study_stops_growing(small_world, tmp_path):
    errors = (tmp_path / "stderr.txt").open("w")  # the workers write theirs here too
    parent = subprocess.Popen(_tune_command(small_world, tmp_path, trials=40), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=errors)
    try:
        running = {t.user_attrs["pid"] for t in _running_trials(tmp_path, until=time.time() + 180, workers=1)}
        workers = _children(parent.pid)  # both workers (and multiprocessing's resource tracker): all must go
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert running <= workers and len(workers) >= 2
    _wait_until_gone(workers)
    count = len(_trials(tmp_path))
    time.sleep(2)
    trials = _trials(tmp_path)
    assert len(trials) == count < 40
    # Each worker failed its running trial on the way out: none is left RUNNING for the heartbeat to find.
    assert not [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()  # the workers stopped quietly


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_ctrl_c_stops_the_workers_quietly_and_fails_their_running_trials(small_world, tmp_path):
    errors = (tmp_path / "stderr.txt").open("w")
    parent = subprocess.Popen(_tune_command(small_world, tmp_path, trials=40), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=errors,
                              start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _running_trials(tmp_path, until=time.time() + 180, workers=2)
        workers = _children(parent.pid)
        os.killpg(parent.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
        parent.wait(timeout=60)
    finally:
        parent.kill()
    _wait_until_gone(workers)  # the workers, then multiprocessing's resource tracker
    trials = _trials(tmp_path)
    assert len(trials) < 40 and optuna.trial.TrialState.RUNNING not in {t.state for t in trials}
    assert optuna.trial.TrialState.FAIL in {t.state for t in trials}  # the interrupted ones
    assert (tmp_path / "stderr.txt").read_text().count("Traceback") <= 1  # the parent's KeyboardInterrupt, none from a worker


def test_a_worker_killed_mid_trial_is_failed_by_its_parent_at_once(small_world, tmp_path):
    parent = subprocess.Popen(_tune_command(small_world, tmp_path, trials=2), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        victim = _running_trials(tmp_path, until=time.time() + 180, workers=1)[0]
        os.kill(victim.user_attrs["pid"], signal.SIGKILL)
        killed_at = time.time()
        _, err = parent.communicate(timeout=300)
    finally:
        parent.kill()
    assert parent.returncode == 2 and "Traceback" not in err
    assert re.search(rf"worker \d exited -9: its running trial\(s\) \[{victim.number}\] are marked failed", err), err
    # Failed by the parent, not by the heartbeat: its grace period (4 x 30 s) has not passed.
    assert time.time() - killed_at < 4 * 30
    states = {t.number: t.state for t in _trials(tmp_path)}
    assert states[victim.number] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states.values()


# --- names and outputs -------------------------------------------------------------------------------


def _tune_args(world, tmp_path, *extra) -> list[str]:
    return ["tune", "--model", "pca_ridge", "--trials", "1", "--data", str(world), "--configs-dir", str(CONFIGS),
            "--oof", str(tmp_path / "oof"), "--out", str(tmp_path / "tuned.toml"), "--reports", str(tmp_path / "reports"),
            *(part for override in SMALL_SPACE for part in ("--set", override)), *extra]


@pytest.mark.parametrize("name", ["../../../../x", "/tmp/x", "a/b", "a\\b", "..", ".", "a\nb", "\x1b[31mred"])
def test_a_study_name_that_is_no_plain_name_is_refused_before_any_trial(name, small_world, tmp_path, capsys):
    with pytest.raises(ConfigError, match="plain name"):
        TuneSettings(model="pca_ridge", study=name)
    assert main(_tune_args(small_world, tmp_path, "--study", name)) == 2
    assert "a study name is a folder under --reports" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no study, no run, no plot, no tuned config


def test_an_out_that_is_a_folder_is_refused_before_any_trial(small_world, tmp_path, capsys):
    (tmp_path / "tuned.toml").mkdir()
    assert main(_tune_args(small_world, tmp_path)) == 2
    assert f"--out {tmp_path / 'tuned.toml'}: is a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tuned.toml"]


@pytest.mark.parametrize("flag", ["--out", "--reports", "--oof"])
def test_an_output_that_cannot_be_written_is_refused_before_any_trial(flag, small_world, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("")  # a file where a folder would have to be: unwritable for root too
    args = _tune_args(small_world, tmp_path)
    args[args.index(flag) + 1] = str(blocker / "inside")
    assert main(args) == 2
    assert re.search(rf"{flag} {re.escape(str(blocker))}\S*: {re.escape(str(blocker))} is a file, not a folder", capsys.readouterr().err)
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"]


def test_check_outputs_refuses_an_existing_file_it_cannot_open(tmp_path, monkeypatch):
    out = tmp_path / "tuned.toml"
    out.write_text("")
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if self == out else real_open(self, *a, **k))
    with pytest.raises(OutputError, match="--out .*tuned.toml: cannot write it"):
        check_outputs(out, tmp_path / "reports")


# --- results ---------------------------------------------------------------------------------------


def test_best_writes_a_tuned_config_that_round_trips_into_cv(small_world, tmp_path, capsys):
    study_settings = settings(small_world, tmp_path, trials=3, pruner="none")
    outcome = run_tune(study_settings, say=lambda _: None)
    best = outcome.study.best_trial
    (shipped,) = [t for t in outcome.study.trials if t.user_attrs.get("shipped")]
    assert shipped.number == 0 and shipped.user_attrs["overrides"] == ["params.alpha=10.0", "params.n_components=16"]  # the config's own values
    assert best.value <= shipped.value
    tuned = tmp_path / "tuned" / "pca_ridge.toml"
    code = main(["tune", "--best", "--model", "pca_ridge", "--oof", str(tmp_path / "oof"), "--out", str(tuned),
                 "--reports", str(tmp_path / "reports")])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"best trial {best.number} of 3" in printed and f"shipped config (trial 0): CV MRRMSE {shipped.value:.4f}" in printed
    assert " ".join(f"--set {o}" for o in best.user_attrs["overrides"]) in printed
    for png in ("history.png", "intermediate.png", "importances.png"):
        assert (tmp_path / "reports" / "pca_ridge" / png).read_bytes()[:4] == b"\x89PNG"

    config = load_config("pca_ridge", config_path=tuned, configs_dir=CONFIGS)
    assert "tune" not in config
    assert config == apply_overrides(without_tune(load_tune_config(study_settings)[0]), best.user_attrs["overrides"])
    assert main(["cv", "--model", "pca_ridge", "--config", str(tuned), "--data", str(small_world), "--oof", str(tmp_path / "cv"),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert list_runs(tmp_path / "cv").loc[0, "mrrmse"] == pytest.approx(best.value, rel=1e-6)

    assert main(["runs", "--oof", str(tmp_path / "oof"), "--study", "pca_ridge"]) == 0
    listed = capsys.readouterr().out
    assert "trial" in listed and len(listed.strip().splitlines()) == 4  # header + 3 kept trials
    assert write_tuned_config(outcome.study, tmp_path / "again.toml", study_settings.storage_url)[1] == best.user_attrs["overrides"]


def test_best_of_an_unknown_study_or_another_model_is_a_named_error(small_world, tmp_path, capsys):
    run_tune(settings(small_world, tmp_path, trials=1), say=lambda _: None)
    assert main(["tune", "--best", "--model", "pca_ridge", "--study", "nope", "--oof", str(tmp_path / "oof")]) == 2
    assert "study 'nope'" in capsys.readouterr().err
    assert main(["tune", "--best", "--model", "pca_knn", "--study", "pca_ridge", "--oof", str(tmp_path / "oof")]) == 2
    assert "tunes model 'pca_ridge', not 'pca_knn'" in capsys.readouterr().err
