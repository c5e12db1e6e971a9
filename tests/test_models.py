"""Registry and estimator contract for the baselines and PCA-target models."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone

from perturbkit.config import load_config
from perturbkit.cv import FEATURE_COLUMNS
from perturbkit.models import build_model
from perturbkit.errors import UnknownModelError
from perturbkit.models import create_model, list_models, register_model

BASELINES = ["zeros", "gene_mean", "compound_mean", "celltype_mean"]
PCA_MODELS = ["pca_ridge", "pca_knn", "pca_lgbm"]


def test_registry_lists_and_refuses_unknown_names():
    assert set(BASELINES + PCA_MODELS) <= set(list_models())
    with pytest.raises(UnknownModelError, match=r"unknown model 'transformr', known: .*compound_mean"):
        create_model("transformr")


@pytest.mark.parametrize("name", BASELINES + PCA_MODELS)
def test_estimator_contract_and_shapes(small_dataset, name):
    config = load_config(name)
    if name == "pca_lgbm":
        config["params"].update(n_components=3, n_estimators=30)
    model = build_model(config, seed=0)
    assert clone(model).get_params().keys() == model.get_params().keys()
    X = small_dataset.obs[FEATURE_COLUMNS]
    fitted = model.fit(X.iloc[:500], small_dataset.targets[:500])
    assert fitted is model
    prediction = model.predict(small_dataset.test[FEATURE_COLUMNS])
    assert prediction.shape == (255, small_dataset.n_genes) and prediction.dtype == np.float32
    assert np.isfinite(prediction).all()


def test_pca_lgbm_counts_its_components_inside_a_cv_fit_and_is_silent_outside(small_dataset, capsys):
    from perturbkit.models.pca_target import PerComponentLGBM
    from perturbkit.progress import fit_progress

    X, y = np.random.default_rng(0).normal(size=(120, 5)), np.random.default_rng(1).normal(size=(120, 3))
    PerComponentLGBM(n_estimators=5).fit(X, y)
    assert capsys.readouterr().err == ""
    with fit_progress("fold 2"):
        PerComponentLGBM(n_estimators=5).fit(X, y)
    err = capsys.readouterr().err
    assert "fold 2 components" in err and "3/3" in err and "trees=" in err


def test_pca_lgbm_fits_each_column_alone_whatever_the_number_of_workers(monkeypatch):
    from perturbkit.models import pca_target

    X, y = np.random.default_rng(0).normal(size=(150, 6)), np.random.default_rng(1).normal(size=(150, 3))
    y[:, 0] += 2 * X[:, 0]
    y[:, 2] -= X[:, 1] * X[:, 2]
    monkeypatch.setattr(pca_target.os, "cpu_count", lambda: 3)
    together = pca_target.PerComponentLGBM(n_estimators=40).fit(X, y).predict(X)
    monkeypatch.setattr(pca_target.os, "cpu_count", lambda: 1)
    alone = [pca_target.PerComponentLGBM(n_estimators=40).fit(X, y[:, [j]]).predict(X)[:, 0] for j in range(3)]
    # Column j's prediction comes from the booster fitted on column j, bit for bit.
    np.testing.assert_array_equal(together, np.column_stack(alone))
    assert np.corrcoef(together[:, 0], y[:, 0])[0, 1] > 0.5


def test_pca_lgbm_called_without_arguments_is_its_shipped_config():
    from perturbkit.models.pca_target import pca_lgbm

    def values(model):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in model.get_params(deep=True).items() if not hasattr(v, "get_params")}

    assert values(pca_lgbm()) == values(build_model(load_config("pca_lgbm"), seed=0))


def test_baselines_predict_what_they_say(small_dataset):
    X, y = small_dataset.obs[FEATURE_COLUMNS], small_dataset.targets
    test = small_dataset.test[FEATURE_COLUMNS]
    assert not create_model("zeros").fit(X, y).predict(test).any()
    np.testing.assert_allclose(create_model("gene_mean").fit(X, y).predict(test)[0], y.mean(axis=0), rtol=1e-5)
    b_cells = (X["cell_type"] == "B cells").to_numpy()
    np.testing.assert_allclose(create_model("celltype_mean").fit(X, y).predict(test)[0], y[b_cells].mean(axis=0), rtol=1e-5, atol=1e-6)
    # a compound with no training rows falls back to the gene-wise mean
    no_compound = X["sm_name"] != test["sm_name"].iloc[0]
    prediction = create_model("compound_mean").fit(X[no_compound], y[no_compound.to_numpy()]).predict(test.iloc[:1])
    np.testing.assert_allclose(prediction[0], y[no_compound.to_numpy()].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_build_model_seeds_nested_random_states():
    config = load_config("pca_lgbm")
    params = build_model(config, seed=7).get_params(deep=True)
    seeds = [v for k, v in params.items() if k.endswith("random_state")]
    assert seeds and set(seeds) == {7}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_ships_a_config(name):
    assert load_config(name)["model"] == name
    assert (__import__("pathlib").Path("configs") / f"{name}.toml").is_file()


def _as_configured(value):
    """A parameter as a config states it: tuples as lists, a nested estimator by its class (its parameters are listed too)."""
    if isinstance(value, BaseEstimator):
        return type(value).__name__
    if isinstance(value, (tuple, list)):
        return [_as_configured(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_configured(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", list_models())
def test_a_models_defaults_are_its_shipped_config(name):
    """A notebook's ``create_model(name)`` is the shipped model: every class default equals configs/<name>.toml."""
    shipped = build_model(load_config(name), 0).get_params(deep=True)
    bare = build_model({"model": name, "params": {}}, 0).get_params(deep=True)
    shipped, bare = _as_configured(shipped), _as_configured(bare)
    differ = {key: (shipped.get(key), bare.get(key)) for key in set(shipped) | set(bare) if shipped.get(key) != bare.get(key)}
    assert not differ, f"{name}: (config, class default) differ: {differ}"


def test_models_register_where_they_are_defined():
    """One registration path: each built-in module registers its models on import; nothing else names a factory."""
    import importlib

    from perturbkit.models.registry import BUILT_IN, model_factory

    for name, module in BUILT_IN.items():
        assert any(value is model_factory(name) for value in vars(importlib.import_module(module)).values()), name
    assert "entry-points" not in open("pyproject.toml").read()
    with pytest.raises(ValueError, match="'transfer_ridge' is registered twice"):
        register_model("transfer_ridge")(lambda: None)


def test_a_linear_model_imports_no_torch():
    import subprocess
    import sys

    code = "import sys; from perturbkit.models import create_model; create_model('pca_ridge'); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_toy_model_registers_and_runs_through_cv(small_dataset):
    """Extending perturbkit: a model registered at run time goes through the harness like a built-in one."""
    from perturbkit.cv import run_cv
    from perturbkit.models import register_model
    from perturbkit.models.baselines import GroupMeanRegressor

    register_model("half_compound_mean_toy")(lambda shrink=0.5: GroupMeanRegressor(by="sm_name", shrink=shrink))
    config = {"model": "half_compound_mean_toy", "params": {}, "cv": load_config("zeros")["cv"]}
    result = run_cv(small_dataset, config, progress=False)
    assert result.meta["model"] == "half_compound_mean_toy" and result.oof.shape[1] == small_dataset.n_genes
    with pytest.raises(ValueError, match="registered twice"):
        register_model("pca_ridge")(lambda: None)
