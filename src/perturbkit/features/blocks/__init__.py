"""Feature blocks by name: each declares its estimator, its parameters, its input and what it needs.

A block is a scikit-learn transformer class registered with :func:`register_feature_block`. Its
``__init__`` parameters are the block's parameters: they become config keys
``features.<prefix>_<parameter>`` (the prefix is the block's name unless it declares one), are
checked against the class's ``_parameter_constraints`` like a model's, and are
:class:`~perturbkit.features.FeatureBuilder` parameters (so they round-trip through ``get_params``
and :func:`sklearn.base.clone`). A config turns a block on with its name in ``features.blocks``.

Its ``input`` says what it sees, all inside the FeatureBuilder that the model fits on a fold's
training rows (so nothing it learns comes from the fold's validation rows):

- ``"smiles"``: ``fit(smiles)`` on the distinct SMILES of the fitted rows, ``transform(smiles)``
  -> one row per SMILES (fingerprints, embeddings);
- ``"keys"``: ``fit(X)`` / ``transform(X)`` on the key frame (``cell_type``, ``sm_name``, ``SMILES``);
- ``"targets"``: ``fit_transform(X, y)`` with the fold's training keys and targets, then
  ``transform(X)`` for any rows (profiles of a compound learned from its training rows).

Every module in this package is imported with it, so a new block is one file here plus a name in
a config. What a config needs (SMILES in the data, packages such as RDKit) comes from these
declarations (:func:`perturbkit.models.feature_requirements`).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sklearn.base import TransformerMixin

from perturbkit.registry import Registry

__all__ = [
    "FEATURE_BLOCKS",
    "INPUTS",
    "FeatureBlock",
    "block_parameters",
    "block_requirements",
    "estimator_feature_blocks",
    "image_packages",
    "register_feature_block",
    "transform_once_warned",
]

INPUTS = ("smiles", "keys", "targets")


@dataclass(frozen=True)
class FeatureBlock:
    name: str
    estimator: type[TransformerMixin]  # an unfitted block is ``estimator(**its parameters)``
    input: str = "smiles"  # one of INPUTS: what fit and transform receive
    prefix: str = ""  # config keys are f"{prefix}_{parameter}"
    needs_smiles: bool = True
    packages: tuple[str, ...] = ()  # optional packages it imports (the kernel ships wheels for them)

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The block's parameters by config key (``morgan_bits`` -> the ``bits`` parameter)."""
        signature = inspect.signature(self.estimator.__init__).parameters
        return {f"{self.prefix}_{name}": p for name, p in signature.items() if name != "self"}

    def build(self, values: dict):
        """The unfitted block from a FeatureBuilder's parameters (a dict holding every config key of the block)."""
        return self.estimator(**{p.name: values[key] for key, p in self.parameters().items()})


FEATURE_BLOCKS = Registry("feature block")


def register_feature_block(name: str, estimator: type, *, input: str = "smiles", prefix: str | None = None,
                           needs_smiles: bool | None = None, packages=(), help: str = "") -> FeatureBlock:
    """Register ``estimator`` (a transformer class) as block ``name``; its parameters join the FeatureBuilder's."""
    if input not in INPUTS:
        raise ValueError(f"feature block {name!r}: input {input!r} is not one of {INPUTS}")
    block = FeatureBlock(name=name, estimator=estimator, input=input, prefix=prefix or name,
                         needs_smiles=input == "smiles" if needs_smiles is None else needs_smiles, packages=tuple(packages))
    for key, parameter in block.parameters().items():
        if parameter.default is inspect.Parameter.empty:
            raise ValueError(f"feature block {name!r}: parameter {parameter.name!r} needs a default")
        if key in block_parameters():
            raise ValueError(f"feature block {name!r}: config key features.{key} is another block's")
    return FEATURE_BLOCKS.register(name, help)(block)


def block_parameters() -> dict[str, inspect.Parameter]:
    """Every registered block's parameters, by config key."""
    return {key: p for name in FEATURE_BLOCKS.names() for key, p in FEATURE_BLOCKS.get(name).parameters().items()}


def block_requirements(names: Iterable[str]) -> tuple[bool, set[str]]:
    """Whether the named blocks need SMILES, and the packages they import."""
    blocks = [FEATURE_BLOCKS.get(name) for name in names]
    return any(b.needs_smiles for b in blocks), {p for b in blocks for p in b.packages}


def estimator_feature_blocks(estimator) -> list[str]:
    """The block names an estimator and its nested estimators compute (each object that has ``feature_blocks()``)."""
    parts = [estimator, *estimator.get_params(deep=True).values()] if hasattr(estimator, "get_params") else [estimator]
    names: list[str] = []
    for part in parts:
        if callable(getattr(part, "feature_blocks", None)) and not isinstance(part, type):
            names.extend(n for n in part.feature_blocks() if n not in names)
    return names


def image_packages() -> list[str]:
    """Every optional package a registered block imports: what the kernel's wheels dataset holds by default."""
    return sorted({p for name in FEATURE_BLOCKS.names() for p in FEATURE_BLOCKS.get(name).packages})


def transform_once_warned(blocks, smiles, *, fit: bool) -> list[np.ndarray]:
    """Each block's rows for ``smiles`` (fitted first with ``fit``); a warning several blocks give is given once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matrices = [(block.fit(smiles) if fit else block).transform(smiles) for block in blocks]
    seen = set()
    for warning in caught:
        key = (warning.category, str(warning.message))
        if key not in seen:
            seen.add(key)
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return matrices


for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
