"""Models behind one registry (:mod:`perturbkit.models.registry`); the modules are imported on first use."""

from perturbkit.models.build import build_model
from perturbkit.models.registry import UnknownModelError, create_model, list_models, model_factory, register_model

__all__ = ["UnknownModelError", "build_model", "create_model", "list_models", "model_factory", "register_model"]
