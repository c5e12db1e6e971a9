"""Data: the competition's files (Kaggle download or brought by hand) or the shipped demo world."""

from __future__ import annotations

from pathlib import Path

from perturbkit.data.dataset import DataValidationError, Dataset, load_dataset

DEMO = "demo"

__all__ = ["DEMO", "DataValidationError", "Dataset", "load_dataset", "resolve_data_dir", "load"]


def resolve_data_dir(data: str | Path = DEMO, *, demo_genes: int | None = None, demo_seed: int = 0) -> Path:
    """``demo`` gives the cached demo world (generated on first use); anything else is a Kaggle-layout directory."""
    if str(data) == DEMO:
        from perturbkit.data.demo import demo_dir

        return demo_dir(n_genes=demo_genes, seed=demo_seed)
    return Path(data)


def load(data: str | Path = DEMO, *, demo_genes: int | None = None, **kwargs) -> Dataset:
    return load_dataset(resolve_data_dir(data, demo_genes=demo_genes), **kwargs)
