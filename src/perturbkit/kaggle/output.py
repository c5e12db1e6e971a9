"""``kaggle kernels output``: a kernel's output files and its run's log."""

from __future__ import annotations

from pathlib import Path

from perturbkit.kaggle.auth import api_errors, kaggle_api


def download_output(kernel: str, out_dir: Path | str, *, api=None) -> list[Path]:
    """``kaggle kernels output <kernel> -p <out_dir> --force``: every output file plus the run's log."""
    api = api or kaggle_api()
    out_dir = Path(out_dir)
    with api_errors(f"downloading the output of kernel {kernel}"):
        files, _ = api.kernels_output(kernel, str(out_dir), force=True, quiet=True)
    return [Path(f) for f in files]
