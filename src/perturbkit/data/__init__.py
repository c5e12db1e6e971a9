"""Data: the competition's files (Kaggle download or brought by hand) or a shipped demo world."""

from __future__ import annotations

from pathlib import Path

from perturbkit.data.dataset import PROBES, PUBLIC_ROWS, DataValidationError, Dataset, load_dataset
from perturbkit.data.hidden import TRUTH_FILE

DEMO = "demo"

__all__ = ["DEMO", "PROBES", "PUBLIC_ROWS", "DataValidationError", "Dataset", "demo_variant", "load_dataset", "resolve_data_dir",
           "resolve_truth", "load", "describe_dataset"]


def demo_variant(data: str | Path) -> str | None:
    """The demo variant ``data`` names (``demo``: the default one, ``demo:NAME``: NAME), or None for a directory."""
    text = str(data)
    if text == DEMO:
        from perturbkit.data.demo import DEFAULT_VARIANT

        return DEFAULT_VARIANT
    if text.startswith(f"{DEMO}:"):
        return text[len(DEMO) + 1 :]
    return None


def resolve_data_dir(data: str | Path = DEMO, *, demo_genes: int | None = None, demo_seed: int = 0) -> Path:
    """``demo`` or ``demo:NAME`` gives that cached demo world (generated on first use; an unknown NAME
    raises an error listing the known variants); anything else is a Kaggle-layout directory."""
    variant = demo_variant(data)
    if variant is not None:
        from perturbkit.data.demo import demo_dir

        return demo_dir(n_genes=demo_genes, seed=demo_seed, variant=variant)
    _no_demo_genes(data, demo_genes)
    return Path(data)


def _no_demo_genes(path, demo_genes: int | None) -> None:
    """A gene count beside a folder or file would be silently ignored: refused instead."""
    if demo_genes is not None:
        from perturbkit.errors import ConfigError

        raise ConfigError(f"--demo-genes {demo_genes} applies to demo worlds (demo, demo:VARIANT) only, not to {path}: "
                          "a data folder keeps all its genes; drop --demo-genes")


def resolve_truth(truth: str | Path, *, demo_genes: int | None = None, demo_seed: int = 0) -> Path:
    """``demo`` or ``demo:NAME`` gives that demo world's hidden ``test_truth.parquet`` (the world generated on
    first use); anything else is a truth file's path."""
    if demo_variant(truth) is not None:
        return resolve_data_dir(truth, demo_genes=demo_genes, demo_seed=demo_seed) / TRUTH_FILE
    _no_demo_genes(truth, demo_genes)
    return Path(truth)


def load(data: str | Path = DEMO, *, demo_genes: int | None = None, **kwargs) -> Dataset:
    return load_dataset(resolve_data_dir(data, demo_genes=demo_genes), **kwargs)


def describe_dataset(dataset: Dataset) -> str:
    """What ``perturbkit validate`` prints: the shape, the training rows per cell type and the data hash."""
    counts = dataset.obs["cell_type"].astype(str).value_counts().sort_index()
    return (f"{dataset.source}: {len(dataset.obs)} training rows x {dataset.n_genes} genes, {len(dataset.test)} test rows\n"
            f"{counts.to_string()}\ndata hash {dataset.data_hash}")
