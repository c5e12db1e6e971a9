"""The generative model of the demo worlds: signed -log10 p of every (cell type, compound, gene).

In t-statistic space, for cell type k, compound c, gene g (docs/demo.md explains every term)::

    a[k, c] = gain_k * potency_c * sqrt(cells[k, c])
    t = a[k, c] * (G[k, g] + w_g * (0.3 P[k, c, g] + 0.15 U[c, g])) + sqrt(1 + (interaction_k * a[k, c])**2) * e

then ``y = sign(t) * -log10(2 Phi(-|t|))``. Gene-level randomness is drawn for all 18,211 genes and
then subset, and each model component has its own random stream.
"""

from __future__ import annotations

import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from perturbkit.data.demo.variants import Variant, cell_response, get_variant, list_variants
from perturbkit.data.layout import (
    CELL_TYPES,
    LYMPHOID_CELL_TYPES,
    TEST_CELL_TYPES,
    celltype_means,
    compounds,
    gene_names,
    leaderboard_split,
    test_layout,
    train_layout,
)
from perturbkit.transforms import signed_log10_p, signed_log10_p_and_slope, z_from_signed_log10_p

# The gated programs' sign per cell type: B cells express theirs where the compound's gate score is
# positive, Myeloid cells where it is negative, so each is specific to one of them.
_GATE_SIGN = {"B cells": 1.0, "Myeloid cells": -1.0}


def _gated_program(seed: int, cell_type: str, latent: np.ndarray, n_all_genes: int, gene_idx: np.ndarray) -> np.ndarray:
    """(compound, gene) response of the program only ``cell_type`` expresses: its own heavy-tailed gene
    loadings times max(0, +-latent @ u), u one unit direction of the compound latent shared by B and
    Myeloid. The lymphoid responses reveal the latent linearly, so the program is a rectified (non-linear)
    function of them, present in one of the two cell types at most."""
    direction = _rng(seed, "gate direction").standard_normal(latent.shape[1]).astype(np.float32)
    direction /= np.linalg.norm(direction)
    gate = np.maximum(0.0, _GATE_SIGN[cell_type] * (latent @ direction)).astype(np.float32)
    loadings = _heavy_tailed(_rng(seed, f"gated program {cell_type}"), (1, n_all_genes))[:, gene_idx]
    return gate[:, None] * loadings


PROGRAM_WEIGHT = 0.3  # weight of the low-rank program response in a compound's effect
SIGNATURE_WEIGHT = 0.15  # weight of its own gene signature, shared by all cell types
RESPONSIVENESS_FLOOR = 0.8  # response of a gene whose real lymphoid means are zero, in t units
CALIBRATION_STEPS = 8


def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent stream per model component, so changing one never shifts the others."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _heavy_tailed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Laplace draws: most genes barely loaded, a few strongly (kurtosis 6)."""
    return rng.laplace(scale=math.sqrt(0.5), size=shape).astype(np.float32)


def _random_rotation(rng: np.random.Generator, size: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    return (q * np.sign(np.diag(r))).astype(np.float32)



def world_compounds() -> pd.DataFrame:
    """The compounds that occur in train or test (the DMSO vehicle in compounds() does not)."""
    used = set(train_layout()["sm_name"]) | set(test_layout()["sm_name"])
    return compounds().loc[lambda table: table["sm_name"].isin(used)].reset_index(drop=True)


def _compound_latent(variant: Variant, smiles: pd.Series, seed: int) -> np.ndarray:
    """Program latent per compound: a fingerprint projection (analogues alike) plus its own part."""
    from perturbkit.chem import morgan_fingerprints  # RDKit only when a world is generated

    fingerprints = morgan_fingerprints(smiles).astype(np.float32)
    centred = fingerprints - fingerprints.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    # Streams are drawn at a fixed width, so changing a variant's rank keeps its leading programs.
    width = max(get_variant(name).n_programs for name in list_variants())
    projection = _rng(seed, "chemistry").standard_normal((fingerprints.shape[1], width), dtype=np.float32)
    idiosyncratic = _rng(seed, "idiosyncratic").standard_normal((len(smiles), width), dtype=np.float32)
    latent = math.sqrt(variant.chemistry_share) * (centred @ projection)
    latent += math.sqrt(1 - variant.chemistry_share) * idiosyncratic
    return latent[:, : variant.n_programs]


def _gene_responsiveness(gene_idx: np.ndarray) -> np.ndarray:
    """How strongly each gene responds to compounds, mean 1 over all genes.

    The RMS over the lymphoid cell types of the t statistic of its real mean, plus a floor: genes
    that move on average also move most from compound to compound (on real data the per-gene std
    over the NK rows correlates at 0.9 with the NK mean's magnitude).
    """
    t_means = z_from_signed_log10_p(celltype_means()[list(LYMPHOID_CELL_TYPES)].to_numpy())
    responsiveness = np.sqrt((t_means**2).mean(axis=1)) + RESPONSIVENESS_FLOOR
    return (responsiveness / responsiveness.mean()).astype(np.float32)[gene_idx]


def _potency(variant: Variant, panel: np.ndarray, seed: int) -> np.ndarray:
    """Lognormal potency; a few compounds are ``strong_factor`` stronger, far more of them in the panel."""
    rng = _rng(seed, "potency")
    potency = np.exp(variant.potency_spread * rng.standard_normal(len(panel)))
    for members, share in ((np.flatnonzero(panel), variant.panel_strong_share), (np.flatnonzero(~panel), variant.strong_share)):
        potency[rng.permutation(members)[: round(share * len(members))]] *= variant.strong_factor
    return potency


def _favour_private(variant: Variant, panel: np.ndarray, private: np.ndarray, potency: np.ndarray, cells: np.ndarray) -> None:
    """Deal the test compounds' strengths again, in place, the larger ones preferentially to Kaggle's private compounds.

    A test compound's B/Myeloid strength is potency x sqrt(cells). The (potency, cells) pairs are
    dealt, strongest first, in the order of log strength (in units of its std over the test
    compounds, so that the lead means the same in every variant) plus ``private_lead`` for private
    compounds: the same strengths, but Kaggle's private rows the harder ones, as on Kaggle. A lead
    of 0 deals every pair back to its compound.
    """
    test = np.flatnonzero(~panel)
    log_strength = np.log(potency[test]) + 0.5 * np.log(cells[CELL_TYPES.index(TEST_CELL_TYPES[0]), test])
    by_strength = test[np.argsort(log_strength, kind="stable")]
    by_key = test[np.argsort(log_strength / log_strength.std() + variant.private_lead * private[test], kind="stable")]
    potency[by_key], cells[:, by_key] = potency[by_strength], cells[:, by_strength]


def _cells_per_well(variant: Variant, panel: np.ndarray, seed: int) -> np.ndarray:
    """Relative cells in each (cell type, compound) well: lymphoid 1; B/Myeloid ``bm_cells`` x survival.

    A compound's toxicity (exponential, mean 1) leaves a fraction exp(-toxicity x tox) of the
    B/Myeloid cells; the panel compounds were profiled in B and Myeloid cells because their wells
    kept them, so they survive whole.
    """
    tox = _rng(seed, "toxicity").exponential(size=len(panel))
    survival = np.where(panel, 1.0, np.exp(-variant.toxicity * tox))
    cells = np.ones((len(CELL_TYPES), len(panel)))
    for k, cell_type in enumerate(CELL_TYPES):
        if cell_type in TEST_CELL_TYPES:
            cells[k] = variant.bm_cells * survival
    return cells


def simulate(gene_idx: np.ndarray, seed: int, variant: Variant) -> np.ndarray:
    """Signed -log10 p of every (cell type, compound) pair: array (cell type, compound, gene), float32.

    Gene-level randomness is drawn for all genes and then subset, so a gene's values do not depend
    on which other genes are in the world.
    """
    compound_table = world_compounds()
    n_compounds, n_all_genes = len(compound_table), len(gene_names())
    train = train_layout()
    panel = compound_table["sm_name"].isin(train.loc[train["cell_type"].isin(TEST_CELL_TYPES), "sm_name"]).to_numpy()
    split = leaderboard_split()

    latent = _compound_latent(variant, compound_table["SMILES"], seed)
    private = compound_table["sm_name"].isin(split.loc[split["split"] == "private", "sm_name"]).to_numpy()
    potency = _potency(variant, panel, seed)
    cells = _cells_per_well(variant, panel, seed)
    _favour_private(variant, panel, private, potency, cells)

    program_scale = np.arange(1, variant.n_programs + 1, dtype=np.float32) ** -variant.program_decay
    program_scale /= np.linalg.norm(program_scale)
    shared_loadings = _heavy_tailed(_rng(seed, "loadings"), (variant.n_programs, n_all_genes))[:, gene_idx]
    signature = _heavy_tailed(_rng(seed, "signature"), (n_compounds, n_all_genes))[:, gene_idx]
    responsiveness = _gene_responsiveness(gene_idx)
    real_means = celltype_means().to_numpy(dtype=np.float32)[gene_idx]
    # celltype_means() are de_train's per-cell-type means, so the generic response is fitted on the
    # training rows alone: the shipped means then say nothing about the hidden test rows.
    compound_row = {name: c for c, name in enumerate(compound_table["sm_name"])}
    calibration_rows = [
        train.loc[train["cell_type"] == cell_type, "sm_name"].map(compound_row).to_numpy() for cell_type in CELL_TYPES
    ]

    def cell_type_values(k: int) -> np.ndarray:
        cell_type = CELL_TYPES[k]
        response = cell_response(variant, cell_type)
        rng = _rng(seed, f"cell type {cell_type}")
        own_loadings = _heavy_tailed(rng, (variant.n_programs, n_all_genes))[:, gene_idx]
        agreement = response.loading_agreement
        loadings = agreement * shared_loadings + math.sqrt(1 - agreement**2) * own_loadings
        # A rotation of the same compound latent: the cell type's mix is learnable from shared compounds.
        agreement = response.program_agreement
        rotation = _random_rotation(rng, variant.n_programs)
        mix = agreement * latent + math.sqrt(1 - agreement**2) * (latent @ rotation)
        # Effects grow with potency and, as t statistics do, with the square root of the cells measured.
        effect_scale = (response.gain * potency * np.sqrt(cells[k])).astype(np.float32)[:, None]
        activation = mix * (PROGRAM_WEIGHT * program_scale)
        if response.saturation > 0:
            # Each program levels off as the compound's effect grows: a tanh in t units, so the map
            # from the (linear) lymphoid response differs between weak and strong compounds.
            activation = response.saturation * np.tanh(activation * effect_scale / response.saturation) / effect_scale
        t_value = activation @ loadings
        t_value += SIGNATURE_WEIGHT * signature
        if response.gated > 0:
            t_value += response.gated * _gated_program(seed, cell_type, latent, n_all_genes, gene_idx)
        t_value *= responsiveness
        t_value *= effect_scale
        # Measurement noise (the null t is N(0, 1)) and the unpredictable compound x cell-type
        # interaction are independent normals, so one draw with the summed variance serves both.
        residual = rng.standard_normal((n_compounds, n_all_genes), dtype=np.float32)[:, gene_idx]
        residual *= np.sqrt(1 + (response.interaction * effect_scale) ** 2)
        t_value += residual
        return _add_generic_response(t_value, effect_scale[:, 0], real_means[:, k], calibration_rows[k])

    # Cell types are independent given the shared draws; numpy releases the GIL, so threads overlap.
    with ThreadPoolExecutor(max_workers=min(len(CELL_TYPES), os.cpu_count() or 1)) as pool:
        return np.stack(list(pool.map(cell_type_values, range(len(CELL_TYPES)))))


def _add_generic_response(
    t_value: np.ndarray, strength: np.ndarray, target_mean: np.ndarray, calibration_rows: np.ndarray
) -> np.ndarray:
    """Signed -log10 p of ``t_value + strength x G``, the generic response G chosen per gene so that
    the calibration rows' mean is on target.

    Every compound triggers the cell type's generic response G in proportion to its effect scale, so
    a strong panel sets G and a weak compound shows little of it. Newton steps per gene from the
    inverse transform of the target: the mean is monotone in G, so they converge quickly.
    """
    calibration_t, weight = t_value[calibration_rows], strength[calibration_rows, None]
    generic = z_from_signed_log10_p(target_mean).astype(np.float32) / np.float32(weight.mean())
    for _ in range(CALIBRATION_STEPS):
        value, slope = signed_log10_p_and_slope(calibration_t + weight * generic)
        generic += (target_mean - value.mean(axis=0)) / (weight * slope).mean(axis=0)
    return signed_log10_p(t_value + strength[:, None] * generic)


