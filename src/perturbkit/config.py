"""Run configuration: ``configs/cv.toml`` under ``configs/<model>.toml`` under ``--set key=value``.

A config is a plain dict: ``model``, ``params`` (the model factory's keyword arguments),
``features`` (the feature builder's), and ``cv`` (scheme, seed, n_splits, refit).
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path

from perturbkit.errors import ConfigError

CV_DEFAULTS = {"scheme": "lymphoid_holdout", "seed": 0, "seeds": [], "n_splits": 0, "refit": False}


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc


def parse_override(text: str) -> tuple[list[str], object]:
    """``a.b=value``: the value is read as a TOML literal (``3``, ``true``, ``[1, 2]``), else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. params.alpha=3")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(config: dict, overrides) -> dict:
    config = copy.deepcopy(config)
    for text in overrides:
        path, value = parse_override(text)
        node = config
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a table")
        node[path[-1]] = value
    return config


def merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_config(model: str, *, config_path: Path | None = None, configs_dir: Path = Path("configs"), overrides=()) -> dict:
    config = {"model": model, "params": {}, "cv": dict(CV_DEFAULTS)}
    if (configs_dir / "cv.toml").is_file():
        config = merge(config, read_toml(configs_dir / "cv.toml"))
    if config_path is None and (configs_dir / f"{model}.toml").is_file():
        config_path = configs_dir / f"{model}.toml"
    if config_path is not None:
        if not Path(config_path).is_file():
            raise ConfigError(f"{config_path}: config file not found")
        model_config = read_toml(Path(config_path))
        if model_config.get("model", model) != model:
            raise ConfigError(f"{config_path}: is the config of model {model_config['model']!r}, not {model!r}")
        config = merge(config, model_config)
    return apply_overrides(config, overrides)


def config_hash(config: dict) -> str:
    return hashlib.blake2b(json.dumps(config, sort_keys=True).encode(), digest_size=8).hexdigest()
