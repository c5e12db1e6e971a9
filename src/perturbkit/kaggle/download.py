"""``kaggle competitions download``: the competition's files, unzipped and validated before they land."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from perturbkit.data.layout import COMPETITION
from perturbkit.io import atomic_dir
from perturbkit.kaggle.auth import api_errors, kaggle_api

DEFAULT_DOWNLOAD_DIR = Path("data/kaggle")


@dataclass(frozen=True)
class Download:
    directory: Path
    files: list[tuple[str, int]]  # name, bytes
    dataset: object  # what ``validate`` returned (a perturbkit.data.Dataset from the CLI)


def download_competition(
    out_dir: Path | str = DEFAULT_DOWNLOAD_DIR,
    *,
    validate: Callable[[Path], object],
    competition: str = COMPETITION,
    quiet: bool = False,
    force: bool = False,
    api=None,
) -> Download:
    """Download and unzip into a private staging folder, ``validate(folder)`` it, then swap it in as ``out_dir``.

    Nothing is written without credentials, and a failed download or validation leaves
    ``out_dir`` as it was. An existing ``out_dir`` is replaced only when perturbkit wrote it (or ``force``).
    """
    api = api or kaggle_api()
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, replace=True, force=force) as staging:
        with api_errors(f"downloading the files of competition {competition!r}"):
            api.competition_download_files(competition, path=str(staging), force=True, quiet=quiet, unzip=True)
        dataset = validate(staging)
        files = [(path.name, _size(path)) for path in sorted(staging.iterdir()) if not path.name.startswith(".")]
    return Download(directory=out_dir, files=files, dataset=dataset)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def describe_download(download: Download) -> str:
    dataset = download.dataset
    lines = [f"downloaded {COMPETITION} into {download.directory}:"]
    lines += [f"  {name:<40} {size / 1e6:>10.1f} MB" for name, size in download.files]
    lines.append(f"{len(dataset.obs)} training rows x {dataset.n_genes} genes, {len(dataset.test)} test rows")
    lines.append(dataset.obs["cell_type"].astype(str).value_counts().sort_index().to_string())
    lines.append(f"data hash {dataset.data_hash}")
    lines.append(f"use it with DATA={download.directory} (make) or --data {download.directory}")
    return "\n".join(lines)
