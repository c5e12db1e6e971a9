"""``kaggle kernels push -p <folder>``: the API call and Kaggle's answer; the kernel package checks the folder first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from perturbkit.kaggle.auth import KaggleApiError, api_errors, kaggle_api


@dataclass(frozen=True)
class Pushed:
    kernel: str  # owner/slug
    version: int | None
    url: str


def push_folder(folder: Path | str, kernel: str, *, api=None) -> Pushed:
    """Push ``folder`` (kernel-metadata.json + code file) as ``kernel``; a refused source is named."""
    api = api or kaggle_api()
    with api_errors(f"pushing kernel {kernel}"):
        response = api.kernels_push(str(folder))
    if response is None or response.error:
        raise KaggleApiError(f"pushing kernel {kernel}: {getattr(response, 'error', None) or 'no response'}")
    for label, invalid in (
        ("dataset", response.invalid_dataset_sources),
        ("competition", response.invalid_competition_sources),
        ("kernel", response.invalid_kernel_sources),
    ):
        if invalid:
            raise KaggleApiError(f"pushing kernel {kernel}: Kaggle rejected the {label} source(s) {list(invalid)}")
    return Pushed(kernel=kernel, version=response.version_number or None, url=response.url)


def kernel_ref(kernel: str) -> str:
    if kernel.count("/") != 1 or not all(kernel.split("/")):
        raise KaggleApiError(f"kernel {kernel!r}: expected <username>/<kernel-slug>")
    return kernel
