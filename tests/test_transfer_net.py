"""transfer_net: shapes and seeding, the example builder, the inner split, the gate, a planted non-linear map, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS, build_model
from perturbkit.metrics import mrrmse
from perturbkit.models import create_model
from perturbkit.models.transfer import TransferRidge
from perturbkit.models.transfer_net import GATE_GRID, TransferNet, transfer_examples

from helpers import lymphoid_fold

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["params.d_model=8", "params.hidden=[16]", "params.n_components=8", "params.train.max_epochs=4",
        "params.train.patience=2", "params.train.batch_size=0", "params.train.n_threads=1"]


def _fold(dataset):
    train_idx, valid_idx = lymphoid_fold(dataset)
    X = dataset.obs[FEATURE_COLUMNS]
    return X.iloc[train_idx], dataset.targets[train_idx], X.iloc[valid_idx]


def test_shapes_and_same_seed_same_predictions(small_dataset):
    X, y, X_valid = _fold(small_dataset)
    config = load_config("transfer_net", configs_dir=CONFIGS, overrides=TINY)
    first = build_model(config, seed=0).fit(X, y)
    prediction = first.predict(X_valid)
    assert prediction.shape == (len(X_valid), small_dataset.n_genes) and prediction.dtype == np.float32
    assert np.isfinite(prediction).all()
    assert first.predict(small_dataset.test[FEATURE_COLUMNS]).shape == (len(small_dataset.test), small_dataset.n_genes)
    np.testing.assert_array_equal(build_model(config, seed=0).fit(X, y).predict(X_valid), prediction)
    # the network itself (the gate of a tiny network may well be 0, which makes any seed the ridge)
    other = build_model(config, seed=1).fit(X, y)
    assert not torch.equal(other.module_.output.weight, first.module_.output.weight)
    history = first.history_
    assert history["inner_split"]["valid_rows"] > 0 and history["refit"]["epoch"] == list(range(1, history["best_epoch"] + 1))
    assert history["gate"] == first.gate_ in GATE_GRID
    # every observed pair with a measured source is an example: lymphoid pairs and the panel's B/Myeloid rows
    assert first.n_examples_ > 0.9 * len(X)


def test_inner_split_holds_out_one_row_of_a_share_of_the_compounds(small_dataset):
    X, _, _ = _fold(small_dataset)
    kept, held_out = TransferNet._inner_split(X, 0.2, 0)
    compounds = X["sm_name"].astype(str).to_numpy()
    assert len(held_out) == round(0.2 * len(np.unique(compounds))) == len(np.unique(compounds[held_out]))
    assert set(compounds[held_out]) <= set(compounds[kept])  # their other cell types stay, as inputs
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held_out])), np.arange(len(X)))
    assert not np.array_equal(TransferNet._inner_split(X, 0.2, 1)[1], held_out)


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


def test_learns_a_planted_non_linear_map_that_transfer_ridge_cannot_and_the_gate_opens_for_it():
    X, y, held_out = _planted_world()
    fit_rows = ~held_out
    settings = {"max_epochs": 120, "patience": 15, "lr": 1e-2, "batch_size": 0, "n_threads": 1}
    net = create_model("transfer_net", n_components=12, hidden=[64, 64], dropout=0.0, train=settings).fit(X[fit_rows], y[fit_rows])
    assert net.gate_ >= 0.7  # the square: the inner split shows the network's gain over the ridge
    ridge = TransferRidge(n_components=12).fit(X[fit_rows], y[fit_rows])
    net_error = mrrmse(y[held_out], net.predict(X[held_out]))
    ridge_error = mrrmse(y[held_out], ridge.predict(X[held_out]))
    zeros_error = mrrmse(y[held_out], np.zeros_like(y[held_out]))
    assert ridge_error > 0.85 * zeros_error  # a linear map of the sources says almost nothing about a square
    assert net_error < 0.5 * ridge_error


@pytest.mark.parametrize(("override", "message"), [
    ("params.d_model=0", "d_model"), ("params.d_model=-4", "d_model"), ("params.dropout=1", "dropout"),
    ("params.min_source_coverage=2", "min_source_coverage"),
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


def test_gate_zero_is_the_ridges_prediction_exactly_and_the_gate_moves_linearly_to_the_network(small_dataset):
    X, y, X_valid = _fold(small_dataset)
    settings = {"max_epochs": 4, "patience": 2, "batch_size": 0, "n_threads": 1}
    net = create_model("transfer_net", n_components=8, hidden=[16], d_model=8, train=settings).fit(X, y)
    assert net.gate_ in GATE_GRID and net.history_["gate"] == net.gate_
    ridge = TransferRidge(n_components=8).fit(X, y)
    at = {}
    for gate in (0.0, 0.5, 1.0):
        net.gate_ = gate
        at[gate] = net.predict(X_valid)
    np.testing.assert_array_equal(at[0.0], ridge.predict(X_valid))
    net.gate_ = 0.0
    np.testing.assert_array_equal(net.predict(small_dataset.test[FEATURE_COLUMNS]), ridge.predict(small_dataset.test[FEATURE_COLUMNS]))
    np.testing.assert_allclose(at[0.5], (at[0.0] + at[1.0]) / 2, rtol=1e-4, atol=1e-4)
    assert not np.allclose(at[1.0], at[0.0], atol=1e-3)  # the check can fail: the network moved


def test_the_gate_is_chosen_on_the_inner_split_so_no_inner_split_is_named(small_world, tmp_path, capsys):
    from perturbkit.cli import main

    code = main(["cv", "--model", "transfer_net", "--configs-dir", str(CONFIGS), "--data", str(small_world),
                 "--oof", str(tmp_path / "oof"), "--set", "params.train.valid_fraction=0"])
    err = capsys.readouterr().err
    assert code == 2 and "params.train.valid_fraction=0: the gate is chosen on the inner split" in err and "Traceback" not in err
    assert not list((tmp_path / "oof").rglob("meta.json"))
