"""Hyperparameter tuning on Optuna's distributed mode: one relational storage, many workers.

``perturbkit tune --model NAME`` samples the ``[tune]`` table of ``configs/<model>.toml``
(:mod:`perturbkit.tune.space`), scores each trial by the model's CV MRRMSE through the same
harness as ``perturbkit cv`` and prunes on the folds' running score (:mod:`perturbkit.tune.study`),
saying a line per finished trial (:mod:`perturbkit.tune.watch`).
Workers on one machine share a SQLite file, workers on many machines a PostgreSQL database
(:mod:`perturbkit.tune.storage`). The best trial becomes ``configs/tuned/<model>.toml``; the
study's plots go to ``reports/tune/<study>/`` (:mod:`perturbkit.tune.plots`).
"""

from perturbkit.config import without_tune
from perturbkit.tune.space import Dimension, SearchSpace, parse_space
from perturbkit.tune.storage import open_storage
from perturbkit.tune.study import (
    PRUNERS,
    TuneError,
    TuneOutcome,
    TuneSettings,
    best_config,
    filter_study_runs,
    load_tune_config,
    open_study,
    run_tune,
    write_tuned_config,
)

__all__ = [
    "PRUNERS",
    "Dimension",
    "SearchSpace",
    "TuneError",
    "TuneOutcome",
    "TuneSettings",
    "best_config",
    "filter_study_runs",
    "load_tune_config",
    "open_storage",
    "open_study",
    "parse_space",
    "run_tune",
    "without_tune",
    "write_tuned_config",
]
