"""`perturbkit report` (plots + index pages) and `perturbkit rank` (compound prioritisation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import markdown_table
from perturbkit.blend import BlendOptions, blend_runs, write_blend
from perturbkit.blend.record import BlendRecordError, read_blend_record
from perturbkit.cli import main
from perturbkit.config import config_hash, load_config
from perturbkit.cv import run_cv, save_run
from perturbkit.rank import RankError, rank_compounds
from perturbkit.report.build import build_blend_report, build_runs_report
from perturbkit.labels import member_labels
from perturbkit.report.scales import scale_lines


@pytest.fixture(scope="module")
def runs(small_dataset, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("oof")
    paths = [save_run(run_cv(small_dataset, load_config(m), progress=False), root) for m in ("zeros", "compound_mean", "gene_mean")]
    # the same model twice, with another setting: labelled by it, not by its run id
    paths.append(save_run(run_cv(small_dataset, load_config("compound_mean", overrides=["params.shrink=0.8"]), progress=False), root))
    # a fake neural run: the compound_mean run with a loss history in its meta
    neural = root / "mlp" / "fake"
    shutil.copytree(paths[1], neural)
    meta = json.loads((neural / "meta.json").read_text())
    meta["model"] = meta["config"]["model"] = "mlp"
    meta["config_hash"] = config_hash(meta["config"])
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
    compound_mean = next(line for line in markdown.splitlines() if line.startswith("| compound_mean | "))
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
    assert title == "# caruana blend of 5 runs (blend.json)"
    assert "<title>caruana blend of 5 runs (blend.json)</title>" in (out / "index.html").read_text()


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


def test_the_reports_per_fold_numbers_are_the_ones_cv_printed(blend_json, runs, tmp_path):
    from perturbkit.cv import summary_text

    markdown = (build_blend_report(blend_json, tmp_path / "report") / "index.md").read_text()
    per_fold = markdown_table(markdown, "MRRMSE per fold")
    meta = json.loads((runs[1] / "meta.json").read_text())
    printed = {line.split()[0]: line.split()[3] for line in summary_text(meta).splitlines()[2:6]}  # fold rows share MRRMSE
    assert list(per_fold.index) == list(printed) == ["0", "1", "2", "3"]
    for fold, row in meta["scores"]["per_fold"].items():
        assert per_fold.loc[fold, "compound_mean"] == printed[fold] == f"{row['mrrmse']:.4f}"
    assert "weighs its rows as the overall score does: rows weighted" in markdown


def test_no_member_label_is_a_run_id(blend_json, runs, tmp_path):
    markdown = (build_blend_report(blend_json, tmp_path / "report") / "index.md").read_text()
    scores = markdown_table(markdown, "Scores")
    run_ids = [path.name for path in runs]
    members = list(scores.index[:-2])
    assert sorted(members) == ["compound_mean", "compound_mean shrink=0.8", "gene_mean", "mlp shrink=1", "zeros"]
    assert sorted(scores["run"].iloc[:-2]) == sorted(run_ids)  # the run ids: in the table, once each
    assert all(markdown.count(run_id) == 1 for run_id in run_ids)
    # the plotted series and the weight and correlation labels are the same labels
    assert set(members) <= set(markdown_table(markdown, "MRRMSE per fold").columns)
    assert list(markdown_table(markdown, "Blend weights").index) == members


def test_member_labels_name_what_differs_shortly_and_distinctly():
    shipped = {"m": {"model": "m", "params": {"a": 1, "b": "x"}, "cv": {"scheme": "kfold"}},
               "f": {"model": "f", "params": {"a": 1}, "features": {"a": 1}}}
    cv = {"scheme": "test_like", "seeds": [0, 1]}
    members = [("m", {"model": "m", "params": {"a": 1, "b": "x"}, "cv": cv}),
               ("m", {"model": "m", "params": {"a": 64, "b": "x"}, "cv": cv}),
               ("m", {"model": "m", "params": {"a": 1, "b": "z", "c": 0.5}, "cv": cv}),
               ("m", {"model": "m", "params": {"a": 1, "b": "x"}, "cv": cv}),
               ("n", {"model": "n", "params": {"k": 3}, "cv": cv}),  # no shipped config: compared with the first n
               ("n", {"model": "n", "params": {"k": True}, "cv": cv}),
               ("f", {"model": "f", "params": {"a": 2}, "features": {"a": 3}, "cv": cv})]
    # params.a and features.a would both read "a": each is named in full, in every label
    labels = member_labels(members, reference=shipped.get)
    assert labels == ["m #1", "m params.a=64", "m b=z c=0.5", "m #2", "n", "n k=true", "f params.a=2 features.a=3"]
    assert member_labels(members[:6], reference=shipped.get)[1:3] == ["m a=64", "m b=z c=0.5"]
    # a value every member shares (the scheme) is left out; a lone member is its model's name
    assert member_labels(members[:1], reference=shipped.get) == ["m scheme=test_like seeds=[0,1]"]


def _record_with_scales(blend_json: Path, oof: float, factor: float | None):
    from perturbkit.blend.record import BlendRecord

    data = json.loads(blend_json.read_text())
    applied = oof * (factor or 1.0)
    data["scale"] = applied
    data["options"]["scale"] = True
    data["choice"]["chosen"] = "tuned"
    data["leaderboard"] = None if factor is None else {"factor": factor, "scores": {"0.0": 1.3, "0.5": 1.2, "1.0": 1.15},
                                                       "source": "the public rows of world W"}
    return BlendRecord.from_json(data)


def test_scale_lines_give_the_oof_scale_and_the_leaderboard_factor_apart(blend_json):
    lines = scale_lines(_record_with_scales(blend_json, 1.155, 1.264))
    assert lines[0] == "test rows: scale 1.460 = OOF scale 1.155 × leaderboard factor 1.264"
    assert lines[1].startswith("OOF scale: fitted by the blend on the OOF rows") and "[0, 2]" in lines[1]
    assert lines[2].startswith("Leaderboard factor 1.264: ") and "× 0.5: 1.2000" in lines[2]
    assert "the public rows of world W" in lines[2] and "no CV score" in lines[2]
    lines = scale_lines(_record_with_scales(blend_json, 1.155, None))
    assert lines[0] == "test rows: scale 1.155 = OOF scale (no leaderboard factor)"
    assert lines[2].startswith("Leaderboard factor: none")
    # the fixture's blend fitted no scale
    lines = scale_lines(read_blend_record(blend_json))
    assert lines[0].endswith("scale 1.000 = OOF scale (no leaderboard factor)") and "scale = false" in lines[1]


def test_the_report_shows_the_scale_lines(blend_json, tmp_path):
    markdown = (build_blend_report(blend_json, tmp_path / "report") / "index.md").read_text()
    section = markdown.split("## Scale of the test predictions\n", 1)[1].split("\n## ", 1)[0]
    assert [line for line in section.splitlines() if line] == scale_lines(read_blend_record(blend_json))


def test_rank_says_when_the_scale_puts_predictions_outside_the_members_range(runs, small_dataset, small_world, tmp_path):
    from perturbkit.blend.result import with_leaderboard_scale
    from perturbkit.blend.leaderboard import LeaderboardScale

    result = blend_runs(runs[:3], small_dataset, BlendOptions(method="caruana"))
    result = with_leaderboard_scale(result, LeaderboardScale(factor=1.5, scores={0.0: 1.0, 0.5: 0.9, 1.0: 0.95}, source="test probes"))
    path = write_blend(result, small_dataset, tmp_path, "scaled", dataset_id="perturbkit_demo")["json"]
    table, title = rank_compounds(gene=small_dataset.genes[3], cell_type="B cells", blend=path, data_dir=small_world, top=None)
    tolerance = 1e-5 * (1 + table[["min", "max"]].abs().max(axis=1))
    outside = (table["predicted"] > table["max"] + tolerance) | (table["predicted"] < table["min"] - tolerance)
    assert outside.any() and ((table["outside"] != "") == outside).all()
    note = title.splitlines()[1]
    assert note.startswith(f"note: {outside.sum()} of the {len(table)} predictions shown lie outside the members' range")
    assert "by its scale 1.500 = OOF scale 1.000 × leaderboard factor 1.500" in note


def test_a_full_disk_during_a_report_is_a_named_error_and_leaves_no_truncated_file(blend_json, tmp_path, monkeypatch):
    import errno

    import matplotlib.figure

    from perturbkit.io import OutputError

    out = build_blend_report(blend_json, tmp_path / "report")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_savefig = matplotlib.figure.Figure.savefig

    def full_after_half(self, fname, **kwargs):  # the disk fills up in the middle of writing a PNG
        real_savefig(self, fname, **kwargs)
        Path(fname).write_bytes(Path(fname).read_bytes()[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_after_half)
    with pytest.raises(OutputError, match=r"per_fold\.png: no space left on device"):
        build_blend_report(blend_json, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no truncated PNG, no staging file
    assert main(["report", "--blend", str(blend_json), "--out", str(out)]) == 2
