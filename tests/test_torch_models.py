"""The torch models (mlp, transformer) and their shared training loop, on the 300-gene world with tiny widths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS, run_cv, save_run
from perturbkit.models import build_model
from perturbkit.metrics import mrrmse
from perturbkit.models import create_model, list_models
from perturbkit.models.torch_loop import TrainSettings, make_loss, resolve_device
from helpers import lymphoid_fold, with_sentinel


SMALL_FEATURES = {"blocks": ["morgan", "substructures"], "morgan_bits": 256, "stats_components": 4}
# One thread: tiny networks are all synchronisation overhead with two, worst on a busy machine.
TINY = {
    "mlp": {"hidden": [32, 16]},
    "transformer": {"d_model": 16, "n_heads": 2, "feedforward": 32, "hidden": 32},
}
TINY_TRAIN = {"max_epochs": 8, "patience": 4, "n_threads": 1}
TORCH_MODELS = sorted(TINY)
TRAIN_KEYS = set(TrainSettings().get_params())


def _config(model, **params):
    """The shipped config with tiny widths; keyword arguments that are training settings go to [params.train]."""
    config = load_config(model)
    train = {key: params.pop(key) for key in list(params) if key in TRAIN_KEYS}
    config["params"] = {**config.get("params", {}), **TINY[model], **params}
    config["params"]["train"] = {**config["params"].get("train", {}), **TINY_TRAIN, **train}
    config["features"] = {**config.get("features", {}), **SMALL_FEATURES}
    return config




def test_registered_with_the_estimator_contract():
    assert {"mlp", "transformer"} <= set(list_models())
    for name in TORCH_MODELS:
        model = create_model(name, **TINY[name])
        params = model.get_params(deep=True)
        assert params["train__device"] == "auto" and "features__stats_components" in params
        assert params["train__max_epochs"] == TrainSettings().max_epochs  # defaults in one place
        assert not [k for k in vars(model) if k.endswith("_")]  # __init__ stores parameters only


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_selection_uses_an_inner_split_grouped_by_compound_then_refits(small_dataset, name):
    train_idx, _ = lymphoid_fold(small_dataset)
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[train_idx], small_dataset.targets[train_idx]
    model = build_model(_config(name), seed=0).fit(X, y)
    history = model.history_
    assert len(history["train_loss"]) == len(history["valid_mrrmse"]) == len(history["epoch"]) <= 8
    assert 1 <= history["best_epoch"] <= len(history["epoch"])
    assert history["best_valid_mrrmse"] == min(history["valid_mrrmse"])
    inner = history["inner_split"]
    assert inner["train_rows"] + inner["valid_rows"] == len(train_idx) and inner["valid_rows"] > 0
    # The refit trains on every row given to fit, for the selected number of epochs, without selection.
    assert history["refit"]["epoch"] == list(range(1, history["best_epoch"] + 1))
    assert history["refit"]["valid_mrrmse"] == [None] * history["best_epoch"]
    assert model.predict(small_dataset.test[FEATURE_COLUMNS]).shape == (len(small_dataset.test), small_dataset.n_genes)
    json.dumps(history)  # it goes into meta.json


def test_inner_split_holds_out_whole_compounds(small_dataset):
    from perturbkit.models.torch_loop import TorchRegressor

    X = small_dataset.obs[FEATURE_COLUMNS]
    compounds = X["sm_name"].astype(str).to_numpy()
    inner, stop = TorchRegressor._inner_split(X, 0.15, 0)
    assert not set(compounds[inner]) & set(compounds[stop])
    # valid_fraction is a share of the compounds, as for transfer_net (which holds out one row of each)
    assert len(np.unique(compounds[stop])) == int(np.ceil(0.15 * len(np.unique(compounds))))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_without_selection_trains_the_fixed_number_of_epochs(small_dataset, name, capsys):
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[:200], small_dataset.targets[:200]
    model = build_model(_config(name, max_epochs=3, valid_fraction=0.0), seed=0).fit(X, y)
    assert model.history_["epoch"] == [1, 2, 3] and model.history_["best_epoch"] == 3
    assert "epoch" not in capsys.readouterr().err  # fitted outside a CV run: no progress bars
    assert model.history_["valid_mrrmse"] == [None] * 3 and "refit" not in model.history_


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_pca_targets_and_cell_type_gain(small_dataset, name):
    train_idx, valid_idx = lymphoid_fold(small_dataset)
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    model = build_model(_config(name, target_components=8, celltype_gain=True), seed=0).fit(X.iloc[train_idx], y[train_idx])
    assert model.transformer_.components_.shape == (8, small_dataset.n_genes)  # PCA of the rows given to fit
    assert model.regressor_.module_.output.out_features == 8
    gains = model.regressor_.module_.log_gain.weight
    assert gains.shape[0] == 1 + X.iloc[train_idx]["cell_type"].astype(str).nunique() and float(gains[0].detach().abs()) == 0.0
    prediction = model.predict(X.iloc[valid_idx])
    assert prediction.shape == (len(valid_idx), small_dataset.n_genes) and np.isfinite(prediction).all()


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_tiny_model_overfits_a_tiny_dataset(small_dataset, name):
    rows = np.arange(0, 614, 20)  # 31 rows
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[rows], small_dataset.targets[rows]
    wider = {"mlp": {"hidden": [128, 128]}, "transformer": {"d_model": 32, "hidden": 128}}[name]
    config = _config(name, max_epochs=200, dropout=0.0, lr=3e-3, valid_fraction=0.0, **wider)
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
        model.fit(X.iloc[train_idx], y[train_idx])
        return model.predict(X.iloc[valid_idx]), model.history_["train_loss"]

    state = torch.random.get_rng_state()
    first, again, other = predictions(0), predictions(0), predictions(1)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    assert not np.array_equal(first[0], other[0])
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_sentinel_in_the_inner_validation_rows_moves_the_selection(small_dataset, name):
    """The inner validation rows (training rows of the fold, held out by compound) do the selection and nothing else."""
    from sklearn.model_selection import GroupShuffleSplit

    train_idx, _ = lymphoid_fold(small_dataset, fold=1)
    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[train_idx], small_dataset.targets[train_idx]
    _, stop = next(GroupShuffleSplit(n_splits=1, test_size=0.15, random_state=0).split(X, groups=X["sm_name"].astype(str)))
    histories = []
    for targets in (y, with_sentinel(y, stop)):
        histories.append(build_model(_config(name, refit=False, lr_patience=1000), seed=0).fit(X, targets).history_)
    clean, planted = histories
    assert planted["valid_mrrmse"][0] > 1e3 > clean["valid_mrrmse"][0]
    # Never a gradient: the epochs both runs trained have the same training losses (only when to stop may differ).
    shared = min(len(planted["train_loss"]), len(clean["train_loss"]))
    assert shared >= 2 and planted["train_loss"][:shared] == clean["train_loss"][:shared]


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


def test_cv_run_stores_histories_and_loss_curve_pngs_and_shows_each_folds_epochs(small_dataset, tmp_path, capsys):
    config = _config("mlp", max_epochs=4)
    result = run_cv(small_dataset, config, progress=True)
    run_dir = save_run(result, tmp_path)  # the store's artifact hook: every command that saves runs writes the curves
    meta = json.loads((run_dir / "meta.json").read_text())
    shown = capsys.readouterr().err
    for fold in meta["folds"]:
        assert len(fold["history"]["train_loss"]) == len(fold["history"]["epoch"]) >= 1
        png = (run_dir / f"loss_fold{fold['fold']}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        # Progress inside the fold: its epochs (where early stopping ended them), the inner score, the refit.
        inner = [part for part in shown.split("\r") if part.startswith(f"fold {fold['fold']} inner split:")]
        epochs, best = len(fold["history"]["epoch"]), fold["history"]["best_valid_mrrmse"]
        assert f" {epochs}/4 " in inner[-1] and f"best={best:.4f}@{fold['history']['best_epoch']}" in inner[-1]
        assert len(inner) <= 3  # no terminal here: a first line, the last, at most one between
        assert f"fold {fold['fold']} refit: 100%" in shown
    assert len(meta["folds"]) == 4


# -- defaults, retired keys, checks before any fit (all three torch models) ------------------------------------------
SHIPPED = ("mlp", "transformer", "transfer_net")


def _comparable(params: dict) -> dict:
    """``get_params(deep=True)`` without the nested estimators themselves (their parameters are there, flattened),
    sequences as tuples (a TOML list is a list, a class default a tuple)."""
    from sklearn.base import BaseEstimator

    def plain(value):
        return tuple(plain(v) for v in value) if isinstance(value, (list, tuple)) else value

    return {key: plain(value) for key, value in params.items() if not isinstance(value, BaseEstimator)}


@pytest.mark.parametrize("name", SHIPPED)
def test_defaults_are_the_shipped_configs(name):
    from perturbkit.models.mlp import MLPRegressor
    from perturbkit.models.transfer_net import TransferNet
    from perturbkit.models.transformer import TabTransformerRegressor

    shipped = build_model(load_config(name), seed=0)  # configs/NAME.toml, its [test] table left out
    assert _comparable(shipped.get_params(deep=True)) == _comparable(create_model(name).get_params(deep=True))
    cls = {"mlp": MLPRegressor, "transformer": TabTransformerRegressor, "transfer_net": TransferNet}[name]
    assert _comparable(cls().get_params(deep=True)) == _comparable(shipped.get_params(deep=True))  # a notebook's cls()
    assert cls().train is not cls().train  # each estimator its own settings: set_params on one leaves the defaults alone


def test_a_retired_key_gets_a_named_error_saying_why():
    from perturbkit.config import read_toml
    from perturbkit.errors import ConfigError
    from perturbkit.retired import RETIRED, check_retired

    shipped = read_toml(Path(__file__).resolve().parents[1] / "configs" / "transfer_net.toml")
    check_retired("transfer_net", shipped, "configs/transfer_net.toml")  # the shipped config names none
    retired = sorted(key for owner, key in RETIRED if owner == "transfer_net")
    assert {"params.selection", "params.balance_types", "params.inner_splits", "params.n_seeds", "params.gate"} <= set(retired)
    for key in retired:
        table, name = key.split(".")
        with pytest.raises(ConfigError, match=re.escape(f"t.toml: {key} was retired: {RETIRED['transfer_net', key]}")):
            check_retired("transfer_net", {**shipped, table: {**shipped[table], name: 1}}, "t.toml")
        assert name not in create_model("transfer_net").get_params()  # and the code is gone


def _refused(name: str, overrides: list[str], key: str, small_dataset) -> str:
    """The message of the named error a config with ``overrides`` gets before any network is trained (at load, else
    at the start of fit), checked to name ``key``."""
    from perturbkit.errors import ConfigError

    X, y = small_dataset.obs[FEATURE_COLUMNS].iloc[:120], small_dataset.targets[:120]
    with pytest.raises(ConfigError) as caught:
        model = build_model(load_config(name, overrides=overrides, test=True), seed=0)
        model.fit(X, y)
    assert key in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(("name", "overrides", "key", "says"), [
    ("mlp", ["params.target_components=100000"], "params.target_components=100000", "at most 120"),
    ("mlp", ["params.target_components=-1"], "params.target_components=-1", ">= 0"),
    ("transformer", ["params.n_heads=3", "params.d_model=8"], "params.n_heads=3", "does not divide params.d_model=8"),
    ("transformer", ['params.tokens=["x"]'], "params.tokens", "known: cell_type, sm_name"),
    ("mlp", ['params.train.device="nonsense"'], "params.train.device='nonsense'", "not a device"),
    ("transfer_net", ['params.train.device="nonsense"'], "params.train.device='nonsense'", "not a device"),
    ("mlp", ["params.hidden=[1000000000]"], "params.hidden=[1000000000]", "GiB is available"),
    ("transformer", ["params.hidden=1000000000"], "params.hidden=1000000000", "GiB is available"),
    ("transfer_net", ["params.hidden=[1000000000]"], "params.hidden=[1000000000]", "GiB is available"),
    ("mlp", ["params.train.n_threads=100000"], "params.train.n_threads=100000", "CPU(s)"),
    ("transfer_net", ["params.train.n_threads=100000"], "params.train.n_threads=100000", "CPU(s)"),
])
def test_bad_values_are_named_errors_before_any_fit(small_dataset, monkeypatch, name, overrides, key, says):
    import perturbkit.models.torch_loop as torch_loop
    import perturbkit.models.transfer_net as transfer_net

    def no_training(*args, **kwargs):
        raise AssertionError("a network was trained")

    monkeypatch.setattr(torch_loop, "train_module", no_training)
    monkeypatch.setattr(transfer_net, "train_module", no_training)
    assert says in _refused(name, overrides, key, small_dataset)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_named(small_dataset):
    assert "no CUDA device" in _refused("mlp", ['params.train.device="cuda"'], "params.train.device='cuda'", small_dataset)


def test_a_diverging_learning_rate_is_not_a_parameter_error():
    settings = TrainSettings(lr=1e30)
    settings._validate_params()
    settings._check_params()
