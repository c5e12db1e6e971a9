"""No target leakage through the harness: a sentinel planted in a fold's validation targets moves
none of that fold's OOF predictions, for every fold, every registered model with its shipped config
and every scheme.

Unlike tests/test_leakage.py (estimators fitted on rows sliced by the test), this runs ``run_cv``
itself, so a harness that fits on validation rows, or a model that selects on them, fails here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perturbkit.config import load_config
from perturbkit.cv import run_cv, splitter_for
from perturbkit.folds import NEVER_VALIDATED, list_splitters
from perturbkit.models import list_models

SENTINEL = 1e4
# Models slow enough on 2 cores that the fast suite plants one fold each, rotating so that every
# fold is planted by some model; `make test-all` plants every fold of each.
ROTATED = ("pseudo", "pca_ridge", "pca_knn", "mlp", "transformer", "pca_lgbm")


def _config(model: str, scheme: str | None = None) -> dict:
    # The shipped config with its [test] table: small settings for the 300-gene world, so a new model is covered as it registers.
    config = load_config(model, test=True)
    if scheme is not None:
        config["cv"]["scheme"] = scheme
    return config


def _fold_ids(dataset, config) -> np.ndarray:
    return splitter_for(dataset, config["cv"]).fold_ids(dataset.obs)


def _planted(dataset, fold_ids: np.ndarray, fold: int):
    targets = dataset.targets.copy()
    targets[fold_ids == fold] = SENTINEL
    return dataclasses.replace(dataset, targets=targets)


def _fold_oof(result, fold: int) -> np.ndarray:
    return result.oof[result.oof_keys["fold"].to_numpy() == fold]


def _assert_folds_unmoved(dataset, config, folds=None):
    """Plant each fold of ``folds`` (default: every fold) on its own and check that fold's predictions."""
    fold_ids = _fold_ids(dataset, config)
    clean = run_cv(dataset, config, progress=False)
    folds = sorted(set(fold_ids.tolist()) - {NEVER_VALIDATED}) if folds is None else folds
    planted = {fold: run_cv(_planted(dataset, fold_ids, fold), config, progress=False) for fold in folds}
    for fold, result in planted.items():
        np.testing.assert_array_equal(_fold_oof(clean, fold), _fold_oof(result, fold), err_msg=f"fold {fold} moved")
    return clean, planted


def _rotated_fold(dataset, model: str) -> list[int]:
    n_folds = splitter_for(dataset, _config(model)["cv"]).get_n_splits()
    return [ROTATED.index(model) % n_folds]


@pytest.mark.parametrize("model", list_models())
def test_sentinel_in_a_folds_validation_rows_moves_none_of_its_predictions(small_dataset, model):
    _assert_folds_unmoved(small_dataset, _config(model), _rotated_fold(small_dataset, model) if model in ROTATED else None)


@pytest.mark.slow
@pytest.mark.parametrize("model", ROTATED)
def test_every_fold_of_the_slower_models(small_dataset, model):
    _assert_folds_unmoved(small_dataset, _config(model))


def test_the_rotation_plants_every_fold(small_dataset):
    n_folds = splitter_for(small_dataset, _config("compound_mean")["cv"]).get_n_splits()
    assert {fold for model in ROTATED for fold in _rotated_fold(small_dataset, model)} == set(range(n_folds))
    assert set(ROTATED) <= set(list_models())


@pytest.mark.parametrize("scheme", list_splitters())
def test_every_scheme_keeps_every_folds_validation_rows_out(small_dataset, scheme):
    _assert_folds_unmoved(small_dataset, _config("compound_mean", scheme))


def test_the_sentinel_does_reach_other_folds(small_dataset):
    """The check can fail: each fold's validation rows are training rows of another fold, whose predictions move."""
    clean, planted = _assert_folds_unmoved(small_dataset, _config("compound_mean", "lymphoid_holdout"))
    for fold, result in planted.items():
        others = [other for other in planted if other != fold]
        assert any(not np.array_equal(_fold_oof(clean, o), _fold_oof(result, o)) for o in others), f"fold {fold}"


# The networks take minutes on 2 cores for every fold even at 40 genes: `make test-all` runs them, the fast suite pca_ridge.
@pytest.mark.parametrize("model", ["pca_ridge", pytest.param("mlp", marks=pytest.mark.slow), pytest.param("transformer", marks=pytest.mark.slow)])
def test_models_fed_the_transfer_profiles_block_keep_every_fold_out(small_dataset, model):
    """The block is fitted on each fold's training targets: with it on, no fold's predictions move (every fold; 40 genes)."""
    dataset = dataclasses.replace(small_dataset, targets=small_dataset.targets[:, :40].copy(), genes=small_dataset.genes[:40])
    sized = ["params.n_components=8"] if model == "pca_ridge" else []  # its target PCA fits in 40 genes
    config = load_config(model, test=True, overrides=[*sized, 'features.blocks=["transfer_profiles"]', "features.transfer_profiles_n_components=4"])
    clean, planted = _assert_folds_unmoved(dataset, config)
    assert config["features"]["blocks"] == ["transfer_profiles"]
    assert any(not np.array_equal(clean.oof, result.oof) for result in planted.values())  # the sentinel does reach other folds
