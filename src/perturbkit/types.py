"""Value types shared by every file format (model configs, recipes, blend configs) and the CLI's flags.

Each is a pydantic annotated type, so a value is validated once, where it enters, with one message
wherever it enters: a TOML file through a pydantic model, a flag through :func:`parse_value`.
"""

from __future__ import annotations

from typing import Annotated, Any

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
