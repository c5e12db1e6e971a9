"""transfer_net: shapes and seeding, the example builder, a planted non-linear map, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS, build_model
from perturbkit.errors import ConfigError
from perturbkit.metrics import mrrmse
from perturbkit.models import create_model
from perturbkit.models.transfer import TransferRidge
from perturbkit.models.transfer_net import GATE_GRID, transfer_examples

from helpers import lymphoid_fold

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["params.d_model=8", "params.n_heads=2", "params.feedforward=16", "params.hidden=[16]", "params.n_layers=1",
        "params.n_components=8", "params.train.max_epochs=4", "params.train.patience=2", "params.train.batch_size=0",
        "params.train.n_threads=1"]


def _fold(dataset):
    train_idx, valid_idx = lymphoid_fold(dataset)
    X = dataset.obs[FEATURE_COLUMNS]
    return X.iloc[train_idx], dataset.targets[train_idx], X.iloc[valid_idx]


@pytest.mark.parametrize("architecture", ["transformer", "mlp"])
def test_shapes_and_same_seed_same_predictions(small_dataset, architecture):
    X, y, X_valid = _fold(small_dataset)
    # ungated: a tiny network's gate may well be 0 for every type, which makes any seed the ridge
    config = load_config("transfer_net", configs_dir=CONFIGS,
                         overrides=[*TINY, f'params.architecture="{architecture}"', 'params.gate="none"'])
    first = build_model(config, seed=0).fit(X, y)
    prediction = first.predict(X_valid)
    assert prediction.shape == (len(X_valid), small_dataset.n_genes) and prediction.dtype == np.float32
    assert np.isfinite(prediction).all()
    assert first.predict(small_dataset.test[FEATURE_COLUMNS]).shape == (len(small_dataset.test), small_dataset.n_genes)
    np.testing.assert_array_equal(build_model(config, seed=0).fit(X, y).predict(X_valid), prediction)
    assert not np.array_equal(build_model(config, seed=1).fit(X, y).predict(X_valid), prediction)
    history = first.history_
    assert history["inner_split"]["valid_rows"] > 0 and history["refit"]["epoch"] == list(range(1, history["best_epoch"] + 1))
    # every observed pair with a measured source is an example: lymphoid pairs and the panel's B/Myeloid rows
    assert first.n_examples_ > 0.9 * len(X)


def test_a_pairs_own_row_is_never_in_its_input(small_dataset):
    X, y, _ = _fold(small_dataset)
    table = TransferRidge(n_components=8).fit(X, y)
    compounds, targets = np.nonzero(table.observed_)
    examples = transfer_examples(table, compounds, targets)
    assert not examples.present[np.arange(len(examples)), targets].any()
    np.testing.assert_array_equal(examples.scores, table.profiles_[compounds, targets])
    # Through a sentinel: plant one pair's profile and rebuild; only other pairs of that compound see it.
    c, t = compounds[0], targets[0]
    table.profiles_[c, t] = 1e6
    planted = transfer_examples(table, compounds, targets)
    own = (compounds == c) & (targets == t)
    assert planted.scores[own].max() == 1e6 and not (planted.sources[own] == 1e6).any()
    assert (planted.sources[(compounds == c) & ~own] == 1e6).any()  # the check can fail: t is a source of c's other pairs


def _planted_world(seed: int = 0, n_compounds: int = 160, n_genes: int = 12):
    """Three cell types linear in a compound latent, a fourth one its square: no linear map reaches it."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_compounds, 3))
    maps = {name: rng.standard_normal((3, n_genes)) for name in ("A", "B", "C")}
    squared = rng.standard_normal((3, n_genes))
    profiles = {name: latent @ m for name, m in maps.items()} | {"D": (latent**2) @ squared}
    rows = [(cell, f"c{i}") for cell in profiles for i in range(n_compounds)]
    X = pd.DataFrame(rows, columns=["cell_type", "sm_name"])
    y = np.concatenate([profiles[cell] for cell in profiles]).astype(np.float32)
    held_out = (X["cell_type"] == "D").to_numpy() & (np.arange(len(X)) % n_compounds >= n_compounds - 30)
    return X, y, held_out


def test_learns_a_planted_non_linear_map_that_transfer_ridge_cannot():
    X, y, held_out = _planted_world()
    fit_rows = ~held_out
    settings = {"max_epochs": 120, "patience": 15, "lr": 1e-2, "batch_size": 0, "n_threads": 1}
    net = create_model("transfer_net", architecture="mlp", n_components=12, hidden=[64, 64], dropout=0.0, token_dropout=0.0,
                       train=settings).fit(X[fit_rows], y[fit_rows])
    ridge = TransferRidge(n_components=12).fit(X[fit_rows], y[fit_rows])
    net_error = mrrmse(y[held_out], net.predict(X[held_out]))
    ridge_error = mrrmse(y[held_out], ridge.predict(X[held_out]))
    zeros_error = mrrmse(y[held_out], np.zeros_like(y[held_out]))
    assert ridge_error > 0.85 * zeros_error  # a linear map of the sources says almost nothing about a square
    assert net_error < 0.5 * ridge_error


@pytest.mark.parametrize(("override", "message"), [
    ("params.d_model=0", "d_model"), ("params.d_model=-4", "d_model"),
    ("params.token_dropout=1.0", "token_dropout"), ("params.token_dropout=-0.1", "token_dropout"),
    ("params.dropout=1", "dropout"), ('params.selection="test"', "selection"),
])
def test_bad_sizes_and_rates_are_named_before_any_data(tmp_path, capsys, override, message):
    from perturbkit.cli import main

    code = main(["cv", "--model", "transfer_net", "--configs-dir", str(CONFIGS), "--data", str(tmp_path / "no-such-data"),
                 "--oof", str(tmp_path / "oof"), "--set", override])
    err = capsys.readouterr().err
    assert code == 2 and f"params.{message}" in err and "Traceback" not in err
    assert not (tmp_path / "oof").exists()


def test_a_token_space_wider_than_the_folds_pca_rank_is_named_before_any_fit(small_world, tmp_path, capsys):
    from perturbkit.cli import main

    code = main(["cv", "--model", "transfer_net", "--configs-dir", str(CONFIGS), "--data", str(small_world),
                 "--oof", str(tmp_path / "oof"), "--set", "params.n_components=301"])
    err = capsys.readouterr().err
    assert code == 2 and "params.n_components=301: the token space is wider than the fold's PCA rank, at most 300" in err
    assert "Traceback" not in err and not list((tmp_path / "oof").rglob("meta.json"))


def _gated(X, y, **params):
    settings = {"max_epochs": 4, "patience": 2, "batch_size": 0, "n_threads": 1}
    return create_model("transfer_net", architecture="mlp", n_components=8, hidden=[16], d_model=8, residual=True,
                        gate="per_type", train=settings, **params).fit(X, y)


def test_gate_zero_is_the_ridges_prediction_exactly_and_one_the_ungated_networks(small_dataset):
    X, y, X_valid = _fold(small_dataset)
    net = _gated(X, y, selection="rare")
    assert set(net.gates_) == set(net.table_.cell_types_) and set(net.gates_.values()) <= set(GATE_GRID)
    assert net.history_["gates"] == net.gates_
    net.gates_ = dict.fromkeys(net.gates_, 0.0)
    ridge = TransferRidge(n_components=8).fit(X, y)
    np.testing.assert_array_equal(net.predict(X_valid), ridge.predict(X_valid))
    np.testing.assert_array_equal(net.predict(small_dataset.test[FEATURE_COLUMNS]), ridge.predict(small_dataset.test[FEATURE_COLUMNS]))
    net.gates_ = dict.fromkeys(net.gates_, 1.0)
    ungated = net.set_params(gate="none").predict(X_valid)
    np.testing.assert_allclose(net.set_params(gate="per_type").predict(X_valid), ungated, rtol=1e-5, atol=1e-5)
    assert not np.allclose(ungated, ridge.predict(X_valid), atol=1e-3)  # the check can fail: the network moved


def test_the_gate_follows_the_inner_split_where_the_network_beats_the_ridge():
    X, y, held_out = _planted_world()
    settings = {"max_epochs": 120, "patience": 15, "lr": 1e-2, "batch_size": 0, "n_threads": 1}
    fit_rows = ~held_out
    net = create_model("transfer_net", architecture="mlp", n_components=12, hidden=[64, 64], dropout=0.0, token_dropout=0.0,
                       residual=True, gate="per_type", train=settings).fit(X[fit_rows], y[fit_rows])
    assert net.gates_["D"] >= 0.7  # the square: the inner split shows the network's gain over the ridge
    ridge = TransferRidge(n_components=12).fit(X[fit_rows], y[fit_rows])
    assert mrrmse(y[held_out], net.predict(X[held_out])) < 0.7 * mrrmse(y[held_out], ridge.predict(X[held_out]))


def test_rare_selection_holds_out_the_rare_type_rows_of_some_compounds_and_selects_on_them(small_dataset):
    X, y, _ = _fold(small_dataset)
    net = create_model("transfer_net", selection="rare", train={"valid_fraction": 0.2})
    held_out, selected_on = net._inner_split(X, net._settings, 0)
    cells, compounds = X["cell_type"].astype(str).to_numpy(), X["sm_name"].astype(str).to_numpy()
    rare = set(net._rare_types(X, net.min_source_coverage))
    assert rare and rare < set(cells) and set(cells[selected_on]) == rare
    chosen = np.unique(compounds[selected_on])
    assert 1 <= len(chosen) < len(np.unique(compounds[np.isin(cells, list(rare))]))
    # every rare-type row of a chosen compound, and the usual one-row-per-compound draw besides
    np.testing.assert_array_equal(selected_on, np.flatnonzero(np.isin(cells, list(rare)) & np.isin(compounds, chosen)))
    assert set(selected_on) < set(held_out) and not set(cells[np.setdiff1d(held_out, selected_on)]) <= rare


def test_balanced_types_weigh_each_target_type_about_equally(small_dataset):
    X, y, _ = _fold(small_dataset)
    net = create_model("transfer_net", n_components=8)
    table = TransferRidge(n_components=8).fit(X, y)
    examples = net._train_examples(table)
    counts = np.unique(examples.target, return_counts=True)[1]
    assert counts.max() > 3 * counts.min()  # the check can fail: the rare types have few examples
    balanced = net._balanced(examples)
    balanced_counts = np.unique(balanced.target, return_counts=True)[1]
    assert balanced_counts.max() < 1.1 * balanced_counts.min() and balanced_counts.max() < 1.1 * counts.max()
    pairs = {(c, t) for c, t in zip(balanced.compound, balanced.target)}
    assert pairs == {(c, t) for c, t in zip(examples.compound, examples.target)}


def test_a_gate_or_rare_selection_without_an_inner_split_is_named(small_world, tmp_path, capsys):
    from perturbkit.cli import main

    for settings, message in ((['params.gate="shared"'], 'params.gate="shared"'),
                              (['params.gate="none"', 'params.selection="rare"'], 'params.selection="rare"')):
        sets = [arg for setting in settings for arg in ("--set", setting)]
        code = main(["cv", "--model", "transfer_net", "--configs-dir", str(CONFIGS), "--data", str(small_world),
                     "--oof", str(tmp_path / "oof"), *sets, "--set", "params.train.valid_fraction=0"])
        err = capsys.readouterr().err
        assert code == 2 and f"{message} is chosen on the inner split" in err and "Traceback" not in err
        assert not list((tmp_path / "oof").rglob("meta.json"))


@pytest.mark.parametrize("gate", ["per_type", "shared"])
def test_inner_splits_draw_different_splits_sum_their_gate_errors_and_refit_for_the_median_epoch(small_dataset, monkeypatch,
                                                                                                 gate):
    X, y, _ = _fold(small_dataset)
    drawn, errors = [], []
    net = create_model("transfer_net", architecture="mlp", n_components=8, hidden=[64], d_model=8, dropout=0.0, gate=gate,
                       inner_splits=3, train={"max_epochs": 30, "patience": 3, "lr": 0.03, "batch_size": 0, "n_threads": 1})
    split, gate_errors = net._inner_split, net._gate_errors
    monkeypatch.setattr(net, "_inner_split", lambda *a: drawn.append(split(*a)) or drawn[-1])
    monkeypatch.setattr(net, "_gate_errors", lambda *a: errors.append(gate_errors(*a)) or errors[-1])
    net.fit(X, y)
    assert len(drawn) == 3 and len({tuple(held_out) for held_out, _ in drawn}) == 3
    assert gate == "per_type" or len(set(net.gates_.values())) == 1
    epochs = np.array(net.history_["inner_best_epochs"])
    assert len(set(epochs[:, 0])) > 1  # the check can fail: the splits select different epochs
    assert epochs.shape == (3, 1) and net.history_["refit"]["epoch"] == list(range(1, int(np.median(epochs[:, 0])) + 1))
    for name, value in net.gates_.items():
        summed = sum(e[name] for e in errors) if gate == "per_type" else sum(sum(e.values()) for e in errors)
        assert value == GATE_GRID[int(np.argmin(summed))]
