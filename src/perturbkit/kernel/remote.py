"""Push a built kernel folder: its metadata validated and the credential guard run before the Kaggle client sends it."""

from __future__ import annotations

from pathlib import Path

from perturbkit.kaggle import KaggleApiError, Pushed, check_finished, download_output, follow_status, kernel_ref, push_folder
from perturbkit.kernel.metadata import check_no_credentials, read_metadata


def push_kernel(folder: Path | str, *, api=None) -> Pushed:
    """Validate the folder's metadata, refuse credentials in it, then ``kaggle kernels push -p <folder>``."""
    folder = Path(folder)
    metadata = read_metadata(folder)
    check_no_credentials(folder)
    return push_folder(folder, metadata["id"], api=api)


def kernel_id(kernel: str | None = None, folder: Path | str | None = None) -> str:
    """``owner/slug`` as given, else from the kernel folder's metadata."""
    if kernel:
        return kernel_ref(kernel)
    if folder is None:
        raise KaggleApiError("name the kernel (<username>/<kernel-slug>) or its folder (--dir kernels/<slug>)")
    return read_metadata(folder)["id"]


def output_folder(kernel: str, out: Path | str | None = None, kernels: Path | str = "kernels") -> Path:
    """Where a kernel's output goes: ``out``, else ``<kernels>/<slug>-output``."""
    return Path(out) if out else Path(kernels) / f"{kernel.split('/')[1]}-output"


def follow_and_fetch(kernel: str, out: Path, *, interval: float, timeout: float, output: bool, say=print, api=None) -> None:
    """Follow the run until it ends; download its output (``output``, or always when it did not complete: the log says why),
    naming each file through ``say``; then a :class:`KernelRunError` unless it completed."""
    status = follow_status(kernel, interval=interval, timeout=timeout, api=api)
    if output or status.status != "COMPLETE":
        for path in download_output(kernel, out, api=api):
            say(f"  {path}")
    check_finished(status)
