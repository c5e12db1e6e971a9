"""`perturbkit report` (plots + index pages) and `perturbkit rank` (compound prioritisation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbkit.blend import BlendOptions, blend_runs, write_blend
from perturbkit.blend.record import BlendRecordError, read_blend_record
from perturbkit.cli import main
from perturbkit.config import load_config
from perturbkit.cv import run_cv, save_run
from perturbkit.rank import RankError, rank_compounds
from perturbkit.report.build import build_blend_report, build_runs_report


@pytest.fixture(scope="module")
def runs(small_dataset, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("oof")
    paths = [save_run(run_cv(small_dataset, load_config(m), progress=False), root) for m in ("zeros", "compound_mean", "gene_mean")]
    # a fake neural run: the compound_mean run with a loss history in its meta
    neural = root / "mlp" / "fake"
    shutil.copytree(paths[1], neural)
    meta = json.loads((neural / "meta.json").read_text())
    meta["model"] = "mlp"
    for fold in meta["folds"]:
        fold["history"] = {"epoch": [0, 1, 2], "train_loss": [3.0, 2.0, 1.5], "valid_loss": [None, 2.5, 2.2]}
    (neural / "meta.json").write_text(json.dumps(meta))
    return [*paths, neural]


@pytest.fixture(scope="module")
def blend_json(runs, small_dataset, tmp_path_factory) -> Path:
    result = blend_runs(runs, small_dataset, BlendOptions(method="caruana"))
    out = tmp_path_factory.mktemp("submissions")
    return write_blend(result, small_dataset, out, "blend", dataset_id="perturbkit_demo")["json"]


def test_blend_report_writes_plots_and_pages(blend_json, runs, tmp_path):
    out = build_blend_report(blend_json, tmp_path / "report")
    for name in ("per_fold.png", "per_cell_type.png", "weights.png", "correlation.png", "index.html", "index.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text()
    for image in ("per_fold.png", "weights.png", "correlation.png"):
        assert image in page
    loss = [p.name for p in out.glob("loss*.png")]
    assert loss and all(name in page for name in loss)  # the neural run's loss curves
    markdown = (out / "index.md").read_text()
    assert "tuned blend" in markdown and "simple average" in markdown and "nested" in markdown
    # The one weight set every test row gets.
    assert "## Blend weights" in markdown and "weight B cells" not in markdown
    # each member's CV on both layers, as ratios to zeros with intervals
    compound_mean = next(line for line in markdown.splitlines() if line.startswith("| compound_mean |"))
    meta = json.loads((runs[1] / "meta.json").read_text())["scores"]
    assert f"{meta['relative_to_zeros']:.4f}" in compound_mean and f"{meta['clipped']['relative_to_zeros']:.4f}" in compound_mean
    assert compound_mean.count("[") == 2 and "clipped CV × zeros" in markdown


def _tuned_blend_cells(blend_json: Path, out: Path) -> dict[str, str]:
    markdown = (build_blend_report(blend_json, out) / "index.md").read_text().splitlines()
    header = next(line for line in markdown if line.startswith("| model |"))
    row = next(line for line in markdown if line.startswith("| tuned blend |"))
    return dict(zip((c.strip() for c in header.strip("|").split("|")), (c.strip() for c in row.strip("|").split("|"))))


def test_blend_report_gives_the_tuned_blends_ratios_to_zeros_on_both_layers(blend_json, tmp_path):
    cells = _tuned_blend_cells(blend_json, tmp_path / "report")
    clipped = json.loads(blend_json.read_text())["scores"]["clipped"]
    assert float(cells["clipped CV × zeros"]) == pytest.approx(clipped["nested_relative_to_zeros"], abs=5e-5)
    assert float(cells["clipped in-sample × zeros"]) == pytest.approx(clipped["in_sample_relative_to_zeros"], abs=5e-5)
    assert float(cells["CV × zeros"]) == pytest.approx(json.loads(blend_json.read_text())["scores"]["nested_relative_to_zeros"], abs=5e-5)
    assert min(clipped["in_sample"], clipped["nested"], clipped["zeros"]) > 0
    # a blend written before the clipped layer was scored: blanks
    copy = tmp_path / "old"
    copy.mkdir()
    for suffix in (".csv", ".h5ad"):
        shutil.copyfile(blend_json.with_suffix(suffix), copy / f"blend{suffix}")
    record = json.loads(blend_json.read_text())
    del record["scores"]["clipped"], record["scores"]["nested_relative_to_zeros"]
    (copy / "blend.json").write_text(json.dumps(record))
    old = _tuned_blend_cells(copy / "blend.json", tmp_path / "old_report")
    assert old["CV × zeros"] == old["clipped CV × zeros"] == old["clipped in-sample × zeros"] == "-"


def test_blend_report_title_names_the_method_and_file_once(blend_json, tmp_path):
    out = build_blend_report(blend_json, tmp_path / "report")
    title = (out / "index.md").read_text().splitlines()[0]
    assert title == "# caruana blend of 4 runs (blend.json)"
    assert "<title>caruana blend of 4 runs (blend.json)</title>" in (out / "index.html").read_text()


def test_a_second_report_removes_the_first_reports_stale_images_and_nothing_else(blend_json, runs, tmp_path):
    out = tmp_path / "report"
    build_blend_report(blend_json, out)
    first = {p.name for p in out.glob("*.png")}
    assert {"weights.png", "correlation.png"} <= first and any(n.startswith("loss_") for n in first)
    (out / "notes.png").write_bytes(b"the user's own")
    build_runs_report(runs[:2], out)  # no weights, no correlation, no neural run
    left = {p.name for p in out.glob("*.png")}
    assert left == {"per_fold.png", "per_cell_type.png", "notes.png"}
    assert all(name in (out / "index.html").read_text() for name in left - {"notes.png"})


def test_a_blend_record_copied_elsewhere_checks_the_files_beside_it(blend_json, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in (".json", ".csv", ".h5ad"):
        shutil.copyfile(blend_json.with_suffix(suffix), copy / f"blend{suffix}")
    record = read_blend_record(copy / "blend.json")
    assert record.files == {"csv": str(copy / "blend.csv"), "h5ad": str(copy / "blend.h5ad")}
    build_blend_report(copy / "blend.json", tmp_path / "report")
    # a changed copy is refused although the original beside the recorded path is intact
    (copy / "blend.csv").write_text((copy / "blend.csv").read_text().replace("0", "1", 1))
    with pytest.raises(BlendRecordError, match=r"copy/blend\.json: its csv file .*copy/blend\.csv changed"):
        build_blend_report(copy / "blend.json", tmp_path / "report")
    assert read_blend_record(blend_json).files["csv"] == str(blend_json.with_suffix(".csv"))


def test_runs_report(runs, tmp_path):
    out = build_runs_report(runs, tmp_path / "runs")
    assert (out / "per_fold.png").is_file() and list(out.glob("loss*.png"))
    markdown = (out / "index.md").read_text()
    zeros = next(line for line in markdown.splitlines() if line.startswith("| zeros |"))
    assert "compound_mean" in markdown and "clipped CV × zeros" in markdown
    assert zeros.count("1.0000") >= 2 and "[1.000, 1.000]" in zeros


def test_report_errors(tmp_path, capsys):
    with pytest.raises(BlendRecordError, match="nope.json: blend record not found"):
        build_blend_report(tmp_path / "nope.json", tmp_path / "r")
    assert main(["report", "--submissions", str(tmp_path)]) == 2
    assert "perturbkit blend" in capsys.readouterr().err


def test_cli_report(blend_json, tmp_path, capsys):
    assert main(["report", "--blend", str(blend_json), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").is_file()


def test_rank_orders_by_predicted_change(blend_json, small_world, small_dataset):
    gene = small_dataset.genes[5]
    table, title = rank_compounds(gene=gene, cell_type="B cells", blend=blend_json, data_dir=small_world, top=None)
    submission = pd.read_csv(blend_json.with_suffix(".csv"), usecols=["id", gene]).set_index("id")[gene]
    id_map = pd.read_csv(small_world / "id_map.csv")
    b_ids = id_map.loc[id_map["cell_type"] == "B cells", "id"]
    assert len(table) == len(b_ids)
    assert (np.diff(table["predicted"]) >= 0).all()  # most down-regulated first
    np.testing.assert_allclose(table.set_index("id")["predicted"], submission.loc[table["id"]].to_numpy(), rtol=1e-5)
    assert (table["spread"] >= 0).all() and (table["min"] <= table["max"]).all()
    assert "down-regulation" in title and gene in title
    up, title = rank_compounds(gene=gene, cell_type="B cells", blend=blend_json, data_dir=small_world, top=5, up=True)
    assert len(up) == 5 and (np.diff(up["predicted"]) <= 0).all() and "up-regulation" in title
    assert up["predicted"].iloc[0] == pytest.approx(table["predicted"].max())


def test_rank_from_runs_is_their_mean(runs, small_dataset, small_world):
    gene = small_dataset.genes[0]
    table, _ = rank_compounds(gene=gene, cell_type="Myeloid cells", runs=runs[:2], top=3)
    assert len(table) == 3 and (table["models"] == 2).all()


def test_rank_errors(blend_json, small_world, small_dataset):
    with pytest.raises(RankError, match="no predictions for gene"):
        rank_compounds(gene="NOT_A_GENE", cell_type="B cells", blend=blend_json, data_dir=small_world)
    with pytest.raises(RankError, match="cell type"):
        rank_compounds(gene=small_dataset.genes[0], cell_type="NK cells", blend=blend_json, data_dir=small_world)


def test_cli_rank(blend_json, small_world, small_dataset, capsys):
    gene = small_dataset.genes[1]
    code = main(["rank", "--gene", gene, "--cell-type", "B cells", "--blend", str(blend_json), "--data", str(small_world), "--top", "4"])
    out = capsys.readouterr().out
    assert code == 0 and "ranked by predicted down-regulation" in out
    assert len(out.strip().splitlines()) == 2 + 4
