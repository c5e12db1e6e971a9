"""Model registry: ``@register_model("name")`` on a factory, ``create_model(name, **params)``.

Factories take the config's ``[params]`` as keyword arguments and ``features`` (the config's
``[features]`` table) where the model builds features, and return an unfitted estimator.
"""

from __future__ import annotations

from collections.abc import Callable

from sklearn.base import BaseEstimator

from perturbkit.errors import UnknownModelError

_REGISTRY: dict[str, Callable[..., BaseEstimator]] = {}


def register_model(name: str):
    def decorator(factory: Callable[..., BaseEstimator]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **params) -> BaseEstimator:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}, known: {', '.join(list_models())}") from None
    return factory(**params)
