"""The torch models (mlp, transformer) and their shared training loop, on the 300-gene world with tiny widths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS, build_model, run_cv
from perturbkit.metrics import mrrmse
from perturbkit.models import create_model, list_models
from perturbkit.models.torch_loop import make_loss, resolve_device
from helpers import lymphoid_fold, with_sentinel


SMALL_FEATURES = {"chemistry": ["morgan", "substructures"], "morgan_bits": 256, "stats_components": 4}
# One thread: tiny networks are all synchronisation overhead with two, worst on a busy machine.
TINY = {
    "mlp": {"hidden": [32, 16], "max_epochs": 8, "patience": 4, "n_threads": 1},
    "transformer": {"d_model": 16, "n_heads": 2, "feedforward": 32, "hidden": 32, "max_epochs": 8, "patience": 4, "n_threads": 1},
}
TORCH_MODELS = sorted(TINY)


def _config(model, **params):
    config = load_config(model)
    config["params"] = {**config.get("params", {}), **TINY[model], **params}
    config["features"] = {**config.get("features", {}), **SMALL_FEATURES}
    return config




def test_registered_with_the_estimator_contract():
    assert {"mlp", "transformer"} <= set(list_models())
    for name in TORCH_MODELS:
        model = create_model(name, **TINY[name])
        params = model.get_params(deep=True)
        assert params["device"] == "auto" and "features__stats_components" in params
        assert not [k for k in vars(model) if k.endswith("_")]  # __init__ stores parameters only


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_fold_fit_predicts_every_gene_and_keeps_a_history(small_dataset, name):
    train_idx, valid_idx = lymphoid_fold(small_dataset)
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    model = build_model(_config(name), seed=0).fit(X.iloc[train_idx], y[train_idx], eval_set=(X.iloc[valid_idx], y[valid_idx]))
    assert model.predict(X.iloc[valid_idx]).shape == (len(valid_idx), small_dataset.n_genes)
    test = model.predict(small_dataset.test[FEATURE_COLUMNS])
    assert test.dtype == np.float32 and np.isfinite(test).all()
    history = model.history_
    assert len(history["train_loss"]) == len(history["valid_mrrmse"]) == len(history["epoch"]) <= 8
    assert 1 <= history["best_epoch"] <= len(history["epoch"])
    assert history["best_valid_mrrmse"] == min(history["valid_mrrmse"])
    # The best epoch's weights are restored: the model scores what its history says.
    assert mrrmse(y[valid_idx], model.predict(X.iloc[valid_idx])) == pytest.approx(history["best_valid_mrrmse"], rel=1e-4)
    json.dumps(history)  # it goes into meta.json


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_without_eval_set_trains_the_fixed_number_of_epochs(small_dataset, name):
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[:200], small_dataset.targets[:200]
    model = build_model(_config(name, max_epochs=7, refit_epochs=3), seed=0).fit(X, y)
    assert model.history_["epoch"] == [1, 2, 3] and model.history_["best_epoch"] == 3
    assert model.history_["valid_mrrmse"] == [None] * 3
    assert build_model(_config(name, max_epochs=5), seed=0).fit(X, y).history_["epoch"] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_tiny_model_overfits_a_tiny_dataset(small_dataset, name):
    rows = np.arange(0, 614, 20)  # 31 rows
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[rows], small_dataset.targets[rows]
    wider = {"mlp": {"hidden": [128, 128]}, "transformer": {"d_model": 32, "hidden": 128}}[name]
    config = _config(name, max_epochs=200, dropout=0.0, lr=3e-3, **wider)
    config["features"]["target_stats"] = []  # 31 rows: mostly one row per compound
    model = build_model(config, seed=0).fit(X, y)
    losses = model.history_["train_loss"]
    assert losses[-1] < 0.1 * losses[0]
    assert mrrmse(y, model.predict(X)) < 0.5 * mrrmse(y, np.broadcast_to(y.mean(axis=0), y.shape))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_same_seed_same_predictions_other_seed_differs(small_dataset, name):
    train_idx, valid_idx = lymphoid_fold(small_dataset, fold=2)
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets

    def predictions(seed):
        model = build_model(_config(name, batch_size=64), seed=seed)
        model.fit(X.iloc[train_idx], y[train_idx], eval_set=(X.iloc[valid_idx], y[valid_idx]))
        return model.predict(X.iloc[valid_idx]), model.history_["train_loss"]

    state = torch.random.get_rng_state()
    first, again, other = predictions(0), predictions(0), predictions(1)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    assert not np.array_equal(first[0], other[0])
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_sentinel_in_validation_row_reaches_neither_inputs_nor_gradients(small_dataset, name):
    """The validation rows select the epoch and nothing else: inputs and the whole training trajectory are unchanged."""
    train_idx, valid_idx = lymphoid_fold(small_dataset, fold=1)
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    config = _config(name, lr_patience=1000)  # a learning-rate schedule fixed in advance
    config["features"]["pca_components"] = 16
    fitted = []
    for targets in (y, with_sentinel(y, valid_idx[3])):
        model = build_model(config, seed=0)
        model.fit(X.iloc[train_idx], targets[train_idx], eval_set=(X.iloc[valid_idx], targets[valid_idx]))
        fitted.append(model)
    clean, planted = fitted
    for rows in (X, small_dataset.test[FEATURE_COLUMNS]):
        for a, b in zip(clean._tensors(rows), planted._tensors(rows)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert clean.history_["train_loss"] == planted.history_["train_loss"]
    assert planted.history_["valid_mrrmse"][0] > 1e3 > clean.history_["valid_mrrmse"][0]


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_sentinel_in_validation_row_changes_no_prediction(small_dataset, name):
    train_idx, valid_idx = lymphoid_fold(small_dataset, fold=1)
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    config = _config(name)
    config["features"]["pca_components"] = 16
    predictions = []
    for targets in (y, with_sentinel(y, valid_idx[3])):
        fitted = build_model(config, seed=0).fit(X.iloc[train_idx], targets[train_idx])
        predictions.append(fitted.predict(X))
    np.testing.assert_array_equal(*predictions)


def test_transformer_gives_unseen_categories_the_zero_token(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    compound = X["sm_name"].astype(str)
    held_out = compound.unique()[0]
    train = np.flatnonzero(compound != held_out)
    model = build_model(_config("transformer"), seed=0).fit(X.iloc[train], y[train])
    tokens = model._tensors(X)[1]
    assert (tokens[compound.to_numpy() == held_out, 1] == 0).all() and (tokens[train] > 0).all()
    assert torch.count_nonzero(model.module_.embeddings[1].weight[0]) == 0
    assert np.isfinite(model.predict(X[compound == held_out])).all()


def test_losses():
    prediction, target = torch.zeros(3, 4), torch.tensor([[1.0] * 4, [2.0] * 4, [0.0] * 4])
    assert float(make_loss("mse")(prediction, target)) == pytest.approx(5 / 3)
    assert float(make_loss("mrrmse")(prediction, target)) == pytest.approx(1.0)
    assert float(make_loss("huber", 1.0)(prediction, target)) == pytest.approx((0.5 + 1.5) / 3)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("mae")


@pytest.mark.parametrize("loss", ["mrrmse", "huber"])
def test_selectable_losses_train(small_dataset, loss):
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[:100], small_dataset.targets[:100]
    model = build_model(_config("mlp", loss=loss, max_epochs=20), seed=0).fit(X, y)
    assert model.history_["loss"] == loss and model.history_["train_loss"][-1] < model.history_["train_loss"][0]


def test_device_auto_picks_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_gpu_path_is_selected_and_predicts(small_dataset, name):
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[:200], small_dataset.targets[:200]
    model = build_model(_config(name, max_epochs=3), seed=0).fit(X, y)
    assert model.device_.type == "cuda"
    assert next(model.module_.parameters()).is_cuda
    prediction = model.predict(X)
    assert isinstance(prediction, np.ndarray) and prediction.shape == y.shape and np.isfinite(prediction).all()


def test_cv_run_stores_histories_and_loss_curve_pngs(small_dataset, tmp_path):
    config = _config("mlp", max_epochs=4)
    result = run_cv(small_dataset, config, oof_root=tmp_path, progress=False)
    meta = json.loads((result.run_dir / "meta.json").read_text())
    for fold in meta["folds"]:
        assert len(fold["history"]["train_loss"]) == len(fold["history"]["epoch"]) >= 1
        png = (result.run_dir / f"loss_fold{fold['fold']}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(meta["folds"]) == 4
