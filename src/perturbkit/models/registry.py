"""Model registry: every built-in model is an entry of the ``perturbkit.models`` entry-point group.

``pyproject.toml`` lists each model once (``name = "module:factory"``); a model's module is
imported only when the model is created, so a linear model never imports torch. Other packages
add models through the same group, and a notebook registers one at run time with
``@register_model("name")``. Factories (an estimator class or a function) take the config's
``[params]`` as keyword arguments and ``features`` (its ``[features]`` table) where the model
builds features, and return an unfitted estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from sklearn.base import BaseEstimator

from perturbkit.errors import UnknownModelError
from perturbkit.registry import Registry

ENTRY_POINT_GROUP = "perturbkit.models"
_REGISTERED = Registry("model", error=UnknownModelError)


def _entries() -> dict:
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def register_model(name: str):
    """Register a factory at run time (a notebook, a test); names already taken are refused."""

    if name in _entries():
        raise ValueError(f"model {name!r} is registered twice")
    return _REGISTERED.register(name)


def list_models() -> list[str]:
    return sorted({*_entries(), *_REGISTERED.names()})


def model_factory(name: str) -> Callable[..., BaseEstimator]:
    if name in _REGISTERED:
        return _REGISTERED.get(name)
    entry = _entries().get(name)
    if entry is None:
        raise UnknownModelError(f"unknown model {name!r}, known: {', '.join(list_models())}")
    return entry.load()


def create_model(name: str, **params) -> BaseEstimator:
    return model_factory(name)(**params)
