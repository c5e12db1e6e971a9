"""Models behind one registry; importing this package registers every model family."""

from perturbkit.models import baselines, pca_target  # noqa: F401  (registration side effects)
from perturbkit.models import mlp, transformer  # noqa: F401  (torch models: mlp, transformer)
from perturbkit.models import lowrank, pseudo, transfer  # noqa: F401  (cross-cell-type models, pseudo-labelling)
from perturbkit.models.registry import UnknownModelError, create_model, list_models, register_model

__all__ = ["UnknownModelError", "create_model", "list_models", "register_model"]
