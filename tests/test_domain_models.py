"""Cross-cell-type models (transfer_ridge, lowrank) and the pseudo-labelling wrapper."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from perturbkit.errors import InvalidParameterError

from perturbkit.config import load_config
from perturbkit.cv import run_cv
from perturbkit.errors import UnknownModelError
from perturbkit.folds import make_splitter
from perturbkit.metrics import rowwise_rmse
from perturbkit.models import create_model
from perturbkit.models.pseudo import PseudoLabelRegressor
from perturbkit.submit import read_truth
from perturbkit.transforms import signed_log10_p, z_from_signed_log10_p

COLUMNS = ["cell_type", "sm_name", "SMILES"]
SMALL = {
    "transfer_ridge": {"n_components": 16},
    "lowrank": {"n_components": 16, "rank": 3, "n_iter": 10},
    "pseudo": {"base": "transfer_ridge", "base_params": {"n_components": 16}},
}


def _fit(model, dataset, rows=None):
    rows = np.arange(len(dataset.obs)) if rows is None else rows
    X, X_test = dataset.obs[COLUMNS].iloc[rows], dataset.test[COLUMNS]
    if isinstance(model, PseudoLabelRegressor):
        return model.fit(X, dataset.targets[rows], X_test=X_test)
    return model.fit(X, dataset.targets[rows])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fit_predict_shapes(small_dataset, name):
    model = _fit(create_model(name, **SMALL[name]), small_dataset)
    for frame in (small_dataset.obs[COLUMNS], small_dataset.test[COLUMNS]):
        prediction = model.predict(frame)
        assert prediction.shape == (len(frame), small_dataset.n_genes)
        assert prediction.dtype == np.float32 and np.isfinite(prediction).all()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_predictions(small_dataset, name):
    first, second = (_fit(create_model(name, **SMALL[name]), small_dataset) for _ in range(2))
    X = small_dataset.test[COLUMNS]
    np.testing.assert_array_equal(first.predict(X), second.predict(X))


@pytest.mark.parametrize("space", ["values", "z"])
def test_transfer_ridge_genes_output_shapes_and_determinism(small_dataset, space):
    params = {**SMALL["transfer_ridge"], "output_space": "genes", "target_space": space}
    first, second = (_fit(create_model("transfer_ridge", **params), small_dataset) for _ in range(2))
    for frame in (small_dataset.obs[COLUMNS], small_dataset.test[COLUMNS]):
        prediction = first.predict(frame)
        assert prediction.shape == (len(frame), small_dataset.n_genes)
        assert prediction.dtype == np.float32 and np.isfinite(prediction).all()
        np.testing.assert_array_equal(prediction, second.predict(frame))


def test_lowrank_seed_matters(small_dataset):
    X = small_dataset.test[COLUMNS]
    predictions = [_fit(create_model("lowrank", **SMALL["lowrank"], random_state=s), small_dataset).predict(X) for s in (0, 1)]
    assert not np.array_equal(*predictions)


# Hidden-test ceilings, as ratios to predicting zeros, on the 300-gene default world. The transfer
# models learn the lymphoid -> B/Myeloid map and beat zeros and the compound mean; lowrank (additive
# at rank 0) overshoots like the cell-type mean on weak test compounds but must stay below it.
HIDDEN_TEST_CEILING = {"transfer_ridge": 0.92, "pseudo": 0.92, "lowrank": "celltype_mean"}


def _hidden_test_ratio(small_world, small_dataset, model) -> float:
    keys, genes, truth = read_truth(small_world / "test_truth.parquet")
    rows = pd.Index(keys["id"]).get_indexer(small_dataset.test["id"])
    truth = truth[rows][:, pd.Index(genes).get_indexer(list(small_dataset.genes))]
    prediction = _fit(model, small_dataset).predict(small_dataset.test[COLUMNS])
    return rowwise_rmse(truth, prediction).mean() / rowwise_rmse(truth, np.zeros_like(truth)).mean()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_hidden_test_score_against_the_baselines(small_world, small_dataset, name):
    ratio = _hidden_test_ratio(small_world, small_dataset, create_model(name, **SMALL[name]))
    ceiling = HIDDEN_TEST_CEILING[name]
    if isinstance(ceiling, str):
        ceiling = _hidden_test_ratio(small_world, small_dataset, create_model(ceiling))
    else:
        assert ratio < _hidden_test_ratio(small_world, small_dataset, create_model("compound_mean"))
    assert ratio < ceiling


def _planted_world(seed=0, n_compounds=30, n_genes=40, rank=4):
    """Four source cell types and a target type that is a fixed linear map of the same compound latents
    (every type its own loadings and offset: 5 x rank + 5 directions, so 30 components hold them all)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_compounds, rank))
    types = ["S0", "S1", "S2", "S3", "T"]
    loadings = {t: rng.normal(size=(rank, n_genes)) for t in types}
    offsets = {t: rng.normal(size=n_genes) for t in types}
    compounds = [f"c{i}" for i in range(n_compounds)]
    rows, targets = [], []
    for t in types:
        for i, c in enumerate(compounds):
            rows.append((t, c))
            targets.append(offsets[t] + latent[i] @ loadings[t])
    X = pd.DataFrame(rows, columns=["cell_type", "sm_name"])
    X["SMILES"] = "C"
    for column in ("cell_type", "sm_name"):
        X[column] = X[column].astype("category")
    return X, np.asarray(targets, dtype=np.float32)


def test_transfer_ridge_recovers_a_planted_linear_cell_type_map():
    X, y = _planted_world()
    held_out = (X["cell_type"] == "T").to_numpy() & X["sm_name"].astype(str).isin([f"c{i}" for i in range(20, 30)]).to_numpy()
    model = create_model("transfer_ridge", n_components=30, alphas=[1e-6, 1e-3, 1.0, 1e3]).fit(X[~held_out], y[~held_out])
    prediction = model.predict(X[held_out])
    relative_error = np.linalg.norm(prediction - y[held_out]) / np.linalg.norm(y[held_out] - y[held_out].mean(axis=0))
    assert relative_error < 1e-2
    assert model.alpha_["T"] == pytest.approx(1e-6)
    # the target type's mean would be far off: the map is what recovers them
    mean_error = np.linalg.norm(y[~held_out & (X["cell_type"] == "T").to_numpy()].mean(axis=0) - y[held_out])
    assert mean_error > 100 * np.linalg.norm(prediction - y[held_out])


def test_transfer_ridge_in_z_space_recovers_a_map_planted_in_z():
    """Responses that are linear in the z scores behind the p-values: the z-space fit recovers them, the value-space one cannot."""
    X, z = _planted_world()
    y = signed_log10_p(3.0 * z.astype(np.float64)).astype(np.float32)  # strong effects: far into the nonlinear tail
    held_out = (X["cell_type"] == "T").to_numpy() & X["sm_name"].astype(str).isin([f"c{i}" for i in range(20, 30)]).to_numpy()
    errors = {}
    for space in ("values", "z"):
        model = create_model("transfer_ridge", n_components=30, alphas=[1e-6, 1e-3, 1.0], target_space=space).fit(X[~held_out], y[~held_out])
        errors[space] = np.linalg.norm(model.predict(X[held_out]) - y[held_out]) / np.linalg.norm(y[held_out])
    assert errors["z"] < 1e-2 < 0.1 < errors["values"]


def test_transfer_ridge_genes_output_recovers_directions_the_pca_drops():
    """With 8 components over five types' 20 directions, the target type's own loadings are mostly
    outside the PCA span: predicting its PCA scores cannot recover them, regressing its genes can."""
    X, y = _planted_world()
    held_out = (X["cell_type"] == "T").to_numpy() & X["sm_name"].astype(str).isin([f"c{i}" for i in range(20, 30)]).to_numpy()
    errors = {}
    for output in ("pca", "genes"):
        model = create_model("transfer_ridge", n_components=8, alphas=[1e-6, 1e-3, 1.0], output_space=output).fit(X[~held_out], y[~held_out])
        errors[output] = np.linalg.norm(model.predict(X[held_out]) - y[held_out]) / np.linalg.norm(y[held_out] - y[held_out].mean(axis=0))
    assert errors["genes"] < 1e-2 < 0.1 < errors["pca"]


def test_z_transform_round_trips_signed_log10_p():
    z = np.array([-40.0, -8.0, -1.0, -1e-3, 0.0, 2.5, 12.0, 37.0])
    y = signed_log10_p(z)
    assert np.all(np.sign(y) == np.sign(z)) and y[-1] > 250  # heavy-tailed: |z| 37 is p ~ 1e-299
    np.testing.assert_allclose(z_from_signed_log10_p(y), z, rtol=1e-9, atol=1e-9)


def test_transfer_ridge_falls_back_to_the_cell_type_mean_for_a_compound_without_other_rows():
    X, y = _planted_world()
    only_target = X["sm_name"].astype(str).eq("c0").to_numpy() & (X["cell_type"] != "T").to_numpy()
    model = create_model("transfer_ridge", n_components=30).fit(X[~only_target], y[~only_target])
    row = X[(X["sm_name"] == "c0") & (X["cell_type"] == "T")]
    target_rows = (X["cell_type"] == "T").to_numpy() & ~only_target
    np.testing.assert_allclose(model.predict(row)[0], y[target_rows].mean(axis=0), rtol=1e-5, atol=1e-4)


class _Recorder(RegressorMixin, BaseEstimator):
    """Predicts each row's cell-type code + 1 everywhere; remembers every fit's rows and weights."""

    def __init__(self, weighted: bool = False):
        self.weighted = weighted

    def fit(self, X, y, sample_weight=None):
        self.fits_ = [*getattr(self, "fits_", []), (len(X), np.asarray(y).copy(), sample_weight)]
        self.n_genes_ = np.asarray(y).shape[1]
        return self

    def predict(self, X):
        return np.repeat(X["cell_type"].cat.codes.to_numpy()[:, None] + 1.0, self.n_genes_, axis=1).astype(np.float32)


class _UnweightedRecorder(_Recorder):
    def fit(self, X, y):
        return super().fit(X, y)


def test_pseudo_stage_two_refits_on_training_rows_plus_labelled_test_rows(small_dataset):
    X, y, X_test = small_dataset.obs[COLUMNS], small_dataset.targets, small_dataset.test[COLUMNS]
    model = PseudoLabelRegressor(_UnweightedRecorder(), weight=2, stages=2).fit(X, y, X_test=X_test)
    (rows, targets, _), = model.estimator_.fits_
    assert rows == len(X) + 2 * len(X_test)
    stage_one_labels = X_test["cell_type"].cat.codes.to_numpy() + 1.0
    np.testing.assert_array_equal(targets[len(X) :, 0], np.r_[stage_one_labels, stage_one_labels])
    np.testing.assert_array_equal(targets[: len(X)], y)
    np.testing.assert_array_equal(model.pseudo_labels_[0][:, 0], stage_one_labels)


def test_pseudo_passes_sample_weight_when_the_base_takes_it(small_dataset):
    X, y, X_test = small_dataset.obs[COLUMNS], small_dataset.targets, small_dataset.test[COLUMNS]
    model = PseudoLabelRegressor(_Recorder(), weight=0.25, stages=3).fit(X, y, X_test=X_test)
    (rows, _, weights), = model.estimator_.fits_
    assert rows == len(X) + len(X_test) and len(model.pseudo_labels_) == 2
    np.testing.assert_array_equal(weights, np.r_[np.ones(len(X)), np.full(len(X_test), 0.25)])


def test_pseudo_without_test_rows_is_the_base_model(small_dataset):
    X, y = small_dataset.obs[COLUMNS], small_dataset.targets
    wrapped = create_model("pseudo", **SMALL["pseudo"]).fit(X, y)
    base = create_model("transfer_ridge", n_components=16).fit(X, y)
    assert wrapped.pseudo_labels_ == []
    np.testing.assert_array_equal(wrapped.predict(small_dataset.test[COLUMNS]), base.predict(small_dataset.test[COLUMNS]))


def test_pseudo_labels_never_come_from_a_folds_validation_rows(small_dataset):
    """Through the harness: a sentinel in fold 0's validation targets moves none of its OOF predictions,
    while the pseudo-labelled stage 2 does change them (so the check covers the pseudo path)."""
    config = load_config("pseudo")
    config["params"] = {"base": "pca_ridge", "base_params": {"n_components": 8}, "weight": 1, "stages": 2}
    fold_ids = make_splitter(config["cv"]["scheme"], test_compounds=small_dataset.test["sm_name"].astype(str)).fold_ids(small_dataset.obs)
    planted_targets = small_dataset.targets.copy()
    planted_targets[fold_ids == 0] = 1e4
    planted = dataclasses.replace(small_dataset, targets=planted_targets)
    clean_run, planted_run = (run_cv(data, config, progress=False) for data in (small_dataset, planted))
    fold0 = clean_run.oof_keys["fold"].to_numpy() == 0
    np.testing.assert_array_equal(clean_run.oof[fold0], planted_run.oof[fold0])
    base_run = run_cv(small_dataset, {**config, "params": {**config["params"], "stages": 1}}, progress=False)
    assert not np.array_equal(base_run.oof[fold0], clean_run.oof[fold0])


@pytest.mark.parametrize(
    ("name", "params", "error"),
    [
        ("transfer_ridge", {"n_components": 0}, InvalidParameterError),
        ("transfer_ridge", {"min_source_coverage": 1.5}, InvalidParameterError),
        ("transfer_ridge", {"alphas": [1.0, -1.0]}, ValueError),
        ("transfer_ridge", {"target_space": "log"}, InvalidParameterError),
        ("transfer_ridge", {"output_space": "cells"}, InvalidParameterError),
        ("lowrank", {"reg": 0.0}, InvalidParameterError),
        ("lowrank", {"rank": -1}, InvalidParameterError),
        ("lowrank", {"chemistry": "yes"}, InvalidParameterError),
        ("pseudo", {"weight": 0.0}, InvalidParameterError),
        ("pseudo", {"stages": 0}, InvalidParameterError),
        ("pseudo", {"base": "compound_mean", "weight": 0.5}, ValueError),
    ],
)
def test_bad_parameters_are_refused_before_fitting(small_dataset, name, params, error):
    model = create_model(name, **params)
    with pytest.raises(error):
        _fit(model, small_dataset)


def test_pseudo_names_an_unknown_base():
    with pytest.raises(UnknownModelError, match="no_such_model"):
        create_model("pseudo", base="no_such_model")


def test_lowrank_chemistry_places_a_compound_without_rows(small_dataset):
    """A compound with no training rows gets zero compound effects, or with chemistry its fingerprint's."""
    obs = small_dataset.obs
    compound = obs["sm_name"].astype(str).iloc[0]
    rows = np.flatnonzero(obs["sm_name"].astype(str).to_numpy() != compound)
    X = obs[COLUMNS].iloc[rows]
    row = obs[COLUMNS].iloc[[0]]
    plain = create_model("lowrank", **SMALL["lowrank"]).fit(X, small_dataset.targets[rows])
    chem = create_model("lowrank", **SMALL["lowrank"], chemistry=True, morgan_bits=128).fit(X, small_dataset.targets[rows])
    unseen = row.assign(sm_name="no such compound")  # the same cell type with neither rows nor an analogue's name
    np.testing.assert_array_equal(plain.predict(row), plain.predict(unseen))
    assert not np.allclose(chem.predict(row), plain.predict(row))
