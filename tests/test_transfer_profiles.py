"""The ``transfer_profiles`` feature block: a row's compound profiles in the other cell types, fitted on a fold's training rows."""

from __future__ import annotations

import numpy as np
import pytest

from perturbkit.config import load_config
from perturbkit.errors import ConfigError
from perturbkit.features import FeatureBuilder, profiles
from perturbkit.features.blocks.transfer_profiles import TransferProfiles
from perturbkit.features.pca import WidePCA

KEYS = ["cell_type", "sm_name", "SMILES"]
COMPONENTS = 4


@pytest.fixture(scope="module")
def world(small_dataset):
    return small_dataset.obs[KEYS].reset_index(drop=True), small_dataset.targets[:, :60].copy()


def _blocks(features: np.ndarray, n_cells: int) -> np.ndarray:
    return features.reshape(len(features), n_cells, -1)


def test_shapes_own_type_masked_and_other_rows_use_the_training_table(world):
    X, y = world
    train = X["cell_type"].astype(str).to_numpy() != "NK cells"
    block = TransferProfiles(n_components=COMPONENTS)
    fitted = block.fit_transform(X[train], y[train])
    cells = list(block.table_.cell_types_)
    assert fitted.shape == (train.sum(), len(cells) * COMPONENTS) and fitted.dtype == np.float32
    own = np.array([cells.index(c) for c in X["cell_type"].astype(str)[train]])
    assert np.all(_blocks(fitted, len(cells))[np.arange(len(own)), own] == 0)
    # Held-out NK rows (a type the table lacks): every training type's block, from the training table only.
    held = block.transform(X[~train])
    assert held.shape == ((~train).sum(), len(cells) * COMPONENTS)
    compounds = X["sm_name"].astype(str)[~train].to_numpy()
    table = block.table_
    codes = np.searchsorted(table.compounds_, compounds)
    measured = table.observed_[codes]
    np.testing.assert_allclose(_blocks(held, len(cells))[measured], table.profiles_[codes][measured], rtol=1e-5, atol=1e-5)
    assert not np.allclose(held, 0)
    # Training types' rows of a compound the table has not seen: each type's mean scores, the own type's block still empty.
    unseen = _blocks(block.transform(X[train].assign(sm_name="a compound never measured")), len(cells))
    rows, other = np.arange(len(own)), (own + 1) % len(cells)
    assert np.all(unseen[rows, own] == 0)
    np.testing.assert_allclose(unseen[rows, other], table.type_scores_[other], rtol=1e-5, atol=1e-5)


def test_a_rows_own_target_never_enters_its_own_features(world, monkeypatch):
    """A sentinel in one row's target moves its compound's other rows' features, never its own (the fold's shared PCA
    basis held fixed, the one way a training row's target reaches every row)."""
    X, y = world
    basis = WidePCA(COMPONENTS).fit(y)
    monkeypatch.setattr(profiles, "WidePCA", lambda n_components: _Fixed(basis))
    compounds = X["sm_name"].astype(str)
    row = int(np.flatnonzero(compounds.map(compounds.value_counts()) > 2)[0])
    siblings = np.flatnonzero((compounds == compounds[row]).to_numpy() & (np.arange(len(X)) != row))
    planted = y.copy()
    planted[row] = 1e4
    clean = TransferProfiles(n_components=COMPONENTS).fit_transform(X, y)
    moved = TransferProfiles(n_components=COMPONENTS).fit_transform(X, planted)
    np.testing.assert_array_equal(clean[row], moved[row])
    assert all(not np.allclose(clean[s], moved[s]) for s in siblings)


class _Fixed:
    """A WidePCA stand-in that keeps an already fitted basis whatever it is fitted on."""

    def __init__(self, fitted: WidePCA):
        self.fitted = fitted
        self.mean_, self.components_ = fitted.mean_, fitted.components_

    def fit(self, y):
        return self

    def transform(self, y):
        return self.fitted.transform(y)

    def inverse_transform(self, scores):
        return self.fitted.inverse_transform(scores)


def test_block_parameter_is_a_config_key_and_a_bad_value_a_named_error(world):
    X, y = world
    on = ['features.blocks=["transfer_profiles"]', f"features.transfer_profiles_n_components={COMPONENTS}"]
    config = load_config("mlp", overrides=on, test=True)
    builder = FeatureBuilder(**config["features"]).fit(X, y)
    assert builder.blocks_["transfer_profiles"].n_components == COMPONENTS
    with pytest.raises(ConfigError, match=r"feature block 'transfer_profiles': features\.transfer_profiles_n_components: .*in the range \[1, inf\)"):
        load_config("mlp", overrides=[*on, "features.transfer_profiles_n_components=0"])
