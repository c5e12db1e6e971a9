from importlib import resources

import numpy as np
import pandas as pd
import pytest

from perturbkit.data import demo, layout
from perturbkit.data.demo import DEMO_FILES, GENERATOR_VERSION, demo_dir, generate_demo
from perturbkit.data.layout import CELL_TYPES, LYMPHOID_CELL_TYPES, OBS_COLUMNS, celltype_means, gene_names
from perturbkit.features.chemistry import morgan_fingerprints

N_GENES = 300


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("world"), n_genes=N_GENES, seed=0)


@pytest.fixture(scope="module")
def train(world):
    return pd.read_parquet(world / "de_train.parquet")


@pytest.fixture(scope="module")
def truth(world):
    return pd.read_parquet(world / "test_truth.parquet")


def _genes(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in {*OBS_COLUMNS, "id"}]


def _mrrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(((prediction - target) ** 2).mean(axis=1)).mean())


def _test_baselines(train: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """MRRMSE on the test truth of the simple baselines the module docstring reports."""
    genes = _genes(train)
    celltype_mean = train.groupby("cell_type")[genes].mean()
    deviation = train[genes] - celltype_mean.loc[train["cell_type"]].to_numpy()
    compound_deviation = deviation.groupby(train["sm_name"]).mean()
    predictions = {
        "zeros": np.zeros((len(truth), len(genes))),
        "celltype_mean": celltype_mean.loc[truth["cell_type"]].to_numpy(),
        "compound_mean": train.groupby("sm_name")[genes].mean().loc[truth["sm_name"]].to_numpy(),
    }
    predictions["combined"] = predictions["celltype_mean"] + compound_deviation.loc[truth["sm_name"]].to_numpy()
    target = truth[genes].to_numpy()
    return {name: _mrrmse(prediction, target) for name, prediction in predictions.items()}


def test_writes_kaggle_file_set_on_the_real_layout(world, train, truth):
    assert sorted(p.name for p in world.iterdir()) == sorted(DEMO_FILES)
    genes = _genes(train)
    assert len(genes) == N_GENES
    assert list(train.columns) == [*OBS_COLUMNS, *genes]
    pd.testing.assert_frame_equal(train[list(OBS_COLUMNS)], layout.train_layout()[list(OBS_COLUMNS)])
    assert train["control"].dtype == bool
    assert (train[genes].dtypes == np.float64).all()
    assert np.isfinite(train[genes].to_numpy()).all()

    kaggle_id_map = resources.files("perturbkit.data").joinpath("layout", "id_map.csv").read_bytes()
    assert (world / "id_map.csv").read_bytes() == kaggle_id_map

    assert list(truth.columns) == ["id", "cell_type", "sm_name", *genes]
    pd.testing.assert_frame_equal(truth[["id", "cell_type", "sm_name"]], layout.test_layout())
    assert (truth[genes].dtypes == np.float32).all()
    assert np.isfinite(truth[genes].to_numpy()).all()

    submission = pd.read_csv(world / "sample_submission.csv")
    assert list(submission.columns) == ["id", *genes]
    assert submission["id"].tolist() == layout.test_layout()["id"].tolist()
    assert (submission[genes].to_numpy() == 0).all()


def test_small_world_keeps_evenly_spread_genes_in_alphabetical_order(train):
    genes = _genes(train)
    all_genes = gene_names()
    assert genes == sorted(genes)
    assert genes[0] == all_genes[0] and genes[-1] == all_genes[-1]
    positions = np.array([all_genes.index(g) for g in genes])
    assert np.ptp(np.diff(positions)) <= 1


def test_same_seed_gives_identical_files(tmp_path, world, train, truth):
    again = generate_demo(tmp_path, n_genes=N_GENES, seed=0)
    for name in DEMO_FILES:
        assert (again / name).read_bytes() == (world / name).read_bytes(), name
    pd.testing.assert_frame_equal(pd.read_parquet(again / "de_train.parquet"), train, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(again / "test_truth.parquet"), truth, check_exact=True)


def test_different_seed_gives_different_values(tmp_path, train):
    other = pd.read_parquet(generate_demo(tmp_path, n_genes=N_GENES, seed=1) / "de_train.parquet")
    genes = _genes(train)
    assert not np.allclose(other[genes].to_numpy(), train[genes].to_numpy())


def test_gene_values_do_not_depend_on_world_size(tmp_path, train):
    bigger = pd.read_parquet(generate_demo(tmp_path, n_genes=2 * N_GENES - 1, seed=0) / "de_train.parquet")
    shared = [g for g in _genes(train) if g in bigger.columns]
    assert len(shared) > N_GENES // 2
    np.testing.assert_allclose(bigger[shared].to_numpy(), train[shared].to_numpy(), rtol=1e-5, atol=1e-6)


def test_celltype_means_are_reproduced(train):
    genes = _genes(train)
    generated = train.groupby("cell_type")[genes].mean()
    real = celltype_means().loc[genes]
    for cell_type in CELL_TYPES:
        ours, theirs = generated.loc[cell_type].to_numpy(), real[cell_type].to_numpy()
        assert np.corrcoef(ours, theirs)[0, 1] > 0.99
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_a_few_strong_compounds_dominate(train):
    row_rms = np.sqrt((train[_genes(train)].to_numpy() ** 2).mean(axis=1))
    assert row_rms.max() > 5 * np.median(row_rms)


def test_baselines_rank_as_documented(train, truth):
    scores = _test_baselines(train, truth)
    assert scores["zeros"] > 1.05 * scores["compound_mean"]
    assert scores["compound_mean"] > scores["celltype_mean"]
    assert scores["combined"] < 0.97 * scores["celltype_mean"]


def test_test_rows_are_harder_than_lymphoid_rows(train, truth):
    genes = _genes(train)
    values = train[genes].to_numpy()
    lymphoid = train["cell_type"].isin(LYMPHOID_CELL_TYPES).to_numpy()
    # Each lymphoid row against the mean of the other rows of its cell type.
    sums = train.groupby("cell_type")[genes].transform("sum").to_numpy()
    counts = train.groupby("cell_type")["sm_name"].transform("size").to_numpy()[:, None]
    leave_one_out = (sums - values) / (counts - 1)
    lymphoid_score = _mrrmse(leave_one_out[lymphoid], values[lymphoid])
    assert _test_baselines(train, truth)["celltype_mean"] > 1.3 * lymphoid_score


def test_chemically_similar_compounds_respond_alike(train):
    genes = _genes(train)
    lymphoid = train[train["cell_type"].isin(LYMPHOID_CELL_TYPES)]
    deviation = lymphoid[genes] - lymphoid.groupby("cell_type")[genes].transform("mean")
    response = deviation.groupby(lymphoid["sm_name"]).mean()
    smiles = lymphoid.drop_duplicates("sm_name").set_index("sm_name").loc[response.index, "SMILES"]
    bits = morgan_fingerprints(smiles).astype(np.int32)
    shared = bits @ bits.T
    tanimoto = shared / (bits.sum(1)[:, None] + bits.sum(1)[None, :] - shared)
    correlation = np.corrcoef(response.to_numpy())
    pairs = np.triu_indices(len(response), k=1)
    similar = tanimoto[pairs] >= 0.4
    assert similar.sum() >= 5
    assert correlation[pairs][similar].mean() > correlation[pairs].mean() + 0.05


def test_demo_dir_generates_once_and_then_reuses(tmp_path, monkeypatch):
    world = demo_dir(tmp_path, n_genes=40, seed=3)
    assert world == tmp_path / f"genes-40_seed-3_v{GENERATOR_VERSION}"
    assert [p.name for p in tmp_path.iterdir()] == [world.name]  # no staging directory left behind
    mtimes = {name: (world / name).stat().st_mtime_ns for name in DEMO_FILES}

    def must_not_run(*args, **kwargs):
        raise AssertionError("a complete world was regenerated")

    monkeypatch.setattr(demo, "generate_demo", must_not_run)
    assert demo_dir(tmp_path, n_genes=40, seed=3) == world
    assert {name: (world / name).stat().st_mtime_ns for name in DEMO_FILES} == mtimes


def test_demo_dir_leaves_nothing_behind_when_generation_fails(tmp_path, monkeypatch):
    def crash_halfway(out_dir, **kwargs):
        (out_dir / "de_train.parquet").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "generate_demo", crash_halfway)
    with pytest.raises(RuntimeError, match="disk full"):
        demo_dir(tmp_path, n_genes=40)
    assert list(tmp_path.iterdir()) == []


def test_demo_dir_root_defaults_to_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PERTURBKIT_DEMO_ROOT", str(tmp_path))
    assert demo_dir(n_genes=10).parent == tmp_path


def test_rejects_impossible_gene_counts(tmp_path):
    for n_genes in (0, len(gene_names()) + 1):
        with pytest.raises(ValueError, match="n_genes"):
            generate_demo(tmp_path, n_genes=n_genes)


@pytest.mark.slow
def test_full_world_matches_documented_numbers(tmp_path, train):
    world = demo_dir(tmp_path, seed=0)
    assert world.name == f"genes-{len(gene_names())}_seed-0_v{GENERATOR_VERSION}"
    full_train = pd.read_parquet(world / "de_train.parquet")
    full_truth = pd.read_parquet(world / "test_truth.parquet")
    assert full_train.shape == (614, len(OBS_COLUMNS) + len(gene_names()))
    assert _genes(full_train) == list(gene_names())

    generated = full_train.groupby("cell_type")[list(gene_names())].mean()
    real = celltype_means()
    for cell_type in CELL_TYPES:
        assert np.corrcoef(generated.loc[cell_type], real[cell_type])[0, 1] > 0.9999

    scores = _test_baselines(full_train, full_truth)
    documented = {"zeros": 3.623, "celltype_mean": 2.593, "compound_mean": 3.222, "combined": 2.384}
    assert scores == pytest.approx(documented, abs=0.002)

    small_genes = _genes(train)
    np.testing.assert_allclose(full_train[small_genes].to_numpy(), train[small_genes].to_numpy(), rtol=1e-5, atol=1e-6)
