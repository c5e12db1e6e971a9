"""The on-disk cache of demo worlds, one folder per ``(variant, genes, seed, generator version)``."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from perturbkit.data.demo.generator import DEMO_FILES, GENERATOR_VERSION, gene_indices, generate_demo
from perturbkit.data.demo.variants import DEFAULT_VARIANT, get_variant


def _is_complete(world: Path) -> bool:
    return all((world / name).is_file() for name in DEMO_FILES)


def demo_dir(
    root: str | os.PathLike | None = None, n_genes: int | None = None, seed: int = 0, *, variant: str = DEFAULT_VARIANT
) -> Path:
    """The demo world for ``(variant, n_genes, seed)`` under ``root``, generated on first use.

    ``root`` defaults to ``$PERTURBKIT_DEMO_ROOT`` or ``data/demo``. The world is written to a
    temporary sibling and renamed into place, so an interrupted run never leaves a partial world.
    An unknown variant raises before anything is created.
    """
    get_variant(variant)
    root = Path(root if root is not None else os.environ.get("PERTURBKIT_DEMO_ROOT", "data/demo"))
    n_resolved = len(gene_indices(n_genes))
    world = root / f"{variant}_genes-{n_resolved}_seed-{seed}_v{GENERATOR_VERSION}"
    if _is_complete(world):
        return world
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{world.name}.{uuid.uuid4().hex}.partial"
    staging.mkdir()
    try:
        generate_demo(staging, n_genes=n_genes, seed=seed, variant=variant)
        try:
            os.replace(staging, world)
        except OSError as err:
            if not _is_complete(world):
                raise FileExistsError(f"{world} exists without all of {DEMO_FILES}; delete it to regenerate") from err
            # Another process finished the same world first; it is identical, so keep theirs.
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return world
