"""Config files and --set overrides: merging order, literal parsing, and named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from perturbkit.config import apply_overrides, config_hash, load_config, validate_config
from perturbkit.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_model_config_over_cv_defaults_under_overrides(tmp_path):
    (tmp_path / "cv.toml").write_text('[cv]\nscheme = "kfold"\nseed = 3\n')
    (tmp_path / "pca_ridge.toml").write_text('model = "pca_ridge"\n[params]\nalpha = 5.0\n[cv]\nseed = 4\n')
    config = load_config("pca_ridge", configs_dir=tmp_path, overrides=["params.alpha=7", "features.target_stats=[]", "cv.scheme=bm_holdout"])
    assert config["params"]["alpha"] == 7 and config["features"]["target_stats"] == []
    assert config["cv"]["seed"] == 4 and config["cv"]["scheme"] == "bm_holdout" and config["cv"]["refit"] is False
    assert config_hash(config) != config_hash(load_config("pca_ridge", configs_dir=tmp_path))


@pytest.mark.parametrize(
    "files, overrides, message",
    [
        ({"pca_ridge.toml": "model = \n"}, (), r"pca_ridge\.toml: invalid TOML"),
        ({"pca_ridge.toml": 'model = "mlp"\n'}, (), r"pca_ridge\.toml: is the config of model 'mlp', not 'pca_ridge'"),
        ({}, ("params.alpha",), r"--set 'params.alpha': expected key=value"),
        ({}, ("model.alpha=3",), r"--set 'model.alpha=3': 'model' is not a table"),
    ],
)
def test_bad_config_is_named(tmp_path, files, overrides, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config("pca_ridge", configs_dir=tmp_path, overrides=overrides)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere\.toml: config file not found"):
        load_config("pca_ridge", config_path=tmp_path / "nowhere.toml", configs_dir=tmp_path)


def test_override_values_are_toml_literals_else_strings():
    config = apply_overrides({}, ["a.int=3", "a.float=0.5", "a.bool=true", "a.list=[1, 2]", "a.word=transformer"])
    assert config["a"] == {"int": 3, "float": 0.5, "bool": True, "list": [1, 2], "word": "transformer"}


@pytest.mark.parametrize("word, expected", [("False", False), ("no", False), ("off", False), ("True", True), ("yes", True), ("false", False)])
def test_boolean_words_are_booleans(word, expected):
    config = load_config("pca_ridge", configs_dir=CONFIGS, overrides=[f"cv.refit={word}"])
    assert config["cv"]["refit"] is expected


def test_cli_flags_are_validated_with_the_config():
    config = load_config("pca_ridge", configs_dir=CONFIGS, overrides=["cv.refit=no"], cv={"seed": 3, "scheme": "kfold", "n_splits": 3})
    assert config["cv"] == {"scheme": "kfold", "seed": 3, "seeds": [], "n_splits": 3, "refit": False}
    with pytest.raises(ConfigError, match=r"cv\.seed = -1: Input should be greater than or equal to 0"):
        load_config("pca_ridge", configs_dir=CONFIGS, cv={"seed": -1})


@pytest.mark.parametrize(
    "model, overrides, message",
    [
        ("pca_ridge", ["cv.sed=3"], r"unknown key 'cv\.sed'; known keys of cv: n_splits, refit, scheme, seed, seeds"),
        ("pca_ridge", ["foo.bar=3"], r"unknown key 'foo'; known keys of the config: cv, features, model, params, tune"),
        ("pca_ridge", ["feature.stats_components=8"], r"unknown key 'feature'"),
        ("pca_ridge", ["features.stat_components=8"], r"unknown key\(s\) \['features\.stat_components'\]; known keys of features: .*stats_components"),
        ("pca_ridge", ['cv.schem="kfold"'], r"unknown key 'cv\.schem'"),
        ("pca_ridge", ['cv.scheme="kfld"'], r"cv\.scheme = 'kfld': unknown CV scheme; known: .*kfold"),
        ("pca_ridge", ["params.n_components=0"], r"params\.n_components: The 'n_components' parameter of PCATargetRegressor must be an int in the range \[1, inf\)\. Got 0"),
        ("pca_ridge", ["params.n_components=3.5"], r"params\.n_components: .* Got 3\.5 instead"),
        ("pca_ridge", ["params.alpha=-5"], r"params\.alpha: The 'alpha' parameter of pca_ridge must be a float in the range \[0\.0, inf\)"),
        ("pca_ridge", ["params.alpah=3"], r"model 'pca_ridge' has no parameter\(s\) \['params\.alpah'\]; known: alpha, n_components"),
        ("pca_ridge", ["params.loss=mae"], r"has no parameter\(s\) \['params\.loss'\]"),
        ("pca_ridge", ["cv.seed=abc"], r"cv\.seed = 'abc': Input should be a valid integer"),
        ("pca_ridge", ["cv.seed=-1"], r"cv\.seed = -1"),
        ("pca_ridge", ["cv.seeds=[1, 1]"], r"cv\.seeds = \[1, 1\]: seeds must be distinct"),
        ("pca_ridge", ["cv.seeds=[-1,2]"], r"cv\.seeds\.0 = -1: Input should be greater than or equal to 0"),
        ("pca_ridge", ["cv.seeds=[2,-3]"], r"cv\.seeds\.1 = -3: Input should be greater than or equal to 0"),
        ("pca_ridge", ['features.target_stats=["bogus"]'], r"features\.target_stats = \['bogus'\]: unknown statistics \['bogus'\]; known: \['mean', 'std', 'median'\]"),
        ("pca_ridge", ['features.blocks=["maccs"]'], r"features\.blocks = \['maccs'\]: unknown feature blocks \['maccs'\]; known: \['morgan', 'substructures', 'transfer_profiles'\]"),
        ("pca_ridge", ["features.stats_components=-1"], r"features\.stats_components = -1: Input should be greater than 0"),
        ("pca_ridge", ['features.onehot=["donor"]'], r"features\.onehot\.0 = 'donor'"),
        ("pca_ridge", ["cv.n_splits=1"], r"cv\.n_splits = 1: must be 0 \(the scheme's own\) or at least 2"),
        ("pca_ridge", ['cv.scheme="lymphoid_holdout"', "cv.n_splits=2"], r"cv\.n_splits=2: scheme 'lymphoid_holdout' has exactly 4 folds"),
        ("pca_lgbm", ["params.learning_rate=-1"], r"params\.learning_rate: The 'learning_rate' parameter of PerComponentLGBM"),
        ("pca_knn", ['params.weights="far"'], r"params\.weights: The 'weights' parameter of KNeighborsRegressor"),
        ("compound_mean", ['params.shrink="abc"'], r"params\.shrink: The 'shrink' parameter of GroupMeanRegressor"),
        ("zeros", ["features.stats_components=4"], r"model 'zeros' builds no features"),
    ],
)
def test_bad_settings_are_named_before_any_work(model, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(model, configs_dir=CONFIGS, overrides=overrides)


def test_tune_table_passes_through():
    config = load_config("pca_ridge", configs_dir=CONFIGS, overrides=['tune.alpha={low = 0.1, high = 100.0, log = true}'])
    assert config["tune"]["alpha"] == {"low": 0.1, "high": 100.0, "log": True}


def test_every_shipped_config_validates_and_keeps_its_hash():
    """Validation types values but does not add keys: stored runs keep matching their configs' hashes."""
    for path in sorted(CONFIGS.glob("*.toml")):
        if path.stem in ("cv", "blend", "recipe"):
            continue
        config = load_config(path.stem, configs_dir=CONFIGS)
        assert validate_config(config) == config


def test_feature_schema_covers_the_feature_builder():
    """Every FeatureBuilder parameter is checked: its own by the schema, a block's by the block's constraints."""
    from perturbkit.config import FeatureSettings
    from perturbkit.features import FEATURE_BLOCKS, FeatureBuilder
    from perturbkit.features.blocks import block_parameters

    assert set(FeatureSettings.model_fields) | set(block_parameters()) == set(FeatureBuilder().get_params(deep=False))
    assert not set(FeatureSettings.model_fields) & set(block_parameters())
    for name in FEATURE_BLOCKS.names():
        block = FEATURE_BLOCKS.get(name)
        assert {p.name for p in block.parameters().values()} <= set(block.estimator._parameter_constraints)


def test_n_components_beyond_the_fold_is_an_error_not_a_clamp(small_dataset):
    from perturbkit.models import build_model

    config = load_config("pca_ridge", configs_dir=CONFIGS, overrides=["params.n_components=100000", "features.stats_components=2"])
    model = build_model(config, 0)
    with pytest.raises(ConfigError, match=r"params\.n_components=100000: at most \d+ here \(a matrix of \d+ training rows x 300 columns\)"):
        model.fit(small_dataset.obs[["cell_type", "sm_name", "SMILES"]], small_dataset.targets)


def test_cli_rejects_bad_config_before_loading_data(tmp_path, capsys):
    from perturbkit.cli import main

    code = main(["cv", "--model", "pca_ridge", "--configs-dir", str(CONFIGS), "--data", str(tmp_path / "no-such-data"),
                 "--oof", str(tmp_path / "oof"), "--set", "cv.refit=maybe"])
    assert code == 2
    assert "cv.refit = 'maybe': Input should be a valid boolean" in capsys.readouterr().err
    assert not (tmp_path / "oof").exists()


def test_a_model_files_test_table_is_small_settings_never_a_run_setting():
    small, shipped = load_config("mlp", configs_dir=CONFIGS, test=True), load_config("mlp", configs_dir=CONFIGS)
    assert small["params"]["hidden"] == [16] and small["params"]["train"]["max_epochs"] == 4 and small["features"]["morgan_bits"] == 128
    assert shipped["params"]["hidden"] == [1024, 512] and "test" not in shipped and "test" not in small
    assert small["params"]["dropout"] == shipped["params"]["dropout"]  # what [test] does not name is the shipped value


def test_cli_rejects_a_negative_seed_in_cv_seeds_before_loading_data(tmp_path, capsys):
    from perturbkit.cli import main

    code = main(["cv", "--model", "pca_ridge", "--configs-dir", str(CONFIGS), "--data", str(tmp_path / "no-such-data"),
                 "--oof", str(tmp_path / "oof"), "--set", "cv.seeds=[-1,2]"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "cv.seeds.0 = -1: Input should be greater than or equal to 0" in err
    assert not (tmp_path / "oof").exists()


@pytest.mark.parametrize("model, overrides, message", [
    ("transfer_ridge", ["params.alphas=[]"], r"params\.alphas: .*must be a list of at least 1 item\(s\), each a float in the range \(0\.0, inf\)\. Got \[\]"),
    ("transfer_ridge", ["params.alphas=[-1.0]"], r"params\.alphas: .*Got \[-1\.0\] instead"),
    ("transfer_ridge", ["params.alphas=[nan]"], r"params\.alphas: .*Got \[nan\] instead"),
    ("transfer_ridge", ["params.alphas=[inf]"], r"params\.alphas: .*Got \[inf\] instead"),
    ("transfer_ridge", ['params.alphas=["x"]'], r"params\.alphas: .*Got \['x'\] instead"),
    ("transfer_ridge", ["params.alphas=[true]"], r"params\.alphas: .*Got \[True\] instead"),
    ("pseudo", ["params.base_params.alphas=[-1.0]"], r"model 'pseudo': params\.base_params\.alphas: .*Got \[-1\.0\]"),
    ("pseudo", ['params.base="pseudo"'], r"params\.base = 'pseudo': pseudo-labelling wraps another registered model, not itself"),
    ("pca_ridge", ["params.alpha=[1,2]"], r"params\.alpha: The 'alpha' parameter of pca_ridge must be a float .*Got \[1, 2\]"),
    ("lowrank", ["params.rank=100000"], r"params\.rank: rank=100000 needs 74\.5 GiB .*of memory is free"),
    ("celltype_mean", ["params.shrink=-1"], r"params\.shrink: .*in the range \[0\.0, inf\)\. Got -1"),
    ("zeros", ["cv.seed=true"], r"cv\.seed = True: Input should be a valid integer"),
    ("zeros", ["cv.seed=4294967296"], r"cv\.seed = 4294967296: Input should be less than or equal to 4294967295"),
    ("zeros", ["cv.seeds=[0, 18446744073709551616]"], r"cv\.seeds\.1 = 18446744073709551616: Input should be less than or equal to 4294967295"),
])
def test_bad_values_are_named_before_any_fit(model, overrides, message):
    """The audit's inputs (issue 27 sections 4-5): each a ConfigError naming the key while the config is loaded."""
    with pytest.raises(ConfigError, match=message):
        load_config(model, configs_dir=CONFIGS, overrides=overrides)


@pytest.mark.parametrize("model, overrides, message", [
    ("pca_knn", ["params.n_neighbors=100000"], r"params\.n_neighbors=100000: at most \d+ here \(the fold's training rows\)"),
    ("transfer_ridge", ["params.n_components=100000"], r"params\.n_components=100000: at most \d+ here"),
    ("pca_ridge", ["features.stats_components=100000"], r"features\.stats_components=100000: at most \d+ here"),
    ("pca_ridge", ['features.blocks=["transfer_profiles"]', "features.transfer_profiles_n_components=100000"],
     r"features\.transfer_profiles_n_components=100000: at most \d+ here"),
    ("pca_ridge", ["features.pca_components=100000"], r"features\.pca_components=100000: at most \d+ here"),
    ("lowrank", ["params.n_components=100000"], r"params\.n_components=100000: at most \d+ here"),
])
def test_sizes_beyond_the_data_are_errors_when_the_data_is_known_never_clamps(small_dataset, monkeypatch, model, overrides, message):
    """A size the fold's rows cannot hold fails in the fold's fit, naming the key; a model's own size before any PCA is fitted."""
    from perturbkit.features.pca import WidePCA
    from perturbkit.models import build_model

    fitted, own = [], overrides[0].startswith("params.")
    if own:
        monkeypatch.setattr(WidePCA, "fit", lambda self, X, y=None: fitted.append(self))
    model_ = build_model(load_config(model, configs_dir=CONFIGS, overrides=overrides), 0)
    with pytest.raises(ConfigError, match=message):
        model_.fit(small_dataset.obs[["cell_type", "sm_name", "SMILES"]], small_dataset.targets)
    assert not fitted


def test_a_component_count_the_fold_holds_is_used_as_given(small_dataset):
    """The value a run records is the one it used: WidePCA keeps what it is asked for, or refuses."""
    from perturbkit.features.pca import WidePCA

    assert WidePCA(7).fit(small_dataset.targets[:50]).components_.shape == (7, small_dataset.n_genes)
    with pytest.raises(ValueError, match="n_components=51 on a 50 x 300 matrix"):
        WidePCA(51).fit(small_dataset.targets[:50])


@pytest.mark.parametrize("where", ["missing", "file"])
def test_a_configs_dir_that_is_no_folder_is_an_error(tmp_path, where):
    path = tmp_path / "nonexistent"
    if where == "file":
        path.write_text("")
    with pytest.raises(ConfigError, match=rf"--configs-dir {path}: not a folder"):
        load_config("transfer_ridge", configs_dir=path)


def test_the_renamed_features_chemistry_key_names_its_new_name():
    with pytest.raises(ConfigError, match=r"features\.chemistry was renamed to features\.blocks; use features\.blocks instead"):
        load_config("pca_ridge", configs_dir=CONFIGS, overrides=['features.chemistry=["morgan"]'])
    assert load_config("pca_ridge", configs_dir=CONFIGS, overrides=['features.blocks=["morgan"]'])["features"]["blocks"] == ["morgan"]


def test_a_retired_key_is_refused_with_why(monkeypatch):
    from perturbkit import retired

    monkeypatch.setitem(retired.RETIRED, ("transfer_ridge", "params.residual_mean"), "measured worse on every variant")
    with pytest.raises(ConfigError, match=r"params\.residual_mean was retired: measured worse on every variant \(measurements: docs/experiments\.md\)"):
        load_config("transfer_ridge", configs_dir=CONFIGS)
    assert load_config("pca_ridge", configs_dir=CONFIGS)["model"] == "pca_ridge"  # another model's key of that name is no concern


def test_validation_names_the_failing_parameter_and_runs_the_estimators_own_check():
    """Each parameter is checked on its own (InvalidParameterError.param, no message parsing), then ``_check_params``."""
    from numbers import Integral

    from sklearn.base import BaseEstimator

    from perturbkit.constraints import Interval, ListOf, validate_params
    from perturbkit.errors import InvalidParameterError

    class Toy(BaseEstimator):
        _parameter_constraints = {"width": [Interval(Integral, 1, None, closed="left")],
                                  "sizes": [ListOf(Interval(Integral, 1, None, closed="left"), min_length=2)]}

        def __init__(self, width=1, sizes=(1, 2)):
            self.width, self.sizes = width, sizes

        def _check_params(self):
            if self.width > sum(self.sizes):
                raise InvalidParameterError("width", "wider than the sizes together")

    validate_params(Toy())
    for params, param in [({"width": 0}, "width"), ({"sizes": [3]}, "sizes"), ({"sizes": [1, 0]}, "sizes"), ({"width": 9}, "width")]:
        with pytest.raises(InvalidParameterError) as caught:
            validate_params(Toy(**params))
        assert caught.value.param == param
