"""Value types shared by every file format (model configs, recipes, blend configs) and the CLI's flags.

Each is a pydantic annotated type, so a value is validated once, where it enters, with one message
wherever it enters: a TOML file through a pydantic model, a flag through :func:`parse_value`.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from perturbkit.errors import ConfigError

MAX_SEED = 2**32 - 1  # numpy's legacy RandomState (scikit-learn's splitters) takes seeds in [0, 2**32 - 1]
ALL_GENES = 18_211


def _distinct(values: list[int]) -> list[int]:
    if len(set(values)) != len(values):
        raise ValueError("seeds must be distinct")
    return values


Seed = Annotated[int, Field(strict=True, ge=0, le=MAX_SEED, description="a random seed in [0, 2**32 - 1]")]
Seeds = Annotated[list[Seed], AfterValidator(_distinct)]
GeneCount = Annotated[int, Field(strict=True, ge=1, le=ALL_GENES, description="genes of a demo world, 1 to 18,211")]
PositiveCount = Annotated[int, Field(strict=True, ge=1)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def parse_value(kind: Any, value: Any, what: str) -> Any:
    """``value`` checked as ``kind`` (one of the types above; integers are strict: a flag converts its text first), or a
    :class:`ConfigError` naming ``what``."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        message = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise ConfigError(f"{what} = {value!r}: {message}") from None


CONVERTED = {int: "a whole number", float: "a number"}


def flag(kind: Any, convert=None):
    """The argparse ``type`` of every CLI flag with a value: its text converted (``convert``, whose docstring says what
    it expects; default ``float`` for a float kind, else ``int``), then checked as ``kind`` by :func:`parse_value` (a type
    above, or plain ``int``/``float``/``list`` where the library checks the value itself)."""
    base = get_args(kind)[0] if get_origin(kind) is Annotated else kind
    convert = convert or (float if base is float else int)

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {CONVERTED.get(convert) or convert.__doc__}") from None
        try:
            return parse_value(kind, value, "value")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(kind, "__name__", None) or str(kind)  # argparse names the type in some messages
    return parse
