"""A run config's estimator: the registered factory called with ``[params]`` (and ``[features]``), seeded.

This sits next to the registry, below ``config``, ``features`` and ``cv``, so each of them builds
models without importing the harness. Building is cheap (a factory call, no data), so every caller
builds its own; the harness clones (:func:`sklearn.base.clone`) per fold, so every fold starts from
the same unfitted parameters.
"""

from __future__ import annotations

from perturbkit.errors import ConfigError
from perturbkit.models.registry import create_model


def config_feature_blocks(config: dict) -> list[str]:
    """The block names a run config's model computes, its default features and its own blocks included."""
    from perturbkit.features.blocks import estimator_feature_blocks

    # The model is built (not fitted): a config's [features] table is not all a model may compute.
    return estimator_feature_blocks(build_model(config, int((config.get("cv") or {}).get("seed", 0))))


def feature_requirements(config: dict) -> tuple[bool, set[str]]:
    """``(needs_smiles, packages)`` of a run config, from the declarations of the blocks its model computes."""
    from perturbkit.features.blocks import block_requirements

    return block_requirements(config_feature_blocks(config))


def build_model(config: dict, seed: int):
    """A fresh estimator from the config, every ``random_state`` (nested ones too) set to the seed."""
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
