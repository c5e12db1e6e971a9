"""`perturbkit score`: a submission is checked against the truth's ids and genes, then scored per cell type
on both layers, with the DE metrics and bootstrap intervals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from perturbkit.errors import DataValidationError
from perturbkit.metrics import clip_layer, mrrmse
from perturbkit.submit import read_truth, score_submission
from perturbkit.submit.write import write_prediction_h5ad


@pytest.fixture
def truth_as_submission(small_world, tmp_path):
    truth = pd.read_parquet(small_world / "test_truth.parquet")
    path = tmp_path / "submission.csv"
    truth.drop(columns=["cell_type", "sm_name"]).sample(frac=1.0, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture
def noisy_submission(small_world, tmp_path):
    keys, genes, values = read_truth(small_world / "test_truth.parquet")
    prediction = 0.5 * values + np.random.default_rng(0).normal(size=values.shape).astype(np.float32)
    path = tmp_path / "noisy.csv"
    pd.concat([keys[["id"]], pd.DataFrame(prediction, columns=genes)], axis=1).to_csv(path, index=False)
    return path, values, prediction


def test_perfect_submission_scores_zero_in_any_row_order(small_world, truth_as_submission):
    card = score_submission(truth_as_submission, small_world / "test_truth.parquet")
    assert card.value("mrrmse") == pytest.approx(0.0, abs=1e-6)
    assert card.value("clipped_mrrmse") == pytest.approx(0.0, abs=1e-6)
    for metric in ("pearson", "spearman", "cosine", "sign_agreement", "discrimination"):
        assert card.value(metric) == pytest.approx(1.0), metric
    # a row without DE genes scores 0 on the top-k metrics (cell-eval's convention)
    _, _, truth = read_truth(small_world / "test_truth.parquet")
    assert card.value("overlap@50") == pytest.approx((np.abs(truth) > 2).any(axis=1).mean())
    assert {"B cells", "Myeloid cells", "all"} == set(card.table.index.get_level_values("group"))


def test_scores_follow_their_formulas_on_the_truth_file(small_world, noisy_submission):
    path, truth, prediction = noisy_submission
    card = score_submission(path, small_world / "test_truth.parquet")
    assert card.value("mrrmse") == pytest.approx(mrrmse(truth, prediction), rel=1e-6)
    assert card.value("clipped_mrrmse") == pytest.approx(mrrmse(clip_layer(truth), clip_layer(prediction)), rel=1e-6)
    assert card.value("clipped_mrrmse_rel") == pytest.approx(
        mrrmse(clip_layer(truth), clip_layer(prediction)) / mrrmse(clip_layer(truth), 0 * truth), rel=1e-6)
    assert "clipped to ±4" in card.clipped_source and card.compounds == 129


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.drop(columns=[s.columns[3]]), r"gene columns differ .*missing \['"),
        (lambda s: s.assign(EXTRA_GENE=0.0), r"extra \['EXTRA_GENE'\]"),
        (lambda s: s.iloc[1:], r"ids differ .*missing \["),
        (lambda s: pd.concat([s, s.iloc[[0]].assign(id=999)]), r"extra \[999\]"),
        (lambda s: pd.concat([s, s.iloc[[0]]]), r"duplicate id"),
        (lambda s: s.assign(**{s.columns[2]: s[s.columns[2]].where(s.index != s.index[4])}), r"non-finite value in column"),
    ],
)
def test_bad_submission_is_rejected_by_name(small_world, truth_as_submission, change, message):
    change(pd.read_csv(truth_as_submission)).to_csv(truth_as_submission, index=False)
    with pytest.raises(DataValidationError, match=message):
        score_submission(truth_as_submission, small_world / "test_truth.parquet")


def test_h5ad_truth_uses_its_clipped_layer_and_its_rows(small_world, noisy_submission, tmp_path):
    anndata = pytest.importorskip("anndata")
    path, truth, prediction = noisy_submission
    keys, genes, _ = read_truth(small_world / "test_truth.parquet")
    rows = np.arange(0, len(keys), 2)  # like openproblems' de_test: only some of the test rows, no id column
    clipped = np.clip(truth[rows], -3.0, 3.0)  # a layer unlike clipping at ±4, to see that it is the one used
    adata = anndata.AnnData(obs=keys.iloc[rows][["cell_type", "sm_name"]].reset_index(drop=True).set_axis(list(map(str, rows))),
                            var=pd.DataFrame(index=genes), layers={"sign_log10_pval": truth[rows], "clipped_sign_log10_pval": clipped})
    adata.write_h5ad(tmp_path / "de_test.h5ad")
    card = score_submission(path, tmp_path / "de_test.h5ad")
    assert card.table.loc[("all", "mrrmse"), "rows"] == len(rows)
    assert card.value("mrrmse") == pytest.approx(mrrmse(truth[rows], prediction[rows]), rel=1e-6)
    assert card.value("clipped_mrrmse") == pytest.approx(mrrmse(clipped, clip_layer(prediction[rows])), rel=1e-6)
    assert "layer 'clipped_sign_log10_pval'" in card.clipped_source


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "perturbkit", *map(str, args)], capture_output=True, text=True)


def test_cli_score_prints_every_score_with_intervals_and_json_parses(small_world, noisy_submission):
    path, truth, prediction = noisy_submission
    result = _cli("score", path, "--truth", small_world / "test_truth.parquet", "--resamples", "200")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("mrrmse", "mrrmse_rel", "clipped_mrrmse", "clipped_mrrmse_rel", "mae", "pearson", "spearman", "cosine",
                 "sign_agreement", "precision@50", "overlap@100", "precision@200", "discrimination"):
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "Myeloid cells (127 rows)" in out and "all (255 rows)" in out
    assert "|truth| > 2" in out and "k = 50, 100, 200" in out and "200 resamples" in out and "clipped to ±4" in out
    mrrmse_line = next(line for line in out.splitlines() if line.startswith("mrrmse "))
    assert mrrmse_line.count("[") == 3  # an interval in each group
    result = _cli("score", path, "--truth", small_world / "test_truth.parquet", "--resamples", "200", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    overall = record["groups"]["all"]["metrics"]
    assert overall["mrrmse"]["value"] == pytest.approx(mrrmse(truth, prediction), rel=1e-5)
    assert overall["mrrmse"]["low"] < overall["mrrmse"]["value"] < overall["mrrmse"]["high"]
    assert record["de_threshold"] == 2.0 and record["top_k"] == [50, 100, 200] and record["bootstrap"]["resamples"] == 200


def test_cli_score_refuses_a_nan_prediction(small_world, tmp_path):
    keys, genes, values = read_truth(small_world / "test_truth.parquet")
    values[3, 7] = np.nan
    path = write_prediction_h5ad(tmp_path / "nan.h5ad", keys["id"].to_numpy(), genes, np.nan_to_num(values), dataset_id="d", method_id="m")
    import anndata

    adata = anndata.read_h5ad(path)
    adata.layers["prediction"][3, 7] = np.nan
    adata.write_h5ad(path)
    result = _cli("score", path, "--truth", small_world / "test_truth.parquet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "non-finite value" in result.stderr and str(keys["id"].iloc[3]) in result.stderr


@pytest.fixture(scope="module")
def two_runs(small_dataset, tmp_path_factory):
    from perturbkit.config import load_config
    from perturbkit.cv import run_cv, save_run

    oof = tmp_path_factory.mktemp("oof")
    results = {model: run_cv(small_dataset, load_config(model), progress=False) for model in ("zeros", "compound_mean")}
    for result in results.values():
        save_run(result, oof)
    return oof, results


def test_cv_scores_carry_the_clipped_layer_and_intervals(small_dataset, two_runs):
    _, results = two_runs
    result = results["compound_mean"]
    scores = result.meta["scores"]
    keys = result.oof_keys.merge(small_dataset.obs.reset_index().rename(columns={"index": "row"}), on=["cell_type", "sm_name"])
    truth = small_dataset.targets[keys["row"].to_numpy()]
    from perturbkit.cv import splitter_for

    # the scheme's row weights, as the run's overall score uses them
    weights = splitter_for(small_dataset, result.meta["config"]["cv"]).row_weights(small_dataset.obs)[keys["row"].to_numpy()]
    clipped = clip_layer(truth)
    rmse = np.sqrt(((clipped - clip_layer(result.oof)) ** 2).mean(axis=1))
    zeros = np.sqrt((clipped ** 2).mean(axis=1))
    assert scores["clipped"]["overall"] == pytest.approx(np.average(rmse, weights=weights), rel=1e-6)
    assert scores["clipped"]["relative_to_zeros"] == pytest.approx(np.average(rmse, weights=weights) / np.average(zeros, weights=weights), rel=1e-6)
    for layer in (scores, scores["clipped"]):
        low, high = layer["relative_to_zeros_interval"]
        assert low < layer["relative_to_zeros"] < high
    assert results["zeros"].meta["scores"]["clipped"]["relative_to_zeros_interval"] == [1.0, 1.0]


def test_cli_runs_truth_prints_every_score_and_json(small_world, two_runs, capsys):
    from perturbkit.cli import main

    oof, _ = two_runs
    truth = small_world / "test_truth.parquet"
    assert main(["runs", "--oof", str(oof), "--truth", str(truth), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "test all" in out and "compound_mean" in out and "clipped to ±4" in out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("model") and "clipped_mrrmse_rel" in line)
    for name in ("mrrmse", "pearson", "spearman", "cosine", "mae", "sign_agreement", "precision@50", "discrimination"):
        assert name in header
    assert main(["runs", "--oof", str(oof), "--truth", str(truth), "--resamples", "100", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    by_model = {r["model"]: r for r in records}
    assert set(by_model) == {"zeros", "compound_mean"}
    assert by_model["zeros"]["test"]["groups"]["all"]["metrics"]["mrrmse_rel"]["value"] == pytest.approx(1.0)
    compound = by_model["compound_mean"]["test"]["groups"]["all"]["metrics"]["mrrmse"]
    assert compound["low"] < compound["value"] < compound["high"]
    assert by_model["compound_mean"]["test all"] == pytest.approx(compound["value"])


def test_h5ad_truth_with_a_pair_outside_the_test_is_named(small_world, noisy_submission, tmp_path):
    anndata = pytest.importorskip("anndata")
    path, truth, _ = noisy_submission
    keys, genes, _ = read_truth(small_world / "test_truth.parquet")
    obs = keys[["cell_type", "sm_name"]].iloc[:3].reset_index(drop=True).set_axis(["0", "1", "2"])
    obs.loc["1", "cell_type"] = "NK cells"
    anndata.AnnData(obs=obs, var=pd.DataFrame(index=genes), layers={"sign_log10_pval": truth[:3]}).write_h5ad(tmp_path / "t.h5ad")
    result = _cli("score", path, "--truth", tmp_path / "t.h5ad")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "obs row 1 ('NK cells'" in result.stderr and "not a test pair of id_map.csv" in result.stderr


def test_cv_per_fold_scores_weigh_rows_as_the_overall_score_does(small_dataset, two_runs):
    from perturbkit.cv import splitter_for, summary_text

    result = two_runs[1]["compound_mean"]
    scores = result.meta["scores"]
    keys = result.oof_keys.merge(small_dataset.obs.reset_index().rename(columns={"index": "row"}), on=["cell_type", "sm_name"])
    truth = small_dataset.targets[keys["row"].to_numpy()]
    weights = splitter_for(small_dataset, result.meta["config"]["cv"]).row_weights(small_dataset.obs)[keys["row"].to_numpy()]
    rmse = np.sqrt(((truth - result.oof) ** 2).mean(axis=1))
    folds = keys["fold"].to_numpy()
    assert len(np.unique(weights)) == 2  # test_like: B/Myeloid rows weigh more than lymphoid rows
    for fold, row in scores["per_fold"].items():
        rows = folds == int(fold)
        assert row["mrrmse"] == pytest.approx(np.average(rmse[rows], weights=weights[rows]), rel=1e-6)
        assert row["mrrmse"] != pytest.approx(rmse[rows].mean(), rel=1e-3)  # the unweighted mean it used to print
        assert row["weight"] == pytest.approx(weights[rows].sum() / weights.sum())
    # the overall score is the folds' scores averaged by their share, so it lies within their range
    per_fold = scores["per_fold"].values()
    assert scores["overall"] == pytest.approx(sum(r["mrrmse"] * r["weight"] for r in per_fold), rel=1e-9)
    assert min(r["mrrmse"] for r in per_fold) <= scores["overall"] <= max(r["mrrmse"] for r in per_fold)
    assert sum(r["weight"] for r in scores["per_cell_type"].values()) == pytest.approx(1.0)
    text = summary_text(result.meta)
    assert "share" in text.splitlines()[1] and "B cells, Myeloid cells 50%" in text and "weighting: rows weighted" in text
    for fold, row in scores["per_fold"].items():
        assert f"{row['mrrmse']:.4f}" in next(line for line in text.splitlines() if line.startswith(f"{fold} "))


# --- score's options: --rows, and every value checked before reading -------------------------------


def test_rows_public_and_private_split_the_demo_world_by_its_own_public_rows(small_world, noisy_submission):
    path, values, prediction = noisy_submission
    truth = small_world / "test_truth.parquet"
    public_ids = set(pd.read_csv(small_world / "public_test.csv")["id"])
    cards = {rows: score_submission(path, truth, rows=rows) for rows in ("all", "public", "private")}
    assert cards["public"].notes[0] == f"{len(public_ids)} truth rows scored (public)" and len(public_ids) == 100
    assert cards["private"].notes[0] == "155 truth rows scored (private)"
    # MRRMSE is a mean over rows: the public and private means, weighted by their rows, give the whole one
    whole = (100 * cards["public"].value("mrrmse") + 155 * cards["private"].value("mrrmse")) / 255
    assert cards["all"].value("mrrmse") == pytest.approx(whole, rel=1e-6)
    keys, _, _ = read_truth(truth)
    public = keys["id"].isin(public_ids).to_numpy()
    assert cards["public"].value("mrrmse") == pytest.approx(mrrmse(values[public], prediction[public]), rel=1e-5)


def test_rows_of_a_truth_outside_a_demo_world_follow_kaggles_split(small_world, noisy_submission, tmp_path):
    path, _, _ = noisy_submission
    outside = tmp_path / "truth.parquet"  # the same truth, no world.json beside it: Kaggle's 50 public compounds
    outside.write_bytes((small_world / "test_truth.parquet").read_bytes())
    assert (score_submission(path, outside, rows="public").value("mrrmse")
            == pytest.approx(score_submission(path, small_world / "test_truth.parquet", rows="public").value("mrrmse")))


@pytest.mark.parametrize(("flags", "message"), [
    (["--de-threshold", "nan"], "--de-threshold = nan: Input should be a finite number"),
    (["--de-threshold", "inf"], "--de-threshold = inf: Input should be a finite number"),
    (["--de-threshold", "-5"], "--de-threshold = -5.0: Input should be greater than or equal to 0"),
    (["--bootstrap-seed", "-1"], "--bootstrap-seed = -1: Input should be greater than or equal to 0"),
    (["--bootstrap-seed", str(2**70)], "--bootstrap-seed = 1180591620717411303424: Input should be less than or equal to 4294967295"),
    (["--rows", "secret"], "argument --rows: invalid choice: 'secret'"),
])
def test_score_options_are_checked_with_a_named_error(small_world, flags, message, capsys):
    from perturbkit.cli import main

    try:
        code = main(["score", str(small_world / "sample_submission.csv"), "--truth", str(small_world / "test_truth.parquet"), *flags])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_non_utf8_file_and_an_all_zero_truth_are_named(small_world, truth_as_submission, tmp_path, capsys):
    from perturbkit.cli import main

    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(truth_as_submission.read_bytes().replace(b"\n", "\ncafé,".encode("latin-1"), 1))
    assert main(["score", str(latin1), "--truth", str(small_world / "test_truth.parquet")]) == 2
    assert f"{latin1}: not UTF-8 text (byte 0xe9 on line 2)" in capsys.readouterr().err
    zeros = tmp_path / "zeros.parquet"
    truth = pd.read_parquet(small_world / "test_truth.parquet")
    truth.iloc[:, 3:] = 0.0
    truth.to_parquet(zeros)
    assert main(["score", str(truth_as_submission), "--truth", str(zeros)]) == 2
    err = capsys.readouterr().err
    assert "every truth value is 0" in err and "inf" not in err and "nan" not in err
