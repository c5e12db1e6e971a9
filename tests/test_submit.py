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


# --- perturbkit check: one named error per defect, exit code 2, nothing written -----------------------


def _template_frame(small_world) -> pd.DataFrame:
    """A valid submission in the template's layout: the truth's values, rows and columns in the template's order."""
    template_ids, template_genes = read_template(small_world / "sample_submission.csv")
    truth = pd.read_parquet(small_world / "test_truth.parquet").set_index("id")
    return truth.loc[template_ids, template_genes].rename_axis("id").reset_index()


def _defect(frame: pd.DataFrame, defect: str) -> pd.DataFrame:
    frame = frame.copy()
    genes = list(frame.columns[1:])
    if defect == "missing id":
        return frame.drop(index=7)
    if defect == "duplicated id":
        frame.loc[7, "id"] = frame.loc[8, "id"]
        return frame
    if defect == "extra id":
        return pd.concat([frame, frame.iloc[[0]].assign(id=99999)], ignore_index=True)
    if defect == "swapped columns":
        order = ["id", *genes]
        order[3], order[4] = order[4], order[3]
        return frame[order]
    if defect == "nan":
        frame.loc[5, genes[2]] = np.nan
        return frame
    if defect == "inf":
        frame.loc[5, genes[2]] = -np.inf
        return frame
    if defect == "wrong count":  # a file cut short: its last rows lost
        return frame.iloc[:-20]
    raise AssertionError(defect)


CHECK_DEFECTS = {
    "missing id": ["missing [", "254 rows where it has 255"],
    "duplicated id": ["duplicate id"],
    "extra id": ["extra [99999]", "256 rows where it has 255"],
    "swapped columns": ["column 4 is", "follow its order"],
    "nan": ["non-finite value"],
    "inf": ["non-finite value"],
    "wrong count": ["235 rows where it has 255"],
}


@pytest.mark.parametrize("against", ["data", "template"])
@pytest.mark.parametrize("defect", list(CHECK_DEFECTS))
def test_check_names_each_defect_with_exit_code_2_and_writes_nothing(small_world, tmp_path, capsys, defect, against):
    path = tmp_path / "mine.csv"
    _defect(_template_frame(small_world), defect).to_csv(path, index=False)
    reference = ["--data", str(small_world)] if against == "data" else ["--template", str(small_world / "sample_submission.csv")]
    before = sorted(tmp_path.rglob("*")), sorted(small_world.rglob("*"))
    assert main(["check", str(path), *reference]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:") and "Traceback" not in err
    for part in CHECK_DEFECTS[defect]:
        assert part in err, err
    assert (sorted(tmp_path.rglob("*")), sorted(small_world.rglob("*"))) == before


def test_check_accepts_a_valid_submission_and_submit_uses_the_same_check(small_world, tmp_path, capsys):
    good = tmp_path / "good.csv"
    _template_frame(small_world).to_csv(good, index=False)
    assert main(["check", str(good), "--data", str(small_world)]) == 0
    assert "a valid submission" in capsys.readouterr().out
    swapped = tmp_path / "swapped.csv"
    _defect(_template_frame(small_world), "swapped columns").to_csv(swapped, index=False)
    # submit refuses the file by the same check before any credential is looked for
    assert main(["submit", str(swapped), "-m", "x", "--template", str(small_world / "sample_submission.csv")]) == 2
    assert "follow its order" in capsys.readouterr().err


def test_the_real_layout_is_the_default_reference(small_world, tmp_path, capsys):
    good = tmp_path / "good.csv"
    _template_frame(small_world).to_csv(good, index=False)  # 300 of the 18,211 genes
    assert main(["check", str(good)]) == 2
    assert "the competition's sample_submission.csv" in capsys.readouterr().err
