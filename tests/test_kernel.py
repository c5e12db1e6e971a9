"""The Kaggle kernel: build, metadata rules, credential guard, push/status/output and submit through the real
client against the local fake Kaggle API (which refuses a 1 MB source as Kaggle does), and the built script run
offline on a fake /kaggle/input tree holding the code dataset."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fake_kaggle import KERNEL_TOO_LARGE, TOKEN, USERNAME, FakeKaggle, point_client_at
from perturbkit.cli import main
from perturbkit.config import load_config
from perturbkit.data.layout import COMPETITION
from perturbkit.errors import ConfigError
from perturbkit.io import MARKER, OutputError
from perturbkit.kernel import (
    MAX_SCRIPT_BYTES,
    CredentialLeakError,
    KernelBuildError,
    KernelMetadataError,
    KernelSpec,
    build_kernel,
    build_wheel,
    check_no_credentials,
    blend_predictions,
    kernel_metadata,
    spec_from_blend,
    spec_from_configs,
    validate_metadata,
)
from perturbkit.blend.record import BlendRecord, BlendRecordError
from perturbkit.kernel.build import PROJECT_FILES
from perturbkit.kernel.deps import prepare_deps
from perturbkit.submit import score_submission

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SLUG = "perturbkit-submission"
KERNEL = f"{USERNAME}/{SLUG}"
CODE_DATASET = f"{USERNAME}/{SLUG}-code"


def cheap_configs() -> list[dict]:
    ridge = load_config(
        "pca_ridge", configs_dir=CONFIGS, overrides=["params.n_components=8", "features.stats_components=4"]
    )
    return [load_config("compound_mean", configs_dir=CONFIGS), ridge]


def blend_result(configs) -> dict:
    """What the blender writes to submissions/<name>/blend.json (the fields the kernel uses, and some it ignores)."""
    return {
        "members": [
            {"model": c["model"], "run_id": f"20250101-000000-{i}", "config": c, "weight": w, "score": 1.0}
            for i, (c, w) in enumerate(zip(configs, (0.25, 0.75)))
        ],
        "scale": 0.9,
        "clip": True,
        "method": "nnls",
        "scores": {"blend": 1.0},
        "data_hash": "0" * 32,
        "folds_hash": "f" * 16,
    }


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def fake_kaggle(isolated_home, monkeypatch):
    with FakeKaggle(lifetime=120) as fake:
        point_client_at(fake, monkeypatch)
        yield fake


@pytest.fixture
def built_kernel(built_wheel, tmp_path, isolated_home):
    return build_kernel(spec_from_configs(cheap_configs()), user=USERNAME, out_root=tmp_path / "kernels", wheel=built_wheel)


# --- pipeline pieces --------------------------------------------------------------------------


def _spec(*weights, scale=1.0):
    return BlendRecord.from_json({"members": [{"config": {"model": "zeros"}, "weight": w} for w in weights], "scale": scale})


def test_combine_weights_scales_and_clips():
    a, b = np.full((2, 3), 1.0), np.array([[0.0, 2.0, 10.0], [-10.0, 0.0, 1.0]])
    assert np.allclose(blend_predictions([a, b], _spec(0.5, 0.5)), (a + b) / 2)
    assert np.allclose(blend_predictions([a, b], _spec(1.0, 2.0, scale=0.5)), (a + 2 * b) / 2)
    clipped = blend_predictions([a, b], _spec(0.0, 1.0), clip_range=(np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 5.0])))
    assert np.allclose(clipped, [[0.0, 1.0, 5.0], [-1.0, 0.0, 1.0]]) and clipped.dtype == np.float32
    with pytest.raises(ValueError):
        blend_predictions([a], _spec(0.5, 0.5))


def test_a_record_of_retired_per_cell_type_weights_is_refused_with_the_reason():
    record = blend_result(cheap_configs())
    for member, (b, m) in zip(record["members"], ((0.2, 0.6), (0.8, 0.4))):
        member.update(weights={"B cells": b, "Myeloid cells": m}, weight=None)
    with pytest.raises(ConfigError, match=r"member 0 has no 'weight': per-cell-type weights were retired"):
        spec_from_blend(record)


def test_specs_from_configs_and_from_a_blend_result(tmp_path):
    configs = cheap_configs()
    simple = spec_from_configs(configs)
    assert list(simple.record.weights.weights) == [0.5, 0.5] and simple.record.weights.scale == 1.0
    assert simple.record.clip is False
    path = tmp_path / "blend.json"
    path.write_text(json.dumps(blend_result(configs)))
    spec = spec_from_blend(path)
    assert list(spec.record.weights.weights) == [0.25, 0.75]
    assert spec.record.weights.scale == 0.9 and spec.record.clip is True and spec.members[1].config == configs[1]
    broken = blend_result(configs)
    del broken["members"][0]["config"]
    with pytest.raises(ConfigError, match="member 0 needs 'config'"):
        spec_from_blend(broken)
    broken = blend_result(configs)
    broken["members"][1]["config"]["model"] = "no_such_model"
    broken["members"][1]["model"] = "no_such_model"
    with pytest.raises(Exception, match="no_such_model"):
        spec_from_blend(broken)


# --- metadata and the credential guard --------------------------------------------------------


def test_metadata_writes_every_field_and_passes_the_clients_rules():
    metadata = kernel_metadata(USERNAME, SLUG, enable_gpu=True, dataset_sources=[f"{USERNAME}/perturbkit-deps"])
    assert metadata == {
        "id": KERNEL,
        "title": "Perturbkit Submission",
        "code_file": "kernel.py",
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,
        "keywords": [],
        "competition_sources": [COMPETITION],
        "dataset_sources": [f"{USERNAME}/perturbkit-deps"],
        "kernel_sources": [],
        "model_sources": [],
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"title": "Pkit"}, "title must be"),
        ({"title": "Another Title"}, "slugifies to"),
        ({"id": "fake-user/Perturbkit-Submission"}, "kernel slug must be"),
        ({"id": "fake-user/pk", "title": "Pk"}, "kernel slug must be"),
        ({"id": "perturbkit-submission"}, "id must be"),
        ({"enable_internet": True}, "enable_internet must be false"),
        ({"enable_gpu": "yes"}, "must be a JSON boolean"),
        ({"is_private": False}, "is_private must be true"),
        ({"language": "julia"}, "language must be"),
        ({"kernel_type": "app"}, "kernel_type must be"),
        ({"competition_sources": []}, "competition_sources must include"),
        ({"dataset_sources": ["no-slash"]}, "dataset source"),
        ({"dataset_sources": ["a b/../c"]}, r"dataset source 'a b/\.\./c' \(--deps-dataset, --dataset-source\) must be"),
        ({"dataset_sources": ["user/Wheels_Dataset"]}, "lowercase letters, digits and single hyphens"),
        ({"dataset_sources": ["user/wheels/latest"]}, "a version number"),
        ({"dataset_sources": ["user/wheels\n"]}, "dataset source"),
        ({"kernel_sources": ["someone/abc"]}, "kernel source"),
        ({"model_sources": ["a/b/c/d/latest"]}, "model source"),
        ({"code_file": "../kernel.py"}, "code_file"),
    ],
)
def test_metadata_the_client_would_reject_is_refused(change, message):
    metadata = {**kernel_metadata(USERNAME, SLUG), **change}
    with pytest.raises(KernelMetadataError, match=message):
        validate_metadata(metadata)


def test_the_credential_guard_names_files_never_secrets(tmp_path, isolated_home, monkeypatch):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "kernel.py").write_text("print('hello')\n")
    check_no_credentials(folder)

    (folder / "kaggle.json").write_text("{}")
    with pytest.raises(CredentialLeakError, match="kaggle.json"):
        check_no_credentials(folder)
    (folder / "kaggle.json").unlink()

    (folder / "notes.txt").write_text('{"username": "someone", "key": "0123456789abcdef0123456789abcdef"}')
    with pytest.raises(CredentialLeakError, match="notes.txt") as caught:
        check_no_credentials(folder)
    assert "0123456789abcdef" not in str(caught.value)
    (folder / "notes.txt").unlink()

    secret = "configured-secret-value-98765"
    monkeypatch.setenv("KAGGLE_API_TOKEN", secret)
    (folder / "kernel.py").write_text(f"TOKEN = {secret!r}\n")
    with pytest.raises(CredentialLeakError, match="kernel.py") as caught:
        check_no_credentials(folder)
    assert secret not in str(caught.value)


# --- build -----------------------------------------------------------------------------------


def test_build_writes_a_small_script_and_the_wheel_in_a_code_dataset(built_kernel, built_wheel):
    assert sorted(p.name for p in built_kernel.folder.iterdir()) == [MARKER, "kernel-metadata.json", "kernel.py"]
    metadata = json.loads((built_kernel.folder / "kernel-metadata.json").read_text())
    assert metadata == built_kernel.metadata and metadata["id"] == KERNEL and metadata["enable_internet"] is False
    assert metadata["dataset_sources"] == [CODE_DATASET]
    script = built_kernel.script.read_text()
    assert len(script.encode()) < 100_000  # the wheel is no longer inside
    digest = hashlib.sha256(built_wheel.read_bytes()).hexdigest()
    assert repr(digest) in script and built_kernel.wheel_sha256 == digest
    code = built_kernel.code_folder
    assert built_kernel.wheel == code / f"perturbkit-{digest[:12]}" / built_wheel.name
    assert built_kernel.wheel.read_bytes() == built_wheel.read_bytes()
    assert json.loads((code / "dataset-metadata.json").read_text())["id"] == CODE_DATASET
    compile(script, str(built_kernel.script), "exec")
    assert "pip" in script and "--no-index" in script and "--no-deps" in script
    assert sorted(p.name for p in built_kernel.folder.parent.iterdir()) == [SLUG, f"{SLUG}-code"]  # no staging left behind


def test_two_kernel_builds_of_the_same_tree_ship_the_same_wheel(built_wheel, tmp_path, isolated_home):
    """Rebuilding unchanged source must not force a new code-dataset upload: same bytes, whatever the
    files' times and permissions (a fresh clone, another umask)."""
    rebuilt = build_kernel(spec_from_configs(cheap_configs()), user=USERNAME, out_root=tmp_path / "kernels")
    assert rebuilt.wheel_sha256 == hashlib.sha256(built_wheel.read_bytes()).hexdigest()
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "src", clone / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in PROJECT_FILES:
        if (ROOT / name).is_file():
            shutil.copyfile(ROOT / name, clone / name)
    for path in clone.rglob("*"):
        os.utime(path, (2_000_000_000, 2_000_000_000))
        path.chmod(0o775 if path.is_dir() else 0o664)
    assert build_wheel(tmp_path / "clone-wheel", project=clone).read_bytes() == built_wheel.read_bytes()
    with zipfile.ZipFile(built_wheel) as wheel:
        names = wheel.namelist()
        assert names[-1].endswith(".dist-info/RECORD") and {i.date_time for i in wheel.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert wheel.testzip() is None


def test_build_never_replaces_a_folder_perturbkit_did_not_create(built_wheel, tmp_path, isolated_home, capsys):
    out = tmp_path / "kernels"
    (out / SLUG).mkdir(parents=True)
    (out / SLUG / "analysis.ipynb").write_text("{}")
    spec = spec_from_configs(cheap_configs())
    with pytest.raises(OutputError, match="perturbkit did not create"):
        build_kernel(spec, user=USERNAME, out_root=out, wheel=built_wheel)
    assert sorted(p.name for p in out.iterdir()) == [SLUG] and [p.name for p in (out / SLUG).iterdir()] == ["analysis.ipynb"]
    built = build_kernel(spec, user=USERNAME, out_root=out, wheel=built_wheel, force=True)
    assert not (out / SLUG / "analysis.ipynb").exists() and built.script.is_file()
    build_kernel(spec, user=USERNAME, out_root=out, wheel=built_wheel)  # its own folder: replaced without --force


def test_a_script_over_the_limit_is_refused_and_nothing_written(built_wheel, tmp_path, isolated_home):
    spec = spec_from_configs(cheap_configs())
    spec = dataclasses.replace(spec, source="x" * MAX_SCRIPT_BYTES)
    with pytest.raises(KernelBuildError, match=r"kernel script of \d+ KB: Kaggle refuses a kernel source of 1 MB or more"):
        build_kernel(spec, user=USERNAME, out_root=tmp_path / "kernels", wheel=built_wheel)
    assert list((tmp_path / "kernels").iterdir()) == []


def test_build_warns_when_a_member_needs_rdkit_and_no_wheels_dataset_is_attached(built_wheel, tmp_path, isolated_home):
    chem = load_config("pca_ridge", configs_dir=CONFIGS, overrides=['features.blocks=["morgan"]', "params.n_components=8"])
    built = build_kernel(spec_from_configs([chem]), user=USERNAME, out_root=tmp_path / "a", wheel=built_wheel)
    (warning,) = built.warnings
    assert "rdkit (for pca_ridge (morgan))" in warning and "--deps-dataset" in warning
    deps = [f"{USERNAME}/perturbkit-deps"]
    assert build_kernel(spec_from_configs([chem]), user=USERNAME, out_root=tmp_path / "b", wheel=built_wheel, dataset_sources=deps).warnings == []
    assert build_kernel(spec_from_configs(cheap_configs()), user=USERNAME, out_root=tmp_path / "c", wheel=built_wheel).warnings == []


def test_build_refuses_bad_input_and_keeps_the_previous_build(built_kernel, built_wheel):
    before = built_kernel.script.read_bytes()
    spec = spec_from_configs(cheap_configs())
    with pytest.raises(KernelMetadataError):
        build_kernel(spec, user="bad user", out_root=built_kernel.folder.parent, wheel=built_wheel)
    bad = spec.to_json()
    bad["members"][0]["weight"] = float("nan")
    with pytest.raises(ConfigError, match="member 0 weight must be a finite number, got nan"):
        build_kernel(KernelSpec.from_json(bad), user=USERNAME, out_root=built_kernel.folder.parent, wheel=built_wheel)
    assert built_kernel.script.read_bytes() == before


def test_cli_build_from_a_blend_result(built_wheel, tmp_path, isolated_home, monkeypatch, capsys):
    blend = tmp_path / "blend.json"
    blend.write_text(json.dumps(blend_result(cheap_configs())))
    monkeypatch.setattr("perturbkit.kernel.build.build_wheel", lambda out_dir, project=None: built_wheel)
    out = tmp_path / "kernels"
    args = ["kernel", "build", "--blend", str(blend), "--user", USERNAME, "--kernels", str(out), "--deps-dataset", f"{USERNAME}/perturbkit-deps"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "weight 0.25" in printed and "weight 0.75" in printed and "clip True" in printed
    assert re.search(r"kernel\.py \d+\.\d KB \(Kaggle's limit: 1 MB\)", printed)
    assert f"kaggle datasets version -p {out / SLUG}-code" in printed
    metadata = json.loads((out / SLUG / "kernel-metadata.json").read_text())
    assert metadata["dataset_sources"] == [CODE_DATASET, f"{USERNAME}/perturbkit-deps"]
    assert main(["kernel", "build", "--kernels", str(out), "--user", USERNAME]) == 2
    assert "name the kernel's models" in capsys.readouterr().err


# --- push, status, output, submit against the fake Kaggle API ---------------------------------


def test_push_follow_and_output_round_trip(fake_kaggle, built_kernel, built_wheel, tmp_path, capsys):
    fake_kaggle.state.outputs = {"submission.csv": b"id,A1BG\n0,0.5\n"}
    fake_kaggle.state.log = '[{"data": "done"}]'
    out = tmp_path / "output"

    args = ["kernel", "push", "--dir", str(built_kernel.folder), "--follow", "--output", "--interval", "0", "--out", str(out)]
    assert main(args) == 0

    (save,) = fake_kaggle.calls("kernels.KernelsApiService/SaveKernel")
    body = save.json
    assert body["slug"] == KERNEL and body["newTitle"] == "Perturbkit Submission"
    assert body["language"] == "python" and body["kernelType"] == "script"
    assert body["isPrivate"] is True and body.get("enableInternet", False) is False  # false is the wire default
    assert body["competitionDataSources"] == [COMPETITION]
    assert body["text"] == built_kernel.script.read_text()
    assert body["datasetDataSources"] == [CODE_DATASET]
    statuses = fake_kaggle.calls("kernels.KernelsApiService/GetKernelSessionStatus")
    assert len(statuses) == 3 and statuses[0].json == {"userName": USERNAME, "kernelSlug": SLUG}
    assert (out / "submission.csv").read_bytes() == b"id,A1BG\n0,0.5\n"
    assert (out / f"{SLUG}.log").read_text() == '[{"data": "done"}]'
    captured = capsys.readouterr()
    assert "version 1" in captured.out and "complete" in captured.err
    assert TOKEN not in captured.out + captured.err


def test_status_of_a_failed_run_reports_it_and_fetches_the_log(fake_kaggle, built_kernel, tmp_path, capsys):
    assert main(["kernel", "push", "--dir", str(built_kernel.folder)]) == 0
    fake_kaggle.state.status_script = ["RUNNING", "ERROR"]
    fake_kaggle.state.failure_message = "out of memory"
    fake_kaggle.state.log = "traceback"
    out = tmp_path / "output"
    assert main(["kernel", "status", KERNEL, "--follow", "--interval", "0", "--out", str(out)]) == 2
    assert "ended error: out of memory" in capsys.readouterr().err
    assert (out / f"{SLUG}.log").read_text() == "traceback"
    assert main(["kernel", "status", "--dir", str(built_kernel.folder)]) == 2  # final status, no --follow


def test_the_fake_refuses_a_1_mb_source_as_kaggle_does(fake_kaggle, built_kernel, capsys):
    built_kernel.script.write_text("# padding\n" * 100_000)  # 1,000,000 bytes
    assert main(["kernel", "push", "--dir", str(built_kernel.folder)]) == 2
    err = capsys.readouterr().err
    assert "HTTP 400" in err and KERNEL_TOO_LARGE in err
    assert fake_kaggle.state.kernels == {}


def test_push_refuses_a_folder_with_a_credential_and_sends_nothing(fake_kaggle, built_kernel, capsys):
    (built_kernel.folder / "kaggle.json").write_text('{"username": "x", "key": "0123456789abcdef0123456789abcdef"}')
    assert main(["kernel", "push", "--dir", str(built_kernel.folder)]) == 2
    assert "looks like a credential" in capsys.readouterr().err
    assert fake_kaggle.calls("kernels.KernelsApiService/SaveKernel") == []


def test_submit_sends_the_file_and_message(fake_kaggle, small_world, tmp_path, capsys):
    submission = tmp_path / "submission.csv"
    shutil.copy(small_world / "sample_submission.csv", submission)
    template = ["--template", str(small_world / "sample_submission.csv")]

    assert main(["submit", str(submission), "-m", "blend v1: nnls", *template]) == 0

    (sent,) = fake_kaggle.state.submissions
    assert sent == {"competition": COMPETITION, "message": "blend v1: nnls", "content": submission.read_bytes()}
    (start,) = fake_kaggle.calls("competitions.CompetitionApiService/StartSubmissionUpload")
    assert start.json["fileName"] == "submission.csv" and start.json["contentLength"] == submission.stat().st_size
    assert "Successfully submitted" in capsys.readouterr().out


def test_submit_checks_the_file_before_sending(fake_kaggle, small_world, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,A1BG\n0,1.0\n")
    assert main(["submit", str(bad), "-m", "x", "--template", str(small_world / "sample_submission.csv")]) == 2
    assert main(["submit", str(bad), "-m", "x"]) == 2  # against the real competition's ids and genes
    assert "gene columns differ" in capsys.readouterr().err
    assert fake_kaggle.calls("competitions.CompetitionApiService/StartSubmissionUpload") == []


# --- deps dataset ----------------------------------------------------------------------------


def test_deps_folder_holds_wheels_and_dataset_metadata(built_wheel, tmp_path):
    # Offline stand-in for PyPI: a local folder of wheels.
    deps = prepare_deps(
        tmp_path / "deps", user=USERNAME, packages=["perturbkit"], pip_args=["--no-index", "--find-links", str(built_wheel.parent)]
    )
    assert [w.name for w in deps.wheels] == [built_wheel.name]
    metadata = json.loads((deps.folder / "dataset-metadata.json").read_text())
    assert metadata["id"] == f"{USERNAME}/perturbkit-deps" and metadata["title"] == "Perturbkit Deps"
    assert metadata["licenses"] == [{"name": "other"}]


# --- the built script, run offline on a fake /kaggle/input tree -------------------------------


def kaggle_input(tmp_path: Path, world: Path, built) -> Path:
    """A /kaggle/input tree: the competition's files (no test truth: Kaggle keeps it) and the kernel's code dataset."""
    root = tmp_path / "input"
    (root / COMPETITION).mkdir(parents=True)
    for name in ("de_train.parquet", "id_map.csv", "sample_submission.csv"):
        shutil.copy(world / name, root / COMPETITION / name)
    shutil.copytree(built.code_folder, root / built.code_folder.name)
    return root


def run_script(script: Path, input_root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("KAGGLE_")}
    env.update(PERTURBKIT_KAGGLE_INPUT=str(input_root), PERTURBKIT_KAGGLE_WORKING=str(tmp_path / "working"),
               PERTURBKIT_KAGGLE_SITE=str(tmp_path / "site"), PIP_NO_INDEX="1", TQDM_DISABLE="1")  # offline, as on Kaggle
    (tmp_path / "working").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_the_kernel_reproduces_the_blenders_own_submission(built_wheel, small_world, tmp_path, monkeypatch):
    """CV two models, blend them with clipping, build the kernel from the blend record: run offline
    from the code dataset, it checks the wheel's hash, re-fits the members and writes the blender's submission again."""
    monkeypatch.chdir(tmp_path)
    for model, extra in (("compound_mean", []), ("pca_ridge", ["--set", "params.n_components=8", "--set", "features.stats_components=4"])):
        args = ["cv", "--model", model, "--configs-dir", str(CONFIGS), "--data", str(small_world), "--scheme", "kfold", "--no-progress"]
        assert main([*args, *extra]) == 0
    blend_args = ["blend", "--data", str(small_world), "--method", "slsqp", "--clip", "--no-h5ad", "--name", "b1"]
    assert main([*blend_args, "--blend-config", str(CONFIGS / "blend.toml")]) == 0
    built = build_kernel(spec_from_blend(tmp_path / "submissions" / "b1" / "blend.json"), user=USERNAME, out_root=tmp_path / "kernels", wheel=built_wheel)

    result = run_script(built.script, kaggle_input(tmp_path, small_world, built), tmp_path)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"perturbkit from {tmp_path / 'site' / 'perturbkit'}" in result.stdout  # the shipped wheel, not the dev install
    assert f"sha256 {built.wheel_sha256[:12]} checked" in result.stdout
    assert "data hash matches the blend's" in result.stdout
    assert sorted(p.name for p in (tmp_path / "working").iterdir()) == ["submission.csv"]
    import pandas as pd

    kernel = pd.read_csv(tmp_path / "working" / "submission.csv")
    blender = pd.read_csv(tmp_path / "submissions" / "b1" / "blend.csv")
    assert list(kernel.columns) == list(blender.columns) and (kernel["id"] == blender["id"]).all()
    assert np.abs(kernel.to_numpy() - blender.to_numpy()).max() < 1e-4
    card = score_submission(tmp_path / "working" / "submission.csv", small_world / "test_truth.parquet")
    assert card.table.loc[("all", "mrrmse"), "rows"] == 255 and np.isfinite(card.value("mrrmse"))


def test_the_script_refuses_a_wheel_whose_hash_differs(built_kernel, small_world, tmp_path):
    input_root = kaggle_input(tmp_path, small_world, built_kernel)
    shipped = input_root / built_kernel.code_folder.name / built_kernel.wheel.parent.name / built_kernel.wheel.name
    shipped.write_bytes(shipped.read_bytes() + b"tampered")
    result = run_script(built_kernel.script, input_root, tmp_path)
    assert result.returncode != 0
    assert f"no {built_kernel.wheel.name} with sha256 {built_kernel.wheel_sha256[:12]}" in result.stderr
    assert f"attach the dataset {CODE_DATASET}" in result.stderr and "kaggle datasets version" in result.stderr
    assert not (tmp_path / "site").exists() or not any((tmp_path / "site").iterdir())
    assert list((tmp_path / "working").iterdir()) == []


def test_the_script_installs_missing_requirements_from_an_attached_wheels_dataset(built_kernel, tmp_path):
    """What a deps dataset is for: a requirement the image lacks is installed from /kaggle/input/<dataset>/*.whl."""
    package = tmp_path / "tinydep"
    (package / "tinydep_for_tests").mkdir(parents=True)
    (package / "tinydep_for_tests" / "__init__.py").write_text("VALUE = 42\n")
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tinydep-for-tests"\nversion = "1.0"\n'
    )
    dataset = tmp_path / "input" / "perturbkit-deps"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dataset), str(package)],
        check=True, capture_output=True, timeout=120,
    )
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("built_kernel_script", built_kernel.script)
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)  # defines functions only; main() runs under __main__
    script.REQUIREMENTS_JSON = json.dumps(["tinydep-for-tests>=1.0", "numpy>=1.0", "kaggle>=99"])
    assert [name for name, _ in script.unsatisfied(json.loads(script.REQUIREMENTS_JSON))] == ["tinydep-for-tests"]
    assert script.wheel_dirs(tmp_path / "input") == [dataset]

    shutil.copytree(built_kernel.code_folder, tmp_path / "input" / built_kernel.code_folder.name)
    site = tmp_path / "site"
    script.install(site, tmp_path / "input")

    assert (site / "perturbkit" / "kernel" / "pipeline.py").is_file()
    assert (site / "tinydep_for_tests" / "__init__.py").read_text() == "VALUE = 42\n"


def test_kernel_spec_resolves_configs_and_refit_in_the_library():
    from perturbkit.kernel.pipeline import kernel_spec

    spec = kernel_spec(models=["zeros", "compound_mean"], configs_dir=CONFIGS, refit=True)
    assert [m.config["model"] for m in spec.members] == ["zeros", "compound_mean"]
    assert all(m.config["cv"]["refit"] is True for m in spec.members) and spec.source == "zeros, compound_mean"
    assert not any(m.config["cv"]["refit"] for m in kernel_spec(models=["zeros"], configs_dir=CONFIGS).members)
    with pytest.raises(ConfigError, match="either --blend or --model/--config"):
        kernel_spec(blend="submissions/blend.json", models=["zeros"])


def test_a_member_of_weight_0_is_not_fitted_and_the_submission_is_unchanged(small_world, tmp_path, monkeypatch):
    import perturbkit.cv
    from perturbkit.kernel import run_pipeline

    configs = cheap_configs()
    record = blend_result(configs)
    record["members"][1].update(weight=0.0)
    unused = spec_from_blend(record)
    fitted, run_cv = [], perturbkit.cv.run_cv
    monkeypatch.setattr(perturbkit.cv, "run_cv", lambda dataset, config, **kw: fitted.append(config["model"]) or run_cv(dataset, config, **kw))
    log = []
    run_pipeline(unused, small_world, tmp_path / "unused.csv", log=log.append)
    assert fitted == ["compound_mean"]  # pca_ridge, of weight 0, never fitted
    assert any("pca_ridge (weight 0): not fitted" in line for line in log)
    # the same bytes as when the member is fitted and weighted 0 (as before): zeros in its place change no sum
    from perturbkit.blend.record import WeightSet

    monkeypatch.setattr(WeightSet, "used", lambda self, member: True)
    run_pipeline(unused, small_world, tmp_path / "fitted.csv", log=lambda _: None)
    assert fitted == ["compound_mean", "compound_mean", "pca_ridge"]
    assert (tmp_path / "unused.csv").read_bytes() == (tmp_path / "fitted.csv").read_bytes()


def test_a_successful_build_removes_the_staging_left_by_a_killed_build(built_wheel, tmp_path, isolated_home):
    kernels = tmp_path / "kernels"
    build_kernel(spec_from_configs(cheap_configs()), user=USERNAME, out_root=kernels, wheel=built_wheel)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    orphans = [kernels / f".{SLUG}.{dead}-0123abcd.partial", kernels / f".{SLUG}-code.{dead}-89abcdef.partial"]
    live = kernels / f".{SLUG}.1-0123abcd.partial"  # pid 1 runs: a writer still at work
    for folder in (*orphans, live):
        folder.mkdir()
        (folder / "kernel.py").write_text("half of a kernel")
    other = kernels / f".other-kernel.{dead}-0123abcd.partial"  # another target's: not this build's to remove
    other.mkdir()
    build_kernel(spec_from_configs(cheap_configs()), user=USERNAME, out_root=kernels, wheel=built_wheel)
    assert sorted(p.name for p in kernels.iterdir()) == sorted([SLUG, f"{SLUG}-code", live.name, other.name])
