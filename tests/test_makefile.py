"""The Makefile: GENES reaches every command that loads demo data, and `make help` lists every variable."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(target: str, *assignments: str) -> str:
    """The commands `make TARGET` would run (the install step taken as done; no directory lines, which a `make test`
    that runs this suite would otherwise pass down)."""
    result = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", target, *assignments], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("target", ["cv", "recipe", "blend", "tune", "validate", "results"])
def test_genes_gives_a_small_demo_world_and_unset_means_all_genes(target):
    assert "--demo-genes 500" in dry_run(target, "GENES=500")
    assert "--demo-genes" not in dry_run(target)


@pytest.mark.parametrize("target", ["cv", "recipe", "blend", "tune"])
def test_each_set_override_reaches_the_cli_as_written(target):
    """A TOML list's quotes survive the shell: unquoted, ["morgan","substructures"] arrives as [morgan,substructures]."""
    words = shlex.split(dry_run(target, 'SET=features.blocks=["morgan","substructures"] cv.seed=1').splitlines()[-1])
    assert [words[i + 1] for i, word in enumerate(words) if word == "--set"] == [
        'features.blocks=["morgan","substructures"]', "cv.seed=1"]


@pytest.mark.parametrize("study", ["agreement", "public-split"])
def test_the_studies_keep_their_2000_genes_unless_genes_is_given(study):
    assert "--demo-genes 2000" in dry_run(study)
    assert "--demo-genes 500" in dry_run(study, "GENES=500")
    assert "--demo-genes 300" in dry_run(study, "AGREEMENT_GENES=300")


def test_demo_and_score_use_the_world_of_genes_genes():
    assert "perturbkit demo --genes 500" in dry_run("demo", "GENES=500")
    assert "--truth demo --demo-genes 500" in dry_run("score", "FILE=x.csv", "GENES=500")  # that world's test_truth.parquet
    assert "--genes" not in dry_run("demo")


def test_help_lists_every_variable_with_its_default_and_what_it_does():
    makefile = (ROOT / "Makefile").read_text()
    defaults = dict(re.findall(r"^([A-Z_]+) \?= ?(.*)$", makefile, flags=re.MULTILINE))
    assert {"MODEL", "DATA", "GENES", "AGREEMENT_GENES", "FILE", "TRUTH", "TRIALS", "BENCH_RUNS"} <= set(defaults)
    used = set(re.findall(r"\$\(([A-Z_]+)\)", makefile)) - {"PY", "STAMP", "SET_ARGS", "GENES_ARGS", "GENES_AGREEMENT",
                                                           "KERNEL_RECIPE", "KERNEL_BLEND", "MAKEFILE_LIST", "KAGGLE_USERNAME"}
    assert used <= set(defaults), f"variables used without a ?= default: {sorted(used - set(defaults))}"
    result = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if re.match(r"^  [A-Z_]+ += ", line)}
    for name, default in defaults.items():
        assert name in lines, f"make help does not list {name}"
        shown = lines[name].split("=", 1)[1]
        assert shown.strip().startswith(default.strip()) if default else shown[:27].strip() == "", lines[name]
        assert len(shown[27:].strip()) > 10, f"make help: {name} has no description"


def test_kernel_with_a_recipe_and_no_data_is_refused_with_the_fix(tmp_path):
    # really run (not -n): the refusal is the target's first command, so nothing else may run
    result = subprocess.run(["make", "-o", ".venv/.installed", "kernel", "RECIPE=configs/recipe.toml", f"OOF={tmp_path / 'oof'}",
                             f"SUBMISSIONS={tmp_path / 'submissions'}", f"KERNELS={tmp_path / 'kernels'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "make kernel RECIPE=configs/recipe.toml DATA=data/kaggle" in result.stderr
    assert list(tmp_path.iterdir()) == []
    commands = dry_run("kernel", "RECIPE=configs/recipe.toml", "DATA=demo", "GENES=300")
    assert "recipe --recipe configs/recipe.toml --data demo --demo-genes 300" in commands and "exit 2" not in commands
    assert "exit 2" not in dry_run("kernel")  # without RECIPE: MODELS or BLEND, no data needed


def test_check_takes_data_only_when_given():
    assert dry_run("check", "FILE=x.csv").strip().endswith("perturbkit check x.csv")  # the competition's layout
    assert "perturbkit check x.csv --data demo --demo-genes 300" in dry_run("check", "FILE=x.csv", "DATA=demo", "GENES=300")
