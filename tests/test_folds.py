"""Splitters: validation rows are test-like, each row is validated at most once, train and validation are disjoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbkit.data.layout import LYMPHOID_CELL_TYPES, TEST_CELL_TYPES
from perturbkit.errors import ConfigError
from perturbkit.folds import NEVER_VALIDATED, folds_frame, folds_hash, list_splitters, make_splitter

SCHEMES = list_splitters()


def _splitter(dataset, scheme, seed=0):
    return make_splitter(scheme, test_compounds=dataset.test["sm_name"].astype(str), seed=seed)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_row_validated_at_most_once_and_disjoint(small_dataset, scheme):
    splitter = _splitter(small_dataset, scheme)
    seen = np.zeros(len(small_dataset.obs), dtype=int)
    splits = list(splitter.split(small_dataset.obs))
    assert len(splits) == splitter.get_n_splits()
    for train_idx, valid_idx in splits:
        assert len(valid_idx) > 0
        assert not set(train_idx) & set(valid_idx)
        assert len(train_idx) + len(valid_idx) == len(small_dataset.obs)
        seen[valid_idx] += 1
    assert seen.max() == 1
    fold_ids = splitter.fold_ids(small_dataset.obs)
    np.testing.assert_array_equal(fold_ids >= 0, seen == 1)


def test_lymphoid_holdout_validates_one_lymphoid_cell_type_of_test_compounds(small_dataset):
    obs = small_dataset.obs.astype({"cell_type": str, "sm_name": str})
    test_compounds = set(small_dataset.test["sm_name"].astype(str))
    splitter = _splitter(small_dataset, "lymphoid_holdout")
    for fold, (train_idx, valid_idx) in enumerate(splitter.split(obs)):
        valid = obs.iloc[valid_idx]
        assert set(valid["cell_type"]) == {LYMPHOID_CELL_TYPES[fold]}
        assert set(valid["sm_name"]) <= test_compounds
        train = obs.iloc[train_idx]
        # like the test: the cell type is seen for other compounds, each compound in other cell types
        assert (train["cell_type"] == LYMPHOID_CELL_TYPES[fold]).sum() > 0
        assert set(valid["sm_name"]) <= set(train["sm_name"])
    never = obs[splitter.fold_ids(obs) == NEVER_VALIDATED]
    assert set(never["cell_type"]) >= set(TEST_CELL_TYPES)


def test_bm_holdout_groups_compounds(small_dataset):
    obs = small_dataset.obs.astype({"cell_type": str, "sm_name": str})
    splitter = _splitter(small_dataset, "bm_holdout")
    fold_ids = splitter.fold_ids(obs)
    validated = obs[fold_ids >= 0]
    assert set(validated["cell_type"]) == set(TEST_CELL_TYPES)
    assert len(validated) == 34
    assert validated.assign(fold=fold_ids[fold_ids >= 0]).groupby("sm_name")["fold"].nunique().max() == 1
    for train_idx, valid_idx in splitter.split(obs):
        held_out = set(obs.iloc[valid_idx]["sm_name"])
        train = obs.iloc[train_idx]
        assert not (train["cell_type"].isin(TEST_CELL_TYPES) & train["sm_name"].isin(held_out)).any()


def test_kfold_validates_every_row_and_depends_on_seed(small_dataset):
    a = _splitter(small_dataset, "kfold", seed=0).fold_ids(small_dataset.obs)
    b = _splitter(small_dataset, "kfold", seed=1).fold_ids(small_dataset.obs)
    assert (a >= 0).all() and set(a) == set(range(5))
    assert not np.array_equal(a, b)


def test_fold_hash_tracks_assignment_not_row_order(small_dataset):
    fold_ids = _splitter(small_dataset, "lymphoid_holdout").fold_ids(small_dataset.obs)
    frame = folds_frame(small_dataset.obs, fold_ids)
    shuffled = frame.sample(frac=1.0, random_state=0)
    assert folds_hash(frame) == folds_hash(shuffled)
    changed = frame.assign(fold=np.where(np.arange(len(frame)) == 0, 3, frame["fold"]))
    assert folds_hash(changed) != folds_hash(frame)


def test_unknown_scheme_lists_known(small_dataset):
    with pytest.raises(ConfigError, match="unknown CV scheme 'random'; known: .*lymphoid_holdout"):
        _splitter(small_dataset, "random")


def test_splitters_follow_sklearn_api(small_dataset):
    from sklearn.model_selection import BaseCrossValidator, PredefinedSplit

    splitter = _splitter(small_dataset, "lymphoid_holdout")
    assert isinstance(splitter, BaseCrossValidator)
    tests = [valid for _, valid in PredefinedSplit(splitter.fold_ids(pd.DataFrame(small_dataset.obs))).split()]
    assert [len(t) for t in tests] == [len(v) for _, v in splitter.split(small_dataset.obs)]


def test_test_like_unites_lymphoid_and_panel_rows_in_four_folds(small_dataset):
    obs = small_dataset.obs.astype({"cell_type": str, "sm_name": str})
    splitter = _splitter(small_dataset, "test_like")
    fold_ids = splitter.fold_ids(obs)
    lymphoid = _splitter(small_dataset, "lymphoid_holdout").fold_ids(obs)
    bm = _splitter(small_dataset, "bm_holdout").fold_ids(obs)
    np.testing.assert_array_equal(fold_ids[lymphoid >= 0], lymphoid[lymphoid >= 0])
    np.testing.assert_array_equal(fold_ids[bm >= 0], bm[bm >= 0])
    assert ((lymphoid >= 0) & (bm >= 0)).sum() == 0 and ((fold_ids >= 0) == ((lymphoid >= 0) | (bm >= 0))).all()
    for fold, (train_idx, valid_idx) in enumerate(splitter.split(obs)):
        valid, train = obs.iloc[valid_idx], obs.iloc[train_idx]
        assert set(valid["cell_type"]) == {LYMPHOID_CELL_TYPES[fold], *TEST_CELL_TYPES}
        # like the test: every validated B/Myeloid compound keeps its lymphoid rows in training
        panel = set(valid.loc[valid["cell_type"].isin(TEST_CELL_TYPES), "sm_name"])
        assert panel and panel <= set(train.loc[train["cell_type"].isin(LYMPHOID_CELL_TYPES), "sm_name"])


def test_test_like_weights_give_b_myeloid_rows_half_the_score(small_dataset):
    obs = small_dataset.obs.astype({"cell_type": str, "sm_name": str})
    splitter = _splitter(small_dataset, "test_like")
    validated = splitter.fold_ids(obs) >= 0
    weights = splitter.row_weights(obs)[validated]
    is_bm = obs["cell_type"].isin(TEST_CELL_TYPES).to_numpy()[validated]
    assert weights.mean() == pytest.approx(1.0)
    assert weights[is_bm].sum() == pytest.approx(weights[~is_bm].sum())
    assert weights[is_bm].max() > 10 * weights[~is_bm].max()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_folds_are_deterministic_and_hashed(small_dataset, scheme):
    first = folds_hash(folds_frame(small_dataset.obs, _splitter(small_dataset, scheme).fold_ids(small_dataset.obs)))
    again = folds_hash(folds_frame(small_dataset.obs, _splitter(small_dataset, scheme).fold_ids(small_dataset.obs)))
    assert first == again


@pytest.mark.parametrize("scheme", ["lymphoid_holdout", "test_like"])
def test_fixed_fold_schemes_refuse_another_fold_count(small_dataset, scheme):
    with pytest.raises(ConfigError, match="exactly 4 folds"):
        make_splitter(scheme, test_compounds=small_dataset.test["sm_name"].astype(str), n_splits=2)


def test_toy_scheme_registers_and_runs_through_cv(small_dataset):
    """Extending perturbkit: a new CV scheme is a registered splitter factory; cv and the CLI's choices pick it up."""
    from perturbkit.cli import build_parser
    from perturbkit.config import load_config
    from perturbkit.cv import run_cv
    from perturbkit.folds import LymphoidHoldout, register_splitter

    @register_splitter("nk_cd4_toy", "NK and CD4+ rows of the test compounds (test)")
    def nk_cd4(*, test_compounds, seed, n_splits):
        return LymphoidHoldout(test_compounds, cell_types=("NK cells", "T cells CD4+"))

    result = run_cv(small_dataset, load_config("compound_mean", overrides=['cv.scheme="nk_cd4_toy"']), progress=False)
    assert set(result.meta["scores"]["per_cell_type"]) == {"NK cells", "T cells CD4+"}
    assert build_parser().parse_args(["cv", "--model", "zeros", "--scheme", "nk_cd4_toy"]).scheme == "nk_cd4_toy"
