"""A blend's options: one pydantic dataclass, validated once where they enter (configs/blend.toml, a recipe's
``[blend]`` table, ``--set`` and flags), with the shared value types of :mod:`perturbkit.types`.

The common options are the dataclass's fields; every other key is a method's setting, typed by the
search method's signature (:func:`perturbkit.blend.search.method_settings`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from perturbkit.blend.search import list_blend_methods, method_settings
from perturbkit.config import apply_overrides, read_toml
from perturbkit.errors import ConfigError
from perturbkit.retired import check_retired
from perturbkit.types import FiniteFloat, Seed

DEFAULT_CONFIG = Path("configs/blend.toml")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class BlendOptions:
    """What every blend has; ``settings`` holds the methods' own (``trials``, ``caruana_size``, ``max_iter``, ``storage``, ...)."""

    method: str = "optuna"
    seed: Seed = 0
    scale: bool = False
    clip: bool = False
    nested: bool = True
    scale_min: FiniteFloat = 0.0
    scale_max: FiniteFloat = 2.0
    settings: dict = Field(default_factory=dict)  # by name; a method gets those its signature names, else its defaults

    def __post_init__(self):
        if self.method not in list_blend_methods():
            raise ConfigError(f"unknown blend method {self.method!r}; known: {list_blend_methods()}")
        if not self.scale_min <= 1.0 <= self.scale_max:
            raise ConfigError(f"blend scale_min = {self.scale_min} and scale_max = {self.scale_max}: scale_min <= 1 <= scale_max is required")

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "blend options") -> BlendOptions:
        """Options from a flat table (configs/blend.toml, --set): a key that is no common field is a method's setting."""
        check_retired("blend", values, source)
        common = {f.name for f in dataclasses.fields(cls)} - {"settings"}
        known_settings = method_settings()
        unknown = sorted(set(values) - common - set(known_settings))
        if unknown:
            raise ConfigError(f"{source}: unknown blend option(s) {unknown}; known: {sorted(common | set(known_settings))}")
        settings = {key: _checked_setting(known_settings[key], value) for key, value in values.items() if key not in common}
        try:
            return cls(**{k: v for k, v in values.items() if k in common}, settings=settings)
        except ValidationError as exc:
            error = exc.errors()[0]
            if not error["loc"]:  # a check of __post_init__: its message names the options
                raise ConfigError(f"{source}: {error['msg'].removeprefix('Value error, ')}") from None
            raise ConfigError(f"{source}: blend option {error['loc'][0]} = {error['input']!r}: {error['msg'].lower()}") from None

    def setting(self, name: str):
        """A method setting's value: as given, else the default in the signature of a method naming it."""
        return self.settings[name] if name in self.settings else method_settings()[name].default

    def to_json(self) -> dict:
        """Flat, as configs/blend.toml writes them: the common fields, then the chosen method's settings."""
        own = {name: self.setting(name) for name, s in method_settings().items() if self.method in s.methods}
        common = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "settings"}
        return {**common, **own, **self.settings}


def _checked_setting(setting, value):
    """A method setting's value against the type its signature gives (``trials: Annotated[int, Field(ge=1)]``)."""
    try:
        return TypeAdapter(setting.hint).validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].lower()
        raise ConfigError(f"blend setting {setting.name} = {value!r} (of {', '.join(setting.methods)}): {message}") from None


def resolve_options(config_path: Path | None, overrides=(), flags: dict | None = None) -> BlendOptions:
    """configs/blend.toml (if present), then ``--set key=value``, then explicit flags; validated once, together."""
    values, source = {}, "blend options"
    if config_path is not None:
        if Path(config_path).is_file():
            values, source = read_toml(Path(config_path)), str(config_path)
        elif Path(config_path) != DEFAULT_CONFIG:
            raise ConfigError(f"{config_path}: blend config not found")
    values = apply_overrides(values, overrides)
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    return BlendOptions.from_dict(values, source=source)
