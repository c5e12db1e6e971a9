"""``perturbkit kernel deps``: a Kaggle dataset of wheels for the packages feature blocks import (rdkit), installed offline.

``pip download`` of binary wheels for the Kaggle image's platform and Python into a folder, plus
the ``dataset-metadata.json`` that ``kaggle datasets create -p <folder>`` needs. Attach the dataset
to the kernel (``kernel build --deps-dataset <user>/<slug>``); the kernel script installs the
wheels it needs from it with ``pip install --no-index --find-links``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perturbkit.errors import PerturbkitError
from perturbkit.kernel.metadata import MAX_LENGTH, MIN_LENGTH, SLUG_PATTERN, USER_PATTERN, slugify, title_for_slug

if TYPE_CHECKING:
    from perturbkit.kernel.pipeline import KernelSpec

DEFAULT_DEPS_SLUG = "perturbkit-deps"
KAGGLE_PYTHON = "3.11"  # the Python of Kaggle's current image
KAGGLE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64")
DATASET_METADATA_FILE = "dataset-metadata.json"


class DepsError(PerturbkitError):
    pass


@dataclass(frozen=True)
class DepsFolder:
    folder: Path
    wheels: list[Path]
    metadata: dict


def block_packages(spec: KernelSpec) -> dict[str, str]:
    """Packages the members' feature blocks declare (``FeatureBlock.packages``): package -> which members, which blocks.

    These are what the wheels dataset carries; nothing here inspects the Kaggle image.
    """
    from perturbkit.features import FEATURE_BLOCKS
    from perturbkit.models import config_feature_blocks

    needs: dict[str, list[str]] = {}
    for member in spec.members:
        by_package: dict[str, list[str]] = {}
        for name in config_feature_blocks(member.config):
            for package in FEATURE_BLOCKS.get(name).packages:
                by_package.setdefault(package, []).append(name)
        for package, names in sorted(by_package.items()):
            needs.setdefault(package, []).append(f"{member.config['model']} ({', '.join(names)})")
    return {package: "for " + ", ".join(users) for package, users in needs.items()}


def dataset_metadata(user: str, slug: str, packages, *, subtitle: str | None = None) -> dict:
    if not USER_PATTERN.match(user or ""):
        raise DepsError(f"Kaggle username {user!r} is not valid")
    if not (MIN_LENGTH <= len(slug) <= MAX_LENGTH) or not SLUG_PATTERN.match(slug):
        raise DepsError(f"dataset slug {slug!r} must be {MIN_LENGTH}-{MAX_LENGTH} lowercase letters, digits and hyphens")
    title = title_for_slug(slug)
    assert slugify(title) == slug
    return {
        "title": title,
        "id": f"{user}/{slug}",
        "subtitle": (subtitle or "Offline wheels for the perturbkit kernel: " + ", ".join(packages))[:80],  # Kaggle: 20-80 characters
        "licenses": [{"name": "other"}],
    }


def prepare_deps(
    out_dir: Path | str,
    *,
    user: str,
    slug: str = DEFAULT_DEPS_SLUG,
    packages=None,
    python_version: str = KAGGLE_PYTHON,
    platforms=KAGGLE_PLATFORMS,
    with_deps: bool = False,
    pip_args=(),
) -> DepsFolder:
    """Download the packages' wheels (with ``with_deps``, their dependencies' too) into ``out_dir`` and write its dataset metadata.

    ``packages`` defaults to every package a registered feature block imports.
    """
    from perturbkit.features.blocks import image_packages

    packages = image_packages() if packages is None else list(packages)
    if not packages:
        raise DepsError("name at least one package to download")
    metadata = dataset_metadata(user, slug, packages)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", *([] if with_deps else ["--no-deps"]), "--only-binary=:all:",
        "--python-version", python_version, "--implementation", "cp", "--dest", str(out_dir),
        *[arg for platform in platforms for arg in ("--platform", platform)], *pip_args, *packages,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DepsError(f"pip download failed for {packages}:\n{result.stderr[-3000:]}")
    (out_dir / DATASET_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return DepsFolder(folder=out_dir, wheels=sorted(out_dir.glob("*.whl")), metadata=metadata)


def describe_deps(deps: DepsFolder) -> str:
    """What ``perturbkit kernel deps`` prints: the wheels and how to upload them."""
    return "\n".join([*(f"  {wheel.name}" for wheel in deps.wheels),
                      f"wrote {deps.folder}/ for dataset {deps.metadata['id']}; upload it once with",
                      f"  kaggle datasets create -p {deps.folder}     (later: kaggle datasets version -p {deps.folder} -m 'update')",
                      f"then build the kernel with --deps-dataset {deps.metadata['id']}"])
