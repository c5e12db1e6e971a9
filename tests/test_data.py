"""Loading and validating de_train / id_map: every bad input gets an error naming its problem, and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perturbkit.data import DataValidationError, load_dataset
from perturbkit.data import layout


def _rewrite_train(world: Path, change) -> None:
    frame = pd.read_parquet(world / "de_train.parquet")
    frame = change(frame)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), world / "de_train.parquet")


def _run_cv_cli(world: Path, oof: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "perturbkit", "cv", "--model", "compound_mean", "--data", str(world), "--oof", str(oof), "--no-progress"],
        capture_output=True,
        text=True,
    )


def test_loads_the_real_layout(small_dataset, small_world):
    assert small_dataset.targets.dtype == np.float32
    assert small_dataset.targets.shape == (614, 300)
    assert list(small_dataset.obs["sm_name"].astype(str)) == list(layout.train_layout()["sm_name"])
    assert list(small_dataset.test["id"]) == list(layout.test_layout()["id"])
    assert set(small_dataset.genes) <= set(layout.gene_names())
    assert small_dataset.test["SMILES"].notna().all()
    # categories span train and test keys, so encoders fitted on a fold still know every compound
    assert set(small_dataset.obs["sm_name"].cat.categories) >= set(small_dataset.test["sm_name"].astype(str))
    assert load_dataset(small_world).data_hash == small_dataset.data_hash


def test_h5ad_round_trip_gives_the_same_data(small_dataset, tmp_path):
    anndata = pytest.importorskip("anndata")
    obs = small_dataset.obs.astype({"cell_type": str, "sm_name": str})
    obs.index = obs.index.astype(str)
    adata = anndata.AnnData(
        obs=obs,
        var=pd.DataFrame(index=list(small_dataset.genes)),
        layers={"sign_log10_pval": small_dataset.targets, "clipped_sign_log10_pval": np.clip(small_dataset.targets, -4, 4)},
    )
    adata.write_h5ad(tmp_path / "de_train.h5ad")
    layout.test_layout().to_csv(tmp_path / "id_map.csv", index=False)
    loaded = load_dataset(tmp_path)
    assert loaded.layer == "sign_log10_pval"
    assert loaded.data_hash == small_dataset.data_hash
    clipped = load_dataset(tmp_path, layer="clipped_sign_log10_pval")
    assert clipped.targets.max() <= 4
    with pytest.raises(DataValidationError, match="has no layer 'counts'"):
        load_dataset(tmp_path, layer="counts")


BAD_TRAIN = {
    "missing column": (lambda f: f.drop(columns=["sm_name"]), r"de_train\.parquet: missing required column\(s\) \['sm_name'\]"),
    "non-numeric gene": (lambda f: f.assign(**{f.columns[7]: "x"}), r"gene column '.+' is not numeric"),
    "nan gene value": (
        lambda f: f.assign(**{f.columns[8]: f[f.columns[8]].where(f.index != 5)}),
        r"gene column '.+' has a missing value at row 5",
    ),
    "inf gene value": (
        lambda f: f.assign(**{f.columns[9]: f[f.columns[9]].where(f.index != 7, np.inf)}),
        r"gene column '.+' has a non-finite value \(inf\) at row 7 \(",
    ),
    "huge gene value": (  # finite, but no p-value: one 1e20 gave compound_mean an MRRMSE of 1.1e16
        lambda f: f.assign(**{f.columns[10]: f[f.columns[10]].where(f.index != 11, 1e20)}),
        r"gene column '.+' holds 1e\+20 at row 11 \('.+', '.+'\): beyond ±1000",
    ),
    "duplicate pair": (lambda f: pd.concat([f, f.iloc[[3]]], ignore_index=True), r"duplicate \(cell_type, sm_name\) pair at row 614"),
    "unknown cell type": (
        lambda f: f.assign(cell_type=f["cell_type"].where(f.index != 2, "Platelets")),
        r"unknown cell type 'Platelets' at row 2",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_training_file_is_named_and_nothing_is_written(world_copy, tmp_path, case):
    change, message = BAD_TRAIN[case]
    _rewrite_train(world_copy, change)
    with pytest.raises(DataValidationError, match=message):
        load_dataset(world_copy)
    oof = tmp_path / "oof"
    result = _run_cv_cli(world_copy, oof)
    assert result.returncode == 2
    assert "de_train.parquet" in result.stderr and "Traceback" not in result.stderr
    assert not oof.exists()


def test_id_map_pair_in_training_is_refused(world_copy, tmp_path):
    id_map = pd.read_csv(world_copy / "id_map.csv")
    id_map.loc[4, ["cell_type", "sm_name"]] = ["NK cells", "Clotrimazole"]
    id_map.to_csv(world_copy / "id_map.csv", index=False)
    with pytest.raises(DataValidationError, match=r"id_map\.csv: row 4 \(id 4\) pair \('NK cells', 'Clotrimazole'\) is also in the training data"):
        load_dataset(world_copy)
    assert _run_cv_cli(world_copy, tmp_path / "oof").returncode == 2
    assert not (tmp_path / "oof").exists()


def test_test_compound_without_smiles_is_refused(world_copy, tmp_path):
    id_map = pd.read_csv(world_copy / "id_map.csv")
    id_map.loc[10, "sm_name"] = "Mystery compound"
    id_map.to_csv(world_copy / "id_map.csv", index=False)
    with pytest.raises(DataValidationError, match=r"test compound 'Mystery compound' \(row 10, id 10\) has no SMILES"):
        load_dataset(world_copy)
    assert _run_cv_cli(world_copy, tmp_path / "oof").returncode == 2
    assert not (tmp_path / "oof").exists()


def test_template_with_other_genes_is_refused(world_copy, tmp_path):
    template = pd.read_csv(world_copy / "sample_submission.csv")
    template = template.rename(columns={template.columns[5]: "NOT_A_GENE"})
    template.to_csv(world_copy / "sample_submission.csv", index=False)
    with pytest.raises(DataValidationError, match=r"sample_submission\.csv: gene columns differ .*NOT_A_GENE"):
        load_dataset(world_copy)
    assert _run_cv_cli(world_copy, tmp_path / "oof").returncode == 2
    assert not (tmp_path / "oof").exists()


def test_missing_id_map_and_missing_directory_are_named(world_copy, tmp_path):
    (world_copy / "id_map.csv").unlink()
    with pytest.raises(DataValidationError, match=r"id_map\.csv: file not found"):
        load_dataset(world_copy)
    with pytest.raises(DataValidationError, match="data directory does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_unparseable_smiles_warns_or_fails_when_chemistry_needs_it(world_copy, tmp_path):
    _rewrite_train(world_copy, lambda f: f.assign(SMILES=f["SMILES"].where(f["sm_name"] != "Clotrimazole", "C1CC(")))
    with pytest.warns(UserWarning, match=r"empty or cannot be parsed by RDKit for compound\(s\) \['Clotrimazole'\]"):
        dataset = load_dataset(world_copy)
    assert len(dataset.obs) == 614
    with pytest.raises(DataValidationError, match=r"Clotrimazole.*the configured features need SMILES"):
        load_dataset(world_copy, require_smiles=True)


@pytest.mark.parametrize("empty", [None, ""])
def test_an_empty_smiles_names_its_compound(world_copy, empty):
    _rewrite_train(world_copy, lambda f: f.assign(SMILES=f["SMILES"].where(f["sm_name"] != "Clotrimazole", empty)))
    with pytest.warns(UserWarning, match=r"empty or cannot be parsed by RDKit for compound\(s\) \['Clotrimazole'\]"):
        load_dataset(world_copy)


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


TEMPLATE_DISAGREES = {
    # an id_map of 10 rows beside the 255-row template: cross-validated before, refused only by blend
    "id_map of 10 rows": (lambda w: pd.read_csv(w / "id_map.csv").head(10).to_csv(w / "id_map.csv", index=False),
                          r"sample_submission\.csv: 255 rows but id_map\.csv has 10 test ids"),
    # a template cut in the middle of a row: a pyarrow traceback in blend/recipe/submit after all the CV work before
    "template cut mid-row": (lambda w: _cut(w / "sample_submission.csv", (w / "sample_submission.csv").stat().st_size // 2),
                             r"sample_submission\.csv: submission template cannot be read as CSV \(.*Expected 301 columns"),
    "template cut at a row's end": (lambda w: pd.read_csv(w / "sample_submission.csv").head(200).to_csv(w / "sample_submission.csv", index=False),
                                    r"sample_submission\.csv: 200 rows but id_map\.csv has 255 test ids: ids missing from the template \[200, 201"),
}


@pytest.mark.parametrize("case", sorted(TEMPLATE_DISAGREES))
def test_a_template_that_disagrees_with_id_map_is_refused_at_load(world_copy, tmp_path, case):
    change, message = TEMPLATE_DISAGREES[case]
    change(world_copy)
    with pytest.raises(DataValidationError, match=message):
        load_dataset(world_copy)
    result = _run_cv_cli(world_copy, tmp_path / "oof")
    assert result.returncode == 2 and "sample_submission.csv" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "oof").exists()


def test_demo_genes_beside_a_data_folder_is_refused(small_world, tmp_path, capsys):
    from perturbkit.cli import main

    assert main(["validate", "--data", str(small_world), "--demo-genes", "50"]) == 2
    assert "--demo-genes 50 applies to demo worlds" in capsys.readouterr().err
    assert main(["score", str(small_world / "sample_submission.csv"), "--truth", str(small_world / "test_truth.parquet"),
                 "--demo-genes", "50"]) == 2
    assert "--demo-genes 50 applies to demo worlds" in capsys.readouterr().err


@pytest.mark.slow
def test_full_size_demo_loads(tmp_path):
    from perturbkit.data.demo import generate_demo

    world = generate_demo(tmp_path / "full")
    dataset = load_dataset(world)
    assert dataset.targets.shape == (614, 18211)
    assert dataset.genes == layout.gene_names()
