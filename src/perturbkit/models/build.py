"""A run config's estimator: the registered factory called with ``[params]`` (and ``[features]``), seeded.

This sits next to the registry, below ``config``, ``features`` and ``cv``, so each of them builds
models without importing the harness. A config is built once: validating it, reading its feature
blocks, the kernel's check and the harness get clones (:func:`sklearn.base.clone`) of that one
unfitted estimator, and the harness clones it again per fold, so every fold starts from the same
unfitted parameters.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from sklearn.base import clone

from perturbkit.errors import ConfigError
from perturbkit.models.registry import create_model, model_factory

PROTOTYPES_KEPT = 64  # built estimators kept for later clones (a tuning study builds one per trial)
_PROTOTYPES: OrderedDict = OrderedDict()


def config_feature_blocks(config: dict) -> list[str]:
    """The block names a run config's model computes, its default features and its own blocks included."""
    from perturbkit.features.blocks import estimator_feature_blocks

    # The model is built (not fitted): a config's [features] table is not all a model may compute. The config's
    # seed (which feature blocks do not depend on) makes this the build that validating the config made.
    return estimator_feature_blocks(build_model(config, int((config.get("cv") or {}).get("seed", 0))))


def feature_requirements(config: dict) -> tuple[bool, set[str]]:
    """``(needs_smiles, packages)`` of a run config, from the declarations of the blocks its model computes."""
    from perturbkit.features.blocks import block_requirements

    return block_requirements(config_feature_blocks(config))


def build_model(config: dict, seed: int):
    """A fresh estimator from the config, every ``random_state`` (nested ones too) set to the seed.

    The factory runs once per (model, ``[params]``, ``[features]``, seed); later calls return clones.
    """
    key = _prototype_key(config, seed)
    if key in _PROTOTYPES:
        _PROTOTYPES.move_to_end(key)
        return clone(_PROTOTYPES[key])
    model = _build(config, seed)
    if key is not None:
        _PROTOTYPES[key] = model
        if len(_PROTOTYPES) > PROTOTYPES_KEPT:
            _PROTOTYPES.popitem(last=False)
        return clone(model)  # the kept one is never fitted
    return model


def _prototype_key(config: dict, seed: int):
    """What the estimator depends on: the registered factory (a name may be registered again), the parameters, the
    seed, and the registered feature blocks' parameters (they are the feature builder's own, so registering a block
    changes what an estimator holds).

    None (no reuse) when the parameters are not plain TOML values.
    """
    from perturbkit.features.blocks import block_parameters

    factory = model_factory(config["model"])
    try:
        params = json.dumps([config.get("params", {}), config.get("features")], sort_keys=True)
    except (TypeError, ValueError):
        return None
    return factory, params, int(seed), tuple(block_parameters())


def _build(config: dict, seed: int):
    params = dict(config.get("params", {}))
    if config.get("features"):
        params["features"] = dict(config["features"])
    try:
        model = create_model(config["model"], **params)
    except TypeError as exc:  # an unexpected or missing parameter in [params] / [features]
        raise ConfigError(f"model {config['model']!r}: {exc}") from exc
    return model.set_params(**{name: seed for name in seed_parameters(model)})


def seed_parameters(model) -> list[str]:
    """The estimator's ``random_state`` parameters, nested ones included: where a seed reaches it. None: its fit is
    deterministic, the same whatever the seed (how a model declares it)."""
    return [k for k in model.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")]
