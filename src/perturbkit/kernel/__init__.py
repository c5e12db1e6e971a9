"""Kaggle kernels: build a self-contained offline script, its wheels dataset, push, follow, fetch output, submit.

- :mod:`perturbkit.kernel.pipeline`: what the kernel runs (members re-run, weighted, scaled, clipped).
- :mod:`perturbkit.kernel.build`: the script (small: spec + the wheel's hash), kernel-metadata.json, the code dataset (the wheel).
- :mod:`perturbkit.kernel.metadata`: metadata validation as the Kaggle client does it; the credential guard.
- :mod:`perturbkit.kernel.deps`: a dataset of wheels for what the Kaggle image lacks.
- :mod:`perturbkit.kernel.remote`: push a built folder (checked first) through :mod:`perturbkit.kaggle`.
"""

from perturbkit.kernel.build import DEFAULT_SLUG, MAX_SCRIPT_BYTES, KernelBuild, KernelBuildError, build_kernel, build_wheel
from perturbkit.kernel.metadata import CredentialLeakError, KernelMetadataError, check_no_credentials, kernel_metadata, validate_metadata
from perturbkit.kernel.pipeline import KernelSpec, blend_predictions, run_pipeline, spec_from_blend, spec_from_configs

__all__ = [
    "DEFAULT_SLUG",
    "CredentialLeakError",
    "KernelBuild",
    "KernelBuildError",
    "MAX_SCRIPT_BYTES",
    "KernelMetadataError",
    "KernelSpec",
    "build_kernel",
    "build_wheel",
    "check_no_credentials",
    "blend_predictions",
    "kernel_metadata",
    "run_pipeline",
    "spec_from_blend",
    "spec_from_configs",
    "validate_metadata",
]
