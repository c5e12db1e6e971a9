"""A demo world's hidden truth and public rows, and the explicit source of the leaderboard factor."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import perturbkit
from perturbkit.cli import main
from perturbkit.data import PROBES, PUBLIC_ROWS, load_dataset, resolve_truth
from perturbkit.data.demo import GENERATOR_VERSION
from perturbkit.data.hidden import PUBLIC_FILE, TRUTH_FILE, WORLD_FILE, read_hidden_test, read_world
from perturbkit.errors import DataValidationError

DATA = Path(perturbkit.__file__).parent / "data"


def test_a_demo_world_declares_itself_and_its_public_rows_are_the_leaderboard_source(small_world, small_dataset):
    assert read_world(small_world) == {"variant": "default", "n_genes": small_dataset.n_genes, "seed": 0,
                                       "generator_version": GENERATOR_VERSION}
    assert small_dataset.leaderboard_source == PUBLIC_ROWS
    truth, public = read_hidden_test(small_world, small_dataset.test["id"], small_dataset.genes)
    assert truth.shape == (255, small_dataset.n_genes) and public.sum() == 100


def test_truth_files_alone_do_not_make_a_demo_world(world_copy):
    (world_copy / WORLD_FILE).unlink()  # truth and public rows stay: real data that happens to hold such files
    assert load_dataset(world_copy).leaderboard_source == PROBES


@pytest.mark.parametrize("missing", [TRUTH_FILE, PUBLIC_FILE])
def test_a_declared_world_without_its_hidden_files_is_refused_by_name(world_copy, missing):
    (world_copy / missing).unlink()
    with pytest.raises(DataValidationError, match=f"{missing}: file not found"):
        load_dataset(world_copy)


def test_truth_demo_resolves_the_demo_worlds_truth(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PERTURBKIT_DEMO_ROOT", str(tmp_path))
    truth = resolve_truth("demo:divergent", demo_genes=30)
    assert truth == tmp_path / f"divergent_genes-30_seed-0_v{GENERATOR_VERSION}" / TRUTH_FILE and truth.is_file()
    assert resolve_truth("elsewhere/truth.parquet") == Path("elsewhere/truth.parquet")
    shutil.copy(truth.parent / "sample_submission.csv", tmp_path / "zeros.csv")
    main(["score", str(tmp_path / "zeros.csv"), "--truth", "demo:divergent", "--demo-genes", "30"])
    rms = np.sqrt(np.mean(np.square(pd.read_parquet(truth).iloc[:, 3:].to_numpy(np.float64)), axis=1))
    assert f"{rms.mean():.4f}" in capsys.readouterr().out


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_data_imports_nothing_from_submit_or_blend():
    for path in DATA.rglob("*.py"):
        bad = {m for m in _imported_modules(path) if m.split(".")[:2] in (["perturbkit", "submit"], ["perturbkit", "blend"])}
        assert not bad, f"{path.name} imports {bad}"


def test_the_leaderboard_factor_does_not_import_the_simulator():
    code = "import sys, perturbkit.blend.leaderboard; print('perturbkit.data.demo' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
