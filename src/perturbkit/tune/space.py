"""The search space: the ``[tune]`` table of a model's config, checked before any trial runs.

Each entry maps a ``params.*`` or ``features.*`` key of the model to one distribution::

    [tune]
    params.alpha = {log = [0.1, 1000]}          # log-uniform float
    params.n_components = {int = [16, 128]}      # uniform integer, both ends included
    features.stats_components = {choice = [8, 16, 32]}
    params.hidden = {choice = [[512], [1024, 512]]}

A trial's sample is a list of ``key=value`` overrides (``perturbkit.config.apply_overrides``), so
the best trial prints as the ``--set`` arguments (or a recipe member's ``set``) that reproduce it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perturbkit.config import apply_overrides, validate_config, without_tune
from perturbkit.errors import ConfigError
from perturbkit.tune.toml_text import toml_literal

KINDS = ("log", "float", "int", "choice")
TUNABLE_TABLES = ("params", "features")
SCALARS = (bool, int, float, str)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Dimension:
    key: str  # "params.alpha"
    kind: str  # one of KINDS
    values: tuple  # (low, high), or the choices

    @property
    def encoded(self) -> bool:
        """Choices that are lists go to Optuna (whose choices are scalars) as their TOML text."""
        return self.kind == "choice" and not all(isinstance(v, SCALARS) for v in self.values)

    def suggest(self, trial):
        if self.kind == "int":
            return trial.suggest_int(self.key, *self.values)
        if self.kind in ("log", "float"):
            return trial.suggest_float(self.key, float(self.values[0]), float(self.values[1]), log=self.kind == "log")
        return trial.suggest_categorical(self.key, self.choices())

    def choices(self) -> list:
        return [toml_literal(v) for v in self.values] if self.encoded else list(self.values)

    def override(self, value) -> str:
        """``key=value`` for a sampled value (already TOML text when the choices are encoded)."""
        return f"{self.key}={value if self.encoded else toml_literal(value)}"

    def probes(self) -> list:
        """The values that must build a model: both ends of a range, every choice."""
        return self.choices() if self.kind == "choice" else list(self.values)


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    def suggest(self, trial) -> list[str]:
        return [d.override(d.suggest(trial)) for d in self.dimensions]

    def params_of(self, config: dict) -> dict | None:
        """The config's own values as Optuna params (to run it as a trial), or None if one is unset or off the space."""
        params = {}
        for dimension in self.dimensions:
            node = config
            for part in dimension.key.split("."):
                if not isinstance(node, dict) or part not in node:
                    return None
                node = node[part]
            value = toml_literal(node) if dimension.encoded else node
            if dimension.kind == "choice":
                if toml_literal(value) not in {toml_literal(c) for c in dimension.values}:
                    return None
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not dimension.values[0] <= value <= dimension.values[1]:
                return None
            params[dimension.key] = value
        return params

    def overrides(self, params: dict) -> list[str]:
        """The overrides of a finished trial's ``params`` (the dimensions it sampled, in space order)."""
        return [d.override(params[d.key]) for d in self.dimensions if d.key in params]


def _flatten(table: dict, prefix: str = ""):
    """Dotted TOML keys nest (``params.alpha = {...}`` is ``{"params": {"alpha": {...}}}``): walk down to the specs."""
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and not set(value) & set(KINDS):
            yield from _flatten(value, path)
        else:
            yield path, value


def _dimension(key: str, spec, where: str) -> Dimension:
    label = f"{where} [tune] {key}"
    if key.split(".")[0] not in TUNABLE_TABLES or "." not in key:
        raise ConfigError(f"{label}: only params.* and features.* keys can be tuned")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{label}: expected one distribution, e.g. {{log = [0.1, 1000]}}; kinds: {', '.join(KINDS)}")
    (kind, values), = spec.items()
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{label}: {kind} needs a non-empty list, got {values!r}")
    if kind == "choice":
        bad = [v for v in values if not (isinstance(v, SCALARS) or (isinstance(v, list) and all(isinstance(x, SCALARS) for x in v)))]
        if bad:
            raise ConfigError(f"{label}: choices must be numbers, strings, booleans or lists of them, not {bad[0]!r}")
        if len({toml_literal(v) for v in values}) != len(values):
            raise ConfigError(f"{label}: repeated choices in {values!r}")
        return Dimension(key, kind, tuple(values))
    if len(values) != 2 or not all(_is_number(v) for v in values):
        raise ConfigError(f"{label}: {kind} needs [low, high] (two finite numbers), got {values!r}")
    low, high = values
    if not low < high:
        raise ConfigError(f"{label}: {kind} range [{low}, {high}] is empty (needs low < high)")
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{label}: int needs whole-number bounds, got {values!r}")
    if kind == "log" and low <= 0:
        raise ConfigError(f"{label}: log range [{low}, {high}] needs low > 0")
    return Dimension(key, kind, (low, high))


def _check_builds(config: dict, dimension: Dimension, where: str) -> None:
    """Every end of the range (every choice) must pass the config's validation: known key, model constraints."""
    for value in dimension.probes():
        override = dimension.override(value)
        try:
            validate_config(apply_overrides(config, [override]), source=override)
        except ConfigError as exc:
            raise ConfigError(f"{where} [tune] {dimension.key}: {exc}") from None


def _numbers(table: dict, prefix: str):
    """The positive numbers of a config table, nested tables included, as (dotted key, value)."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _numbers(value, f"{prefix}.{key}")
        elif _is_number(value) and value > 0:
            yield f"{prefix}.{key}", value


def example_line(config: dict) -> str | None:
    """A ``[tune]`` line the model accepts: a range around the first of its own numbers whose ends both build."""
    for table in TUNABLE_TABLES:
        for key, value in _numbers(config.get(table, {}), table):
            integer = isinstance(value, int)
            dimension = Dimension(key, "int" if integer else "log", (max(1, value // 2), value * 2) if integer else (value / 10, value * 10))
            try:
                _check_builds(config, dimension, "")
            except ConfigError:
                continue
            return f"{key} = {{{dimension.kind} = [{', '.join(toml_literal(v) for v in dimension.values)}]}}"
    return None


def parse_space(config: dict, where: str) -> SearchSpace:
    """The config's ``[tune]`` table as a :class:`SearchSpace`; ``where`` names its file in errors."""
    table = config.get("tune")
    if not table:
        example = example_line(without_tune(config))
        raise ConfigError(f"{where}: no [tune] table; add one mapping params.* or features.* keys to distributions "
                          f"({', '.join(KINDS)})" + (f", e.g. [tune] {example}" if example else ""))
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: tune must be a table, got {table!r}")
    dimensions = tuple(_dimension(key, spec, where) for key, spec in _flatten(table))
    base = without_tune(config)
    for dimension in dimensions:
        _check_builds(base, dimension, where)
    return SearchSpace(dimensions)
