"""Model registry: every model is registered where it is defined, with ``@register_model("name")``.

:data:`BUILT_IN` says which module defines each built-in model; the module is imported only when
its model is asked for, so a linear model never imports torch. A notebook or another package
registers a model the same way. Factories (an estimator class or a function) take the config's
``[params]`` as keyword arguments and ``features`` (its ``[features]`` table) where the model
builds features, and return an unfitted estimator.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from sklearn.base import BaseEstimator

from perturbkit.errors import UnknownModelError
from perturbkit.registry import Registry

# name -> the module whose import registers it
BUILT_IN = {
    "zeros": "perturbkit.models.baselines",
    "gene_mean": "perturbkit.models.baselines",
    "compound_mean": "perturbkit.models.baselines",
    "celltype_mean": "perturbkit.models.baselines",
    "pca_ridge": "perturbkit.models.pca_target",
    "pca_knn": "perturbkit.models.pca_target",
    "pca_lgbm": "perturbkit.models.pca_target",
    "mlp": "perturbkit.models.mlp",
    "transformer": "perturbkit.models.transformer",
    "transfer_ridge": "perturbkit.models.transfer",
    "transfer_net": "perturbkit.models.transfer_net",
    "lowrank": "perturbkit.models.lowrank",
    "pseudo": "perturbkit.models.pseudo",
}
_REGISTERED = Registry("model", error=UnknownModelError)


def _import_home(name: str) -> None:
    """Import the module of a built-in model unless it is already (being) imported, which registers the model."""
    home = BUILT_IN.get(name)
    if home is not None and home not in sys.modules:
        importlib.import_module(home)


def register_model(name: str):
    """Register a factory under ``name``; a name already taken (a built-in one included) is refused."""
    _import_home(name)  # so that another definition of a built-in name fails here, not after the built-in replaces it
    return _REGISTERED.register(name)


def list_models() -> list[str]:
    return sorted({*BUILT_IN, *_REGISTERED.names()})


def model_factory(name: str) -> Callable[..., BaseEstimator]:
    _import_home(name)
    if name not in _REGISTERED:
        raise UnknownModelError(f"unknown model {name!r}, known: {', '.join(list_models())}")
    return _REGISTERED.get(name)


def create_model(name: str, **params) -> BaseEstimator:
    return model_factory(name)(**params)
