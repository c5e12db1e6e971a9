"""The README's path on a Kaggle-layout folder the toolkit has never seen: recipe -> tune -> blend -> report -> kernel build.

One store, one submissions folder, the commands a competitor types (through the CLI): no command may change the
recipe's files, the default blend may not undo the recipe, and the report's per-fold numbers are the ones `cv` printed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import markdown_table
from perturbkit.cli import main
from perturbkit.cv import summary_text
from perturbkit.labels import member_labels

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
KAGGLE_FILES = ("de_train.parquet", "id_map.csv", "sample_submission.csv")


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_recipe_tune_blend_report_kernel_on_a_kaggle_folder(small_world, tmp_path, monkeypatch, built_wheel, capsys):
    kaggle = tmp_path / "kaggle"  # only Kaggle's files: no world.json, no hidden truth
    kaggle.mkdir()
    for name in KAGGLE_FILES:
        shutil.copy(small_world / name, kaggle / name)
    store, submissions = tmp_path / "oof", tmp_path / "submissions"
    data = ["--data", str(kaggle), "--oof", str(store)]
    configs = ["--configs-dir", str(CONFIGS)]

    assert main(["recipe", "--recipe", str(CONFIGS / "recipe.toml"), *data, *configs, "--submissions", str(submissions)]) == 0
    recipe_files = _files(submissions / "recipe")
    assert {"blend.csv", "blend.h5ad", "blend.json"} <= set(recipe_files)

    assert main(["tune", "--model", "transfer_ridge", "--trials", "2", *data, *configs, "--out", str(tmp_path / "tuned.toml"),
                 "--reports", str(tmp_path / "reports" / "tune")]) == 0
    capsys.readouterr()
    assert main(["blend", *data, "--submissions", str(submissions)]) == 0
    said = capsys.readouterr().out
    assert "tuning trial" in said  # the trials are named as left out, with the reason

    assert _files(submissions / "recipe") == recipe_files
    recipe, blend = (json.loads((submissions / name / "blend.json").read_text()) for name in ("recipe", "blend"))
    assert {m["config_hash"] for m in blend["members"]} == {m["config_hash"] for m in recipe["members"]}
    assert blend["scores"]["nested"] <= recipe["scores"]["nested"] + 0.005

    report = tmp_path / "reports" / "recipe"
    assert main(["report", "--blend", str(submissions / "recipe" / "blend.json"), "--out", str(report)]) == 0
    per_fold = markdown_table((report / "index.md").read_text(), "MRRMSE per fold")
    labels = member_labels([(m["model"], m["config"]) for m in recipe["members"]])
    for label, member in zip(labels, recipe["members"]):
        meta = json.loads((Path(member["path"]) / "meta.json").read_text())
        printed = {line.split()[0]: line.split()[3] for line in summary_text(meta).splitlines()[2:6]}  # what cv printed
        assert list(per_fold[label]) == [printed[fold] for fold in per_fold.index]

    monkeypatch.setattr("perturbkit.kernel.build.build_wheel", lambda out_dir, project=None: built_wheel)
    assert main(["kernel", "build", "--submissions", str(submissions), "--kernels", str(tmp_path / "kernels"),
                 "--user", "someone"]) == 0
    assert "recipe" in capsys.readouterr().out + "".join(map(str, (tmp_path / "kernels").rglob("*.json")))
    assert _files(submissions / "recipe") == recipe_files
