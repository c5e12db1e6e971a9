import subprocess
import sys
import warnings

import numpy as np
import pytest

from perturbkit import chem
from perturbkit.chem import invalid_smiles, morgan_fingerprints
from perturbkit.data.layout import compounds
from perturbkit.features import chemistry
from perturbkit.features.chemistry import substructure_counts

ETHYL_BENZOATE = "CCOC(=O)c1ccccc1"
# Ethyl benzoate with a benzamide on the ring: the carbonyl fragment occurs twice.
AMIDE_ESTER = "CCOC(=O)c1ccccc1NC(=O)c1ccccc1"


def _tanimoto(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_fingerprints_are_binary_rows_per_smiles():
    fps = morgan_fingerprints(["CCO", "c1ccccc1", "CCO"])
    assert fps.shape == (3, 2048)
    assert fps.dtype == np.uint8
    assert set(np.unique(fps)) <= {0, 1}
    assert fps[0].sum() > 0
    np.testing.assert_array_equal(fps[0], fps[2])
    assert morgan_fingerprints(["CCO"], radius=1, n_bits=512).shape == (1, 512)


def test_fingerprints_reflect_structural_similarity():
    ethanol, propanol, benzene = morgan_fingerprints(["CCO", "CCCO", "c1ccccc1"])
    assert _tanimoto(ethanol, propanol) > _tanimoto(ethanol, benzene)


def test_fingerprints_are_deterministic_and_cached():
    smiles = compounds()["SMILES"].tolist()
    first = morgan_fingerprints(smiles)
    hits_before = chem._fingerprint.cache_info().hits
    second = morgan_fingerprints(smiles)
    assert chem._fingerprint.cache_info().hits - hits_before == len(smiles)
    np.testing.assert_array_equal(first, second)
    # Callers get their own copy: writing to it must not corrupt the cache.
    second[:] = 0
    np.testing.assert_array_equal(morgan_fingerprints(smiles), first)


def test_bad_smiles_warn_once_and_give_zero_rows():
    with pytest.warns(UserWarning, match="not-a-smiles") as record:
        fps = morgan_fingerprints(["CCO", "not-a-smiles", "C1CC"])
    assert len(record) == 1
    assert "C1CC" in str(record[0].message)
    assert fps[0].sum() > 0
    assert fps[1].sum() == 0 and fps[2].sum() == 0


def test_invalid_smiles_lists_unparseable_ones_in_order():
    assert invalid_smiles(["CCO", "C1CC", "", "xyz", "c1ccccc1"]) == ["C1CC", "", "xyz"]


def test_rdkit_parse_errors_do_not_reach_stderr(capfd):
    invalid_smiles(["C1CC(unclosed-test-only"])
    assert capfd.readouterr().err == ""


def test_all_layout_compounds_parse():
    assert invalid_smiles(compounds()["SMILES"]) == []


def test_valid_smiles_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        morgan_fingerprints(["CCO"])
        substructure_counts(["CCO"], min_count=1)


def test_substructure_counts_of_known_molecules():
    counts = substructure_counts([AMIDE_ESTER, ETHYL_BENZOATE], min_count=1)
    assert list(counts.index) == [AMIDE_ESTER, ETHYL_BENZOATE]
    assert list(counts.columns) == sorted(counts.columns)
    assert counts.loc[AMIDE_ESTER].to_dict() == {
        "[16*]c1ccccc1": 1,
        "[16*]c1ccccc1[16*]": 1,
        "[1*]C([6*])=O": 2,
        "[3*]O[3*]": 1,
        "[4*]CC": 1,
        "[5*]N[5*]": 1,
    }
    assert counts.loc[ETHYL_BENZOATE].to_dict() == {
        "[16*]c1ccccc1": 1,
        "[16*]c1ccccc1[16*]": 0,
        "[1*]C([6*])=O": 1,
        "[3*]O[3*]": 1,
        "[4*]CC": 1,
        "[5*]N[5*]": 0,
    }


def test_min_count_keeps_fragments_shared_by_enough_compounds():
    counts = substructure_counts([AMIDE_ESTER, ETHYL_BENZOATE])
    assert list(counts.columns) == ["[1*]C([6*])=O", "[16*]c1ccccc1", "[3*]O[3*]", "[4*]CC"]


def test_substructure_counts_bad_smiles_give_zero_row():
    with pytest.warns(UserWarning, match="xx"):
        counts = substructure_counts([ETHYL_BENZOATE, "xx"], min_count=1)
    assert counts.loc["xx"].sum() == 0
    assert counts.loc[ETHYL_BENZOATE].sum() == 4


def test_substructure_counts_of_layout_compounds_are_deterministic():
    smiles = compounds()["SMILES"]
    first = substructure_counts(smiles)
    assert first.shape[0] == len(smiles) and first.shape[1] > 20
    assert ((first > 0).sum() >= 2).all()
    assert first.equals(substructure_counts(smiles))


def test_features_use_the_one_fingerprint_implementation():
    assert chemistry.morgan_fingerprints is chem.morgan_fingerprints
    assert chemistry.invalid_smiles is chem.invalid_smiles


@pytest.mark.parametrize(
    "statement",
    [
        "import perturbkit.features",
        "import perturbkit.data, perturbkit.data.demo",
    ],
)
def test_data_and_features_load_without_importing_rdkit(statement):
    check = f"import sys; {statement}; assert 'rdkit' not in sys.modules, sorted(m for m in sys.modules if 'rdkit' in m)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_chemistry_blocks_import_rdkit_when_asked_for():
    check = (
        "import sys; import perturbkit.features.chemistry; "
        "assert 'rdkit' in sys.modules and 'perturbkit.chem' in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
