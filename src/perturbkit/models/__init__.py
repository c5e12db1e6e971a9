"""Models behind one registry (:mod:`perturbkit.models.registry`); the modules are imported on first use."""

from perturbkit.models.build import build_model, config_feature_blocks, feature_requirements, seed_parameters
from perturbkit.models.registry import UnknownModelError, create_model, list_models, model_factory, register_model

__all__ = ["UnknownModelError", "build_model", "config_feature_blocks", "create_model", "feature_requirements", "list_models", "model_factory", "register_model", "seed_parameters"]
