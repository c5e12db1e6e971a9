"""Kaggle kernels: build a self-contained offline script, its wheels dataset, push, follow, fetch output, submit.

- :mod:`perturbkit.kernel.pipeline`: what the kernel runs (members re-run, weighted, scaled, clipped).
- :mod:`perturbkit.kernel.build`: the wheel, the script (wheel base64-embedded), kernel-metadata.json.
- :mod:`perturbkit.kernel.metadata`: metadata validation as the Kaggle client does it; the credential guard.
- :mod:`perturbkit.kernel.deps`: a dataset of wheels for what the Kaggle image lacks.
- :mod:`perturbkit.kernel.remote`: push, status, output and submit through the Kaggle client.
"""

from perturbkit.kernel.build import DEFAULT_SLUG, KernelBuild, build_kernel, build_wheel, embedded_wheel
from perturbkit.kernel.metadata import CredentialLeakError, KernelMetadataError, check_no_credentials, kernel_metadata, validate_metadata
from perturbkit.kernel.pipeline import combine, row_weights, run_pipeline, spec_from_blend, spec_from_configs

__all__ = [
    "DEFAULT_SLUG",
    "CredentialLeakError",
    "KernelBuild",
    "KernelMetadataError",
    "build_kernel",
    "build_wheel",
    "check_no_credentials",
    "combine",
    "embedded_wheel",
    "kernel_metadata",
    "row_weights",
    "run_pipeline",
    "spec_from_blend",
    "spec_from_configs",
    "validate_metadata",
]
