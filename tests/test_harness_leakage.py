"""No target leakage through the harness: a sentinel planted in one fold's validation targets moves
none of that fold's OOF predictions, for every registered model with its shipped config.

Unlike tests/test_leakage.py (estimators fitted on rows sliced by the test), this runs ``run_cv``
itself, so a harness that fits on validation rows, or a model that selects on them, fails here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perturbkit.config import load_config
from perturbkit.cv import run_cv
from perturbkit.folds import list_splitters, make_splitter
from perturbkit.models import list_models

SENTINEL = 1e4
FOLD = 0


def _config(model: str, scheme: str | None = None) -> dict:
    # The shipped config with its [test] table: small settings for the 300-gene world, so a new model is covered as it registers.
    config = load_config(model, test=True)
    if scheme is not None:
        config["cv"]["scheme"] = scheme
    return config


def _planted(dataset, scheme: str):
    fold_ids = make_splitter(scheme, test_compounds=dataset.test["sm_name"].astype(str)).fold_ids(dataset.obs)
    targets = dataset.targets.copy()
    targets[fold_ids == FOLD] = SENTINEL
    return dataclasses.replace(dataset, targets=targets)


def _fold_oof(result, fold: int) -> np.ndarray:
    return result.oof[result.oof_keys["fold"].to_numpy() == fold]


def _assert_fold_unmoved(dataset, config):
    scheme = config["cv"]["scheme"]
    clean = run_cv(dataset, config, progress=False)
    planted = run_cv(_planted(dataset, scheme), config, progress=False)
    np.testing.assert_array_equal(_fold_oof(clean, FOLD), _fold_oof(planted, FOLD))
    return clean, planted


@pytest.mark.parametrize("model", list_models())
def test_sentinel_in_a_folds_validation_rows_moves_none_of_its_predictions(small_dataset, model):
    _assert_fold_unmoved(small_dataset, _config(model))


@pytest.mark.parametrize("scheme", list_splitters())
def test_every_scheme_keeps_validation_rows_out(small_dataset, scheme):
    _assert_fold_unmoved(small_dataset, _config("compound_mean", scheme))


def test_the_sentinel_does_reach_other_folds(small_dataset):
    """The check can fail: fold 0's validation rows are training rows of fold 1, whose predictions move."""
    clean, planted = _assert_fold_unmoved(small_dataset, _config("compound_mean", "lymphoid_holdout"))
    assert not np.array_equal(_fold_oof(clean, 1), _fold_oof(planted, 1))
