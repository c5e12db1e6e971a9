"""Session fixtures: one small demo world (300 genes) shared by the tests, generated once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from perturbkit.data import Dataset, load_dataset
from perturbkit.data.demo import generate_demo
from perturbkit.kernel import build_wheel

SMALL_GENES = 300


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """A read-only 300-gene demo world; copy it (``world_copy``) before changing files."""
    return generate_demo(tmp_path_factory.mktemp("world"), n_genes=SMALL_GENES, seed=0)


@pytest.fixture(scope="session")
def small_dataset(small_world) -> Dataset:
    return load_dataset(small_world)


@pytest.fixture
def world_copy(small_world, tmp_path) -> Path:
    target = tmp_path / "world"
    shutil.copytree(small_world, target)
    return target


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of the project, built once per session."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))
