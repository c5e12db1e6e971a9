import dataclasses
import subprocess
import sys
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from perturbkit.chem import morgan_fingerprints
from perturbkit.data import layout, load, resolve_data_dir
from perturbkit.data.demo import cache, model, variants
from perturbkit.data.demo import (
    DEFAULT_VARIANT,
    DEMO_FILES,
    GENERATOR_VERSION,
    UnknownVariantError,
    calibration,
    demo_dir,
    generate_demo,
    get_variant,
    list_variants,
)
from perturbkit.data.layout import (
    CELL_TYPES,
    LYMPHOID_CELL_TYPES,
    OBS_COLUMNS,
    TEST_CELL_TYPES,
    celltype_means,
    gene_names,
    nk_per_gene_std,
)

N_GENES = 300
CALIBRATION_GENES = 500


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
    """MRRMSE on the test truth of the simple baselines docs/demo.md reports."""
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


def test_compound_mean_beats_zeros_and_celltype_mean_overshoots(train, truth):
    scores = _test_baselines(train, truth)
    assert scores["compound_mean"] < scores["zeros"]
    assert scores["celltype_mean"] > 1.3 * scores["zeros"]


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
    assert world == tmp_path / f"{DEFAULT_VARIANT}_genes-40_seed-3_v{GENERATOR_VERSION}"
    assert [p.name for p in tmp_path.iterdir()] == [world.name]  # no staging directory left behind
    mtimes = {name: (world / name).stat().st_mtime_ns for name in DEMO_FILES}

    def must_not_run(*args, **kwargs):
        raise AssertionError("a complete world was regenerated")

    monkeypatch.setattr(cache, "generate_demo", must_not_run)
    assert demo_dir(tmp_path, n_genes=40, seed=3) == world
    assert {name: (world / name).stat().st_mtime_ns for name in DEMO_FILES} == mtimes


def test_demo_dir_leaves_nothing_behind_when_generation_fails(tmp_path, monkeypatch):
    def crash_halfway(out_dir, **kwargs):
        (out_dir / "de_train.parquet").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache, "generate_demo", crash_halfway)
    with pytest.raises(RuntimeError, match="disk full"):
        demo_dir(tmp_path, n_genes=40)
    assert list(tmp_path.iterdir()) == []


def test_demo_dir_root_defaults_to_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PERTURBKIT_DEMO_ROOT", str(tmp_path))
    assert demo_dir(n_genes=10).parent == tmp_path


def test_rejects_impossible_gene_counts(tmp_path):
    for n_genes in (0, len(gene_names()) + 1):
        with pytest.raises(ValueError, match="a demo world has between 1 and"):
            generate_demo(tmp_path, n_genes=n_genes)


def _variant_world(tmp_path_factory, variant: str, n_genes: int = N_GENES, seed: int = 0):
    path = generate_demo(tmp_path_factory.mktemp(variant), n_genes=n_genes, seed=seed, variant=variant)
    return pd.read_parquet(path / "de_train.parquet"), pd.read_parquet(path / "test_truth.parquet")


@pytest.fixture(scope="module")
def variant_worlds(tmp_path_factory) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {name: _variant_world(tmp_path_factory, name) for name in list_variants()}


def test_there_are_at_least_four_variants_with_the_default_first():
    names = list_variants()
    assert names[0] == DEFAULT_VARIANT and len(names) >= 4 and len(set(names)) == len(names)
    assert all(get_variant(name).name == name and get_variant(name).summary for name in names)
    assert len({get_variant(name) for name in names}) == len(names)  # no two share every parameter


def test_default_variant_is_what_generate_demo_writes_without_one(tmp_path, world):
    explicit = generate_demo(tmp_path, n_genes=N_GENES, seed=0, variant=DEFAULT_VARIANT)
    for name in DEMO_FILES:
        assert (explicit / name).read_bytes() == (world / name).read_bytes(), name


def test_variants_give_different_values_on_the_same_layout(variant_worlds):
    trains = {name: train for name, (train, _) in variant_worlds.items()}
    reference = next(iter(trains.values()))
    genes = _genes(reference)
    for name, train in trains.items():
        pd.testing.assert_frame_equal(train[list(OBS_COLUMNS)], reference[list(OBS_COLUMNS)])
        others = [other for other in trains if other != name]
        assert all(not np.allclose(train[genes], trains[other][genes]) for other in others), name


@pytest.mark.parametrize("variant", ["carryover", "fewcells"])
def test_each_variant_is_deterministic_by_seed(tmp_path, variant):
    first = generate_demo(tmp_path / "a", n_genes=60, seed=5, variant=variant)
    again = generate_demo(tmp_path / "b", n_genes=60, seed=5, variant=variant)
    other = generate_demo(tmp_path / "c", n_genes=60, seed=6, variant=variant)
    for name in DEMO_FILES:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert (first / "test_truth.parquet").read_bytes() != (other / "test_truth.parquet").read_bytes()


def _test_deviation_agreement(train: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Mean correlation of a B test row's deviation with the compound's mean lymphoid deviation."""
    genes = _genes(train)
    lymphoid = train[train["cell_type"].isin(LYMPHOID_CELL_TYPES)].groupby("sm_name")[genes].mean()
    lymphoid -= lymphoid.mean()
    rows = truth[truth["cell_type"] == "B cells"].set_index("sm_name")[genes]
    rows -= rows.mean()
    return float(np.mean([np.corrcoef(rows.loc[c], lymphoid.loc[c])[0, 1] for c in rows.index]))


def test_carry_over_orders_how_much_lymphoid_responses_tell_about_test_rows(variant_worlds):
    agreement = {name: _test_deviation_agreement(*variant_worlds[name]) for name in ("carryover", "default", "divergent")}
    assert agreement["carryover"] > agreement["default"] + 0.02
    assert agreement["default"] > agreement["divergent"] + 0.02


def _strength_agreement(train: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Correlation across B test rows of log row RMS with the log RMS of the compound's mean lymphoid row."""
    genes = _genes(train)
    lymphoid = train[train["cell_type"].isin(LYMPHOID_CELL_TYPES)].groupby("sm_name")[genes].mean()
    rows = truth[truth["cell_type"] == "B cells"].set_index("sm_name")[genes]
    test_rms = np.sqrt((rows**2).mean(axis=1))
    lymphoid_rms = np.sqrt((lymphoid.loc[rows.index] ** 2).mean(axis=1))
    return float(np.corrcoef(np.log(test_rms), np.log(lymphoid_rms))[0, 1])


def test_few_cells_make_test_row_strength_less_predictable_from_lymphoid_rows(variant_worlds):
    strength = {name: _strength_agreement(*world) for name, world in variant_worlds.items()}
    assert all(strength["fewcells"] < value - 0.05 for name, value in strength.items() if name != "fewcells"), strength


def test_cells_per_well_shrink_only_b_and_myeloid_wells_of_toxic_test_compounds():
    panel = np.zeros(146, dtype=bool)
    panel[:17] = True
    test_rows = [CELL_TYPES.index(c) for c in TEST_CELL_TYPES]
    lymphoid_rows = [CELL_TYPES.index(c) for c in LYMPHOID_CELL_TYPES]
    fewcells, default = get_variant("fewcells"), get_variant(DEFAULT_VARIANT)
    cells = model._cells_per_well(fewcells, panel, seed=0)
    assert (cells[lymphoid_rows] == 1).all()
    assert (cells[test_rows][:, panel] == fewcells.bm_cells).all()
    test_wells = cells[test_rows][:, ~panel]
    assert (test_wells < fewcells.bm_cells).all() and test_wells.std() > 0.05
    assert (model._cells_per_well(default, panel, seed=0) == default.bm_cells).all()


def _zeros_by_side(truth: pd.DataFrame) -> tuple[float, float]:
    """MRRMSE of zeros on Kaggle's public and on its private test rows."""
    row_rms = np.sqrt((truth[_genes(truth)].to_numpy() ** 2).mean(axis=1))
    public = layout.public_test_rows(truth)
    return float(row_rms[public].mean()), float(row_rms[~public].mean())


def test_kaggles_private_rows_are_the_harder_ones_in_every_variant(variant_worlds):
    for name, (_, truth) in variant_worlds.items():
        public, private = _zeros_by_side(truth)
        assert private > public, (name, public, private)


def test_private_lead_deals_the_same_strengths_larger_to_private_compounds():
    panel = np.zeros(146, dtype=bool)
    panel[:17] = True
    private = np.zeros(146, dtype=bool)
    private[17:96] = True
    variant = get_variant("fewcells")
    potency, cells = model._potency(variant, panel, seed=0), model._cells_per_well(variant, panel, seed=0)
    dealt_potency, dealt_cells = potency.copy(), cells.copy()
    model._favour_private(variant, panel, private, dealt_potency, dealt_cells)
    # The same (potency, cells) pairs, dealt so that private compounds hold the larger strengths.
    b_row = CELL_TYPES.index(TEST_CELL_TYPES[0])
    pairs = lambda p, c: sorted(zip(p[~panel], c[b_row, ~panel]))  # noqa: E731
    assert pairs(dealt_potency, dealt_cells) == pairs(potency, cells)
    np.testing.assert_array_equal(dealt_potency[panel], potency[panel])
    strength = dealt_potency * np.sqrt(dealt_cells[b_row])
    before = potency * np.sqrt(cells[b_row])
    assert np.median(strength[private]) > 1.3 * np.median(strength[~panel & ~private])
    assert abs(np.median(before[private]) / np.median(before[~panel & ~private]) - 1) < 0.3
    # A lead of 0 leaves the old draw untouched.
    neutral = dataclasses.replace(variant, private_lead=0.0)
    kept_potency, kept_cells = potency.copy(), cells.copy()
    model._favour_private(neutral, panel, private, kept_potency, kept_cells)
    np.testing.assert_array_equal(kept_potency, potency)
    np.testing.assert_array_equal(kept_cells, cells)


def test_without_a_private_lead_the_public_rows_are_the_harder_ones_in_seed_0(tmp_path, monkeypatch, variant_worlds):
    neutral = dataclasses.replace(get_variant(DEFAULT_VARIANT), private_lead=0.0)
    monkeypatch.setitem(variants._VARIANTS, DEFAULT_VARIANT, neutral)
    world = generate_demo(tmp_path, n_genes=N_GENES, seed=0)
    old_public, old_private = _zeros_by_side(pd.read_parquet(world / "test_truth.parquet"))
    public, private = _zeros_by_side(variant_worlds[DEFAULT_VARIANT][1])
    assert old_private < old_public and private > public
    assert private / public > 1.2


@pytest.mark.parametrize("variant", list_variants())
def test_every_variant_is_calibrated_against_the_real_figures(tmp_path, variant):
    table = calibration(generate_demo(tmp_path, n_genes=CALIBRATION_GENES, seed=0, variant=variant))
    generated = table["generated"]
    # Tolerant bounds around the real figures (the full-scale numbers are in docs/demo.md).
    assert 1.1 < generated["test zeros"] < 2.1
    assert 0.85 < generated["test compound_mean / zeros"] < 1.0
    assert 1.3 < generated["test celltype_mean / zeros"] < 1.9
    assert generated["celltype means max |diff|"] < 1e-3
    assert 1.4 < generated["NK per-gene std mean"] < 2.8
    assert 1.0 < generated["NK per-gene std median"] < 2.0
    assert 3.0 < generated["NK per-gene std p90"] < 5.5
    assert generated["NK per-gene std r"] > 0.6


def test_calibration_reports_the_real_figures_beside_the_generated_ones(small_world):
    table = calibration(small_world)
    assert list(table.columns) == ["generated", "real"]
    real = table["real"]
    assert real["test zeros"] == 1.57 and real["test celltype_mean"] == 2.50
    assert real["test compound_mean / zeros"] == pytest.approx(1.47 / 1.57)
    genes = _genes(pd.read_parquet(small_world / "de_train.parquet"))
    assert real["NK per-gene std mean"] == pytest.approx(nk_per_gene_std().loc[genes].mean())
    truth = pd.read_parquet(small_world / "test_truth.parquet")
    assert table.loc["test zeros", "generated"] == pytest.approx(np.sqrt((truth[genes].to_numpy() ** 2).mean(axis=1)).mean())


def test_real_nk_spread_is_shipped_in_gene_order():
    spread = nk_per_gene_std()
    assert tuple(spread.index) == gene_names()
    assert spread.mean() == pytest.approx(2.03, abs=0.01) and spread.max() == pytest.approx(14.1, abs=0.05)


def test_unknown_variant_is_named_with_the_known_ones_and_writes_nothing(tmp_path):
    out = tmp_path / "world"
    with pytest.raises(UnknownVariantError, match="'nope'.*default.*carryover"):
        generate_demo(out, n_genes=20, variant="nope")
    assert not out.exists()
    with pytest.raises(UnknownVariantError, match="known"):
        demo_dir(tmp_path / "root", n_genes=20, variant="nope")
    assert not (tmp_path / "root").exists()


def test_demo_colon_name_resolves_to_that_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("PERTURBKIT_DEMO_ROOT", str(tmp_path))
    world = resolve_data_dir("demo:divergent", demo_genes=30)
    assert world == tmp_path / f"divergent_genes-30_seed-0_v{GENERATOR_VERSION}"
    assert resolve_data_dir("demo", demo_genes=30).name.startswith(f"{DEFAULT_VARIANT}_")
    assert load("demo:divergent", demo_genes=30).n_genes == 30
    with pytest.raises(UnknownVariantError, match="'nope'"):
        load("demo:nope", demo_genes=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([world.name, f"{DEFAULT_VARIANT}_genes-30_seed-0_v{GENERATOR_VERSION}"])


def test_cli_demo_variant_and_list(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "perturbkit", "demo", *args], capture_output=True, text=True)

    listed = cli("--list")
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == list_variants()
    made = cli("--variant", "fewcells", "--genes", "20", "--root", str(tmp_path))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(tmp_path / f"fewcells_genes-20_seed-0_v{GENERATOR_VERSION}")
    bad = cli("--variant", "nope", "--genes", "20", "--root", str(tmp_path / "bad"))
    assert bad.returncode != 0 and "unknown demo variant 'nope'" in bad.stderr + bad.stdout
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_full_world_matches_documented_numbers(tmp_path, train):
    world = demo_dir(tmp_path, seed=0)
    assert world.name == f"{DEFAULT_VARIANT}_genes-{len(gene_names())}_seed-0_v{GENERATOR_VERSION}"
    full_train = pd.read_parquet(world / "de_train.parquet")
    full_truth = pd.read_parquet(world / "test_truth.parquet")
    assert full_train.shape == (614, len(OBS_COLUMNS) + len(gene_names()))
    assert _genes(full_train) == list(gene_names())

    generated = full_train.groupby("cell_type")[list(gene_names())].mean()
    real = celltype_means()
    for cell_type in CELL_TYPES:
        assert np.corrcoef(generated.loc[cell_type], real[cell_type])[0, 1] > 0.9999

    table = calibration(world)["generated"]
    documented = {"test zeros": 1.638, "test compound_mean": 1.556, "test celltype_mean": 2.470, "NK per-gene std r": 0.747}
    assert table[list(documented)].to_dict() == pytest.approx(documented, abs=0.002)
    assert table["celltype means max |diff|"] < 1e-4

    small_genes = _genes(train)
    np.testing.assert_allclose(full_train[small_genes].to_numpy(), train[small_genes].to_numpy(), rtol=1e-5, atol=1e-6)


def test_demo_help_explains_every_option():
    import argparse

    from perturbkit.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [a for a in commands.choices["demo"]._actions if not isinstance(a, argparse._HelpAction)]
    assert {a.dest for a in options} == {"genes", "world_seed", "root", "variant", "list"}
    for action in options:
        assert action.help and len(action.help) > 10, f"demo {action.option_strings}: no help"
    assert all(f"{a.option_strings[0]}" in commands.choices["demo"].format_help() for a in options)
