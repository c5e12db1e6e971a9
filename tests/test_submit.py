"""Writing submissions (Kaggle CSV, openproblems prediction.h5ad) and scoring either format."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

from perturbkit.cli import main
from perturbkit.errors import DataValidationError
from perturbkit.submit import read_submission, read_truth, score_submission
from perturbkit.submit.write import read_template, write_prediction_h5ad, write_submission_csv


@pytest.fixture(scope="module")
def truth(small_world):
    keys, genes, matrix = read_truth(small_world / "test_truth.parquet")
    return keys["id"].to_numpy(), genes, matrix


def test_csv_follows_the_template_order(small_world, truth, tmp_path):
    ids, genes, matrix = truth
    order = np.random.default_rng(0).permutation(len(ids))
    reversed_genes = genes[::-1]
    shuffled = matrix[order][:, ::-1]
    path = write_submission_csv(tmp_path / "s.csv", ids[order], reversed_genes, shuffled, template=small_world / "sample_submission.csv")
    template_ids, template_genes = read_template(small_world / "sample_submission.csv")
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["id", *template_genes]
    assert frame["id"].tolist() == template_ids.tolist()
    score = score_submission(path, small_world / "test_truth.parquet")
    assert score.value("mrrmse") == pytest.approx(0.0, abs=1e-5)


def test_csv_writer_refuses_a_mismatch_with_the_template(small_world, truth, tmp_path):
    ids, genes, matrix = truth
    with pytest.raises(DataValidationError, match="gene columns"):
        write_submission_csv(tmp_path / "s.csv", ids, genes[:-1], matrix[:, :-1], template=small_world / "sample_submission.csv")
    with pytest.raises(DataValidationError, match="ids"):
        write_submission_csv(tmp_path / "s.csv", ids[1:], genes, matrix[1:], template=small_world / "sample_submission.csv")
    bad = matrix.copy()
    bad[3, 4] = np.nan
    with pytest.raises(DataValidationError, match="non-finite"):
        write_submission_csv(tmp_path / "s.csv", ids, genes, bad)
    assert not (tmp_path / "s.csv").exists()


def test_h5ad_has_the_openproblems_layout(truth, tmp_path, small_world):
    ids, genes, matrix = truth
    path = write_prediction_h5ad(tmp_path / "p.h5ad", ids, genes, matrix, dataset_id="neurips-2023-data", method_id="m")
    adata = anndata.read_h5ad(path)
    assert list(adata.obs_names) == [str(i) for i in ids]
    assert list(adata.var_names) == list(genes)
    np.testing.assert_array_equal(adata.layers["prediction"], matrix)
    assert adata.uns["dataset_id"] == "neurips-2023-data" and adata.uns["method_id"] == "m"
    assert score_submission(path, small_world / "test_truth.parquet").value("mrrmse") == pytest.approx(0.0, abs=1e-6)


def _h5ad(path, ids, genes, matrix, layer="prediction"):
    anndata.AnnData(obs=pd.DataFrame(index=[str(i) for i in ids]), var=pd.DataFrame(index=list(genes)),
                    layers={layer: np.asarray(matrix, dtype=np.float32)}).write_h5ad(path)
    return path


def _csv(path, ids, genes, matrix):
    frame = pd.DataFrame(matrix, columns=list(genes))
    frame.insert(0, "id", ids)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
@pytest.mark.parametrize("fmt", ["csv", "h5ad"])
@pytest.mark.parametrize(
    "change, message",
    [
        ("missing_gene", "missing"),
        ("extra_gene", "extra"),
        ("missing_id", "missing"),
        ("extra_id", "extra"),
        ("duplicate_id", "duplicate id"),
        ("nan", "non-finite"),
    ],
)
def test_score_rejects_bad_submissions_in_both_formats(small_world, truth, tmp_path, fmt, change, message):
    ids, genes, matrix = truth
    genes = list(genes)
    matrix = matrix.copy()
    if change == "missing_gene":
        genes, matrix = genes[:-1], matrix[:, :-1]
    elif change == "extra_gene":
        genes, matrix = [*genes, "NOT_A_GENE"], np.hstack([matrix, np.zeros((len(ids), 1), np.float32)])
    elif change == "missing_id":
        ids, matrix = ids[1:], matrix[1:]
    elif change == "extra_id":
        ids, matrix = np.append(ids, 99999), np.vstack([matrix, matrix[:1]])
    elif change == "duplicate_id":
        ids = ids.copy()
        ids[1] = ids[0]
    elif change == "nan":
        matrix[2, 2] = np.nan
    writer = _csv if fmt == "csv" else _h5ad
    path = writer(tmp_path / f"bad.{fmt}", ids, genes, matrix)
    with pytest.raises(DataValidationError, match=message):
        score_submission(path, small_world / "test_truth.parquet")


def test_h5ad_without_prediction_layer_is_rejected(small_world, truth, tmp_path):
    ids, genes, matrix = truth
    path = _h5ad(tmp_path / "x.h5ad", ids, genes, matrix, layer="other")
    with pytest.raises(DataValidationError, match="prediction"):
        read_submission(path, genes=genes, ids=ids)


def test_cli_score_accepts_h5ad(small_world, truth, tmp_path, capsys):
    ids, genes, matrix = truth
    path = write_prediction_h5ad(tmp_path / "p.h5ad", ids, genes, matrix * 0, dataset_id="d", method_id="zeros")
    assert main(["score", str(path), "--truth", str(small_world / "test_truth.parquet")]) == 0
    assert "mrrmse" in capsys.readouterr().out
    bad = _h5ad(tmp_path / "bad.h5ad", ids[1:], genes, matrix[1:])
    assert main(["score", str(bad), "--truth", str(small_world / "test_truth.parquet")]) == 2
    assert "missing" in capsys.readouterr().err
