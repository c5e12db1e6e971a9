"""Config files and --set overrides: merging order, literal parsing, and named errors."""

from __future__ import annotations

import pytest

from perturbkit.config import apply_overrides, config_hash, load_config
from perturbkit.errors import ConfigError


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
