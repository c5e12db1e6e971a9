"""Run configuration: ``configs/cv.toml`` under ``configs/<model>.toml`` under ``--set key=value`` under CLI flags.

A config is a plain dict with the top-level tables ``model``, ``params`` (the model factory's
keyword arguments), ``features`` (the feature builder's), ``cv`` (scheme, seed, seeds, n_splits,
refit) and ``tune`` (a tuner's search space, passed through). :func:`validate_config` checks the
resolved dict against one typed schema before any data is loaded or anything fitted: unknown keys
are refused with the known ones listed, values are typed (``cv.refit=no`` is false), and the
model's parameters are checked against the estimator (its signature and its ``_parameter_constraints``,
:mod:`perturbkit.constraints`). A retired or renamed key (:mod:`perturbkit.retired`) is refused
with what happened to it. Every error is a :class:`ConfigError` naming key, value and what is
allowed.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, field_validator

from perturbkit.constraints import validate_params
from perturbkit.errors import ConfigError, InvalidParameterError
from perturbkit.retired import check_retired, dotted_keys
from perturbkit.types import Seed, Seeds

CV_DEFAULTS = {"scheme": "test_like", "seed": 0, "seeds": [], "n_splits": 0, "refit": False}
BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
KEY_COLUMNS = Literal["cell_type", "sm_name"]
TEST_TABLE = "test"  # a model file's small settings for the test suite (load_config(..., test=True))


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); TOML files are UTF-8") from None
    except OSError as exc:  # unreadable (mode 000), a folder, gone
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def parse_override(text: str) -> tuple[list[str], object]:
    """``a.b=value``: a TOML literal (``3``, ``true``, ``[1, 2]``); ``True``/``no``/``off``... are booleans; else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. cv.seed=1")
    if raw.strip().lower() in BOOLEAN_WORDS:  # "False" is no TOML literal: kept a string it would be truthy
        return key.strip().split("."), BOOLEAN_WORDS[raw.strip().lower()]
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CVSettings(_Strict):
    scheme: str = CV_DEFAULTS["scheme"]
    seed: Seed = 0
    seeds: Seeds = []
    n_splits: int = Field(0, description="0: the scheme's own number of folds; else at least 2")
    refit: bool = False

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        from perturbkit.folds import list_splitters

        if value not in list_splitters():
            raise ValueError(f"unknown CV scheme; known: {', '.join(list_splitters())}")
        return value

    @field_validator("n_splits")
    @classmethod
    def _fold_count(cls, value: int) -> int:
        if value == 1 or value < 0:
            raise ValueError("must be 0 (the scheme's own) or at least 2")
        return value


class FeatureSettings(BaseModel):
    """Typed values of :class:`perturbkit.features.FeatureBuilder`'s own parameters; which keys exist comes from its
    ``get_params``, and a feature block's parameters are checked against the block's ``_parameter_constraints``."""

    model_config = ConfigDict(extra="allow")
    onehot: list[KEY_COLUMNS] | None = None
    target_stats: list[str] | None = None
    stats_by: list[KEY_COLUMNS] | None = None
    stats_components: PositiveInt | None = None
    leave_one_out: bool | None = None
    blocks: list[str] | None = None
    pca_components: NonNegativeInt | None = None

    @field_validator("target_stats")
    @classmethod
    def _statistics(cls, value):
        from perturbkit.features.target_stats import STATISTICS

        return _members_of(value, STATISTICS, "statistics")

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, value):
        from perturbkit.features import FEATURE_BLOCKS

        return _members_of(value, FEATURE_BLOCKS.names(), "feature blocks")


def _members_of(values, known, what: str):
    unknown = [v for v in values or () if v not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {list(known)}")
    return values


class RunConfig(_Strict):
    model: str
    params: dict[str, Any] = {}
    features: dict[str, Any] | None = None
    cv: CVSettings = CVSettings()
    tune: dict[str, Any] | None = None  # the tuner's search space; it validates the distributions itself


def _describe(error: dict, prefix: str = "") -> str:
    key = prefix + ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key} = {error['input']!r}: {message}"


def _raise_for(exc: ValidationError, source: str, known: dict[str, list[str]], prefix: str = "") -> None:
    problems = [_describe(error, prefix) for error in exc.errors()]
    tables = sorted({prefix + str(e["loc"][0]) if len(e["loc"]) > 1 else prefix.rstrip(".") for e in exc.errors() if e["type"] == "extra_forbidden"})
    hints = [f"known keys of {table or 'the config'}: {', '.join(known[table])}" for table in tables if table in known]
    raise ConfigError(f"{source}: " + "; ".join(problems + hints)) from None


def _feature_keys() -> list[str]:
    from perturbkit.features import FeatureBuilder

    return sorted(FeatureBuilder().get_params(deep=False))


def _check_features(features: dict, source: str) -> dict:
    known = _feature_keys()
    unknown = sorted(set(features) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {['features.' + k for k in unknown]}; known keys of features: {', '.join(known)}")
    try:
        checked = FeatureSettings.model_validate(features)
    except ValidationError as exc:
        _raise_for(exc, source, {}, prefix="features.")
    _check_block_parameters(features, source)
    return checked.model_dump(exclude_unset=True)


def _check_block_parameters(features: dict, source: str) -> None:
    """Each feature block given a parameter is built with it and checked like a model (``_parameter_constraints``)."""
    from perturbkit.features import FEATURE_BLOCKS, FeatureBuilder

    values = FeatureBuilder().get_params(deep=False) | features
    for name in FEATURE_BLOCKS.names():
        block = FEATURE_BLOCKS.get(name)
        keys = {p.name: key for key, p in block.parameters().items()}
        if not set(keys.values()) & set(features):
            continue
        try:
            validate_params(block.build(values))
        except InvalidParameterError as exc:
            raise ConfigError(f"{source}: feature block {name!r}: features.{keys.get(exc.param, exc.param)}: {exc}") from None


def _check_model(config: dict, source: str) -> None:
    """The model's parameters: names against its factory's signature, values against ``_parameter_constraints``."""
    from sklearn.base import BaseEstimator

    from perturbkit.models import build_model, model_factory

    name, params = config["model"], config["params"]
    signature = inspect.signature(model_factory(name)).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
        known = sorted(k for k in signature if k != "features")
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigError(f"{source}: model {name!r} has no parameter(s) {['params.' + k for k in unknown]}; known: {', '.join(known) or 'none'}")
        if config.get("features") and "features" not in signature:
            raise ConfigError(f"{source}: model {name!r} builds no features, so the [features] table does not apply to it")
    try:
        model = build_model(config, config["cv"]["seed"])
    except InvalidParameterError as exc:  # a factory's own argument
        raise ConfigError(f"{source}: model {name!r}: {_config_key(config, '', exc.param)}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    nested = [(path, v) for path, v in model.get_params(deep=True).items() if isinstance(v, BaseEstimator)]
    for path, estimator in [("", model), *nested]:
        try:
            validate_params(estimator)
        except InvalidParameterError as exc:
            raise ConfigError(f"{source}: model {name!r}: {_config_key(config, path, exc.param)}: {exc}") from None


def _config_key(config: dict, path: str, param: str) -> str:
    """The config key of an estimator parameter found at ``path`` (``train``, ``regressor__ridge``) of the built model."""
    if param in config["params"]:
        return f"params.{param}"
    if param in (config.get("features") or {}):
        return f"features.{param}"
    parts = [p for p in path.split("__") if p]
    if parts and parts[0] in config["params"]:
        return "params." + ".".join([*parts, param])
    # a wrapped model's own table (pseudo's params.base_params): the one key of that name under [params]
    nested = [key for key in dotted_keys(config["params"], "params.") if key.endswith(f".{param}")]
    return nested[0] if len(nested) == 1 else ".".join([*parts, param])


def validate_config(config: dict, *, source: str = "config") -> dict:
    """The config checked against the schema and the model, with typed values (``cv.refit="no"`` -> False).

    Raises :class:`ConfigError` before any data is loaded; returns a new dict.
    """
    check_retired(str(config.get("model")), config, source)
    try:
        checked = RunConfig.model_validate(config)
    except ValidationError as exc:
        known = {"": sorted(RunConfig.model_fields), "cv": sorted(CVSettings.model_fields)}
        _raise_for(exc, source, known)
    resolved = copy.deepcopy(config)
    resolved["cv"] = checked.cv.model_dump()
    if config.get("features") is not None:
        resolved["features"] = _check_features(config["features"], source)
    _check_fold_count(resolved["cv"], source)
    try:
        _check_model(resolved, source)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{source}: model {config['model']!r}: {exc}") from None
    return resolved


def _check_fold_count(cv: dict, source: str) -> None:
    """A scheme with a fixed number of folds refuses another ``n_splits`` (the splitter says so)."""
    from perturbkit.folds import make_splitter

    try:
        make_splitter(cv["scheme"], test_compounds=(), seed=cv["seed"], n_splits=cv["n_splits"] or None)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(
    model: str, *, config_path: Path | None = None, configs_dir: Path = Path("configs"), overrides=(), cv: dict | None = None,
    test: bool = False,
) -> dict:
    """The validated config of ``model``: defaults, model file, ``--set`` overrides, then ``cv`` (explicit CLI flags).

    A model file's ``[test]`` table (overrides in the config's own shape) is small settings for the test
    suite's few-hundred-gene worlds: merged over the file with ``test``, else left out. It is never part of a run's config.
    """
    config = {"model": model, "params": {}, "cv": dict(CV_DEFAULTS)}
    sources = []
    if not Path(configs_dir).is_dir():  # else every model would silently run with its class defaults
        raise ConfigError(f"--configs-dir {configs_dir}: not a folder (it holds cv.toml and <model>.toml)")
    configs_dir = Path(configs_dir)
    if (configs_dir / "cv.toml").is_file():
        config = merge(config, read_toml(configs_dir / "cv.toml"))
        sources.append(str(configs_dir / "cv.toml"))
    if config_path is None and (configs_dir / f"{model}.toml").is_file():
        config_path = configs_dir / f"{model}.toml"
    if config_path is not None:
        if not Path(config_path).is_file():
            raise ConfigError(f"{config_path}: config file not found")
        model_config = read_toml(Path(config_path))
        if model_config.get("model", model) != model:
            raise ConfigError(f"{config_path}: is the config of model {model_config['model']!r}, not {model!r}")
        small = model_config.pop(TEST_TABLE, {})
        config = merge(config, model_config)
        sources.append(str(config_path))
        if test and small:
            if not isinstance(small, dict):
                raise ConfigError(f"{config_path}: [{TEST_TABLE}] must be a table of overrides")
            config = merge(config, small)
            sources.append(f"[{TEST_TABLE}]")
    config = apply_overrides(config, overrides)
    if cv:
        config["cv"] = {**config.get("cv", {}), **cv}
    if overrides or cv:
        sources.append("--set/flags")
    return validate_config(config, source=" + ".join(sources) or "config")


def config_hash(config: dict) -> str:
    return hashlib.blake2b(json.dumps(config, sort_keys=True).encode(), digest_size=8).hexdigest()


def without_tune(config: dict) -> dict:
    """The config a run uses: the ``[tune]`` search space is no part of a run's config (nor of its hash)."""
    return {key: copy.deepcopy(value) for key, value in config.items() if key != "tune"}
