"""Semi-synthetic demo worlds on the real competition layout, in several structurally different variants.

The real target values cannot be downloaded, so :func:`generate_demo` writes Kaggle's file set for
the real 614 training pairs, 255 test pairs and 18,211 genes -- ``de_train.parquet``,
``id_map.csv`` (Kaggle's own bytes), ``sample_submission.csv`` -- plus ``test_truth.parquet``, the
hidden truth of the test rows drawn from the same model, ``public_test.csv``, the ids of the rows
Kaggle's public leaderboard scores (the 100 rows of the 50 public compounds of Kaggle's own split,
:func:`perturbkit.data.layout.leaderboard_split`; the other 155 are private), and ``world.json``,
which declares the folder a demo world. :mod:`perturbkit.data.hidden` reads the truth and the public rows.
:func:`demo_dir` caches worlds on disk (``<variant>_genes-<n>_seed-<s>_v<GENERATOR_VERSION>``); ``--data demo:NAME`` loads variant NAME.
A toolkit tuned on one generator learns that generator, so :func:`list_variants` names worlds that
differ in *how* a compound's lymphoid response becomes its B/Myeloid response, all calibrated to
the same public facts (:func:`calibration`).

Generative model
----------------
Everything happens in t-statistic space; values are then the signed -log10 of the two-sided normal
p-value, ``y = sign(t) * -log10(2 Phi(-|t|))`` (``log_ndtr`` in the far tail), so large t become
very large y: heavy tails, as in limma output. For cell type k, compound c, gene g::

    a[k, c] = gain_k * potency_c * sqrt(cells[k, c])
    t = a[k, c] * (G[k, g] + w_g * (0.3 P[k, c, g] + 0.15 U[c, g])) + sqrt(1 + (interaction_k * a[k, c])**2) * e

* a[k, c], the size of the compound's effect: t statistics grow with the square root of the cells
  a well kept. Lymphoid wells count 1; B/Myeloid wells ``bm_cells`` x exp(-toxicity x tox_c),
  tox_c ~ Exp(1), except for the 17 panel compounds (their wells kept their cells: that is why
  they could be profiled in B and Myeloid cells for training).
* potency_c: lognormal (sigma ``potency_spread``); a few compounds are ``strong_factor`` (4x)
  stronger: ``strong_share`` of the test compounds, but ``panel_strong_share`` (half, by default)
  of the 17 panel compounds -- the positive controls and potent inhibitors profiled in B and
  Myeloid cells for training are a strong panel, unlike a typical test compound.
* Kaggle's private rows are the harder ones: on Kaggle the same submissions scored about
  0.55-0.62 on the public board and 0.72-0.84 on the private one. So the test compounds' B/Myeloid
  strengths (potency_c x sqrt(cells), drawn as above) are dealt again, strongest first, in the
  order of log strength in units of its std plus ``private_lead`` (1.25 in every variant) for the
  79 private compounds of Kaggle's split: the same strengths, the larger ones preferentially
  private. The lead is calibrated so that on the default world at 2,000 genes ``transfer_ridge``'s
  private / public MRRMSE is 1.33 (zeros' 1.44); with a lead of 0 the draw is generator 4's,
  where seed 0's two strongest test compounds happened to be public (zeros' ratio 0.71).
* G[k]: the cell type's generic response (stress, shared by all compounds in proportion to a[k, c]).
  Per gene, Newton steps from the inverse transform of ``celltype_means()`` make the mean over the
  cell type's *training* rows equal ``celltype_means()`` (de_train's per-cell-type means; fitted on
  training rows only, so the shipped means say nothing about test rows). For B and Myeloid cells
  the panel sets G; a weak test compound shows little of it, so the per-cell-type mean overshoots
  test rows, as on the real private test. For NK cells, genes that move on average also move most
  between compounds, as in the real data.
* w_g, the gene's responsiveness: RMS over the lymphoid cell types of the t statistic of its real
  mean, plus 0.8, scaled to mean 1. Compound-specific effects sit on the genes that respond.
* Programs: P[k, c] = (mix_k(z_c) * s) @ L_k, ``n_programs`` programs with strengths s_r proportional
  to r**-``program_decay`` and heavy-tailed (Laplace) gene loadings L_k = lambda_k L_shared +
  sqrt(1 - lambda_k**2) L_own,k. The cell type's mix is mix_k(z) = rho_k z + sqrt(1 - rho_k**2) z Q_k
  with a random rotation Q_k: a fixed linear map of the same latent, learnable from compounds seen in
  both cell types. Lymphoid rho/lambda 0.9 (CD8+ gain 0.5: noise-dominated like the real CD8+);
  B rho = lambda = ``carry_over``, Myeloid 0.1 less.
* Compound latent z_c = sqrt(``chemistry_share``) x (unit-length centred Morgan fingerprint @ random
  projection) + sqrt(1 - share) x idiosyncratic normal: analogues respond alike.
* U[c]: the compound's own Laplace gene signature, shared by all cell types.
* e ~ N(0, 1): the null noise of a t statistic, plus a compound x cell-type interaction
  (``interaction_k``: 0.35 lymphoid, ``bm_interaction`` for B/Myeloid) that grows with the effect
  and no other cell type reveals (one draw carries both variances).

Gene-level randomness is drawn for all 18,211 genes and then subset, so a gene's values are the
same in a small world (``n_genes``) as in the full one; each model component has its own stream.

Variants
--------
``default``
    carry_over 0.8, B/Myeloid interaction 0.5, 10 programs (decay 0.5), chemistry share 0.6, no
    cell loss. The middle of the road: the lymphoid response carries over to B/Myeloid through a
    partly learnable map; the panel is strong.
``carryover``
    carry_over 0.95, interaction 0.2, 6 programs (decay 0.8), chemistry share 0.85. A compound acts
    through the same few pathways in every blood cell type (a kinase inhibitor hits its kinase
    wherever it is expressed), so its B/Myeloid response is nearly a linear map of its T/NK response,
    and close analogues act alike: the cross-cell-type map pays most here.
``divergent``
    carry_over 0.5, interaction 0.8, 24 programs (decay 0.2: high rank), chemistry share 0.2,
    B/Myeloid gain 0.8. Myeloid and B cells express different targets and pathways than T/NK cells
    (monocytes respond to TLR/NF-kB modulators T cells ignore), so much of their response is
    cell-type specific and high-rank, and structure says little: the map helps least.
``fewcells``
    carry_over 0.85, interaction 0.4, B/Myeloid gain 1.3 but half the cells per well, toxicity 1.0,
    strong compounds 8% of test compounds and 20% of the panel. The real B and Myeloid populations
    are small in PBMCs, and toxic compounds kill them, so many test wells hold few cells and their
    t statistics are weak however strong the compound is in T/NK cells, while the panel (whose
    wells kept their cells) is measured at full strength. Here the test rows are weak because of
    cell loss more than because the panel is special, and a test row's strength is less predictable
    from its lymphoid rows.
``nonlinear``
    carry_over 0.85, interaction 0.35, B/Myeloid gain 1.25, saturation 0.1, gated weight 0.5. The map
    from the lymphoid to the B/Myeloid response is not linear, in two ways. Saturation: each B/Myeloid
    program activation h (the compound's mix times its effect scale, in t units) becomes
    0.1 tanh(h / 0.1), so a strong compound's programs level off while a weak one's stay proportional
    (receptor occupancy, a pathway already fully on); the strong panel teaches a flatter map than a
    typical test compound follows. Gating: B cells express a program of their own (own heavy-tailed
    loadings) with weight 0.5 max(0, z_c . u), Myeloid cells one with 0.5 max(0, -z_c . u), u a unit
    direction of the compound latent: a program only B or only Myeloid cells express, switched on by
    what the compound does (and what its lymphoid response reveals linearly). Lymphoid cell types are
    as in ``default``.

Calibration (seed 0, all 18,211 genes; :func:`calibration`)
------------------------------------------------------------
MRRMSE on the hidden test (B/Myeloid rows) of predicting zeros, the compound mean (the compound's
training rows) and the cell-type mean (the cell type's training rows), next to the published figures
on the real private test; the per-gene std over the 146 NK training rows next to the real one
(``nk_per_gene_std``), with the Pearson r across genes. The per-cell-type training means equal
``celltype_means()`` in every variant (largest per-gene difference 3e-6 for the default). The
figures are over all 255 test rows; the last row is zeros' MRRMSE on Kaggle's 155 private rows over
its 100 public ones (real: the ratio of the same submissions' private and public scores). On the
private rows alone (the real figures' rows) the harder rows show: zeros 1.867 / 1.575 / 2.027 / 1.618 / 1.828,
compound mean 0.937 / 0.889 / 0.967 / 0.946 / 0.945 x zeros, cell-type mean 1.32 / 1.38 / 1.29 / 1.37 /
1.31 x zeros
(generator 4, at 2,000 genes: zeros 1.40 / 1.24 / 1.49 / 1.13, cell-type mean 1.58 / 1.65 / 1.53 /
1.75 x zeros): zeros above the real 1.57 and the cell-type mean's overshoot below the real 1.59 x.

============================ ======= ========= ========= ======== ========= =====
figure                       default carryover divergent fewcells nonlinear real
============================ ======= ========= ========= ======== ========= =====
test zeros                   1.638   1.391     1.781     1.579    1.595     1.57
test compound mean           1.556   1.263     1.739     1.518    1.526     1.47
test cell-type mean          2.470   2.219     2.595     2.409    2.399     2.50
compound mean / zeros        0.950   0.908     0.976     0.961    0.957     0.94
cell-type mean / zeros       1.508   1.596     1.457     1.526    1.504     1.59
NK per-gene std mean         2.04    1.96      2.01      2.00     2.04      2.03
NK per-gene std median       1.50    1.44      1.49      1.50     1.50      1.40
NK per-gene std p90          4.01    3.83      3.97      3.89     4.01      4.56
NK per-gene std p99          7.22    6.95      6.95      6.84     7.22      6.02
NK per-gene std max          19.3    15.8      17.5      19.2     19.3      14.1
NK per-gene std r with real  0.747   0.744     0.776     0.738    0.747     1
zeros private / public       1.457   1.425     1.447     1.065    1.483     ~1.3
============================ ======= ========= ========= ======== ========= =====

The generated NK spread is a little more heavy-tailed than the real one at the top (p99). Other
seeds move the test figures through which compounds are strong: at 2,000 genes, seeds 1-2 of the
default gave (generator 4) zeros 1.42 / 1.16, compound mean 0.965 / 0.985 x zeros and cell-type mean 1.63 /
1.88 x zeros.

Learnability (measured outside this module on generator 4; the real best method reaches 0.82 x zeros): a ridge
from a compound's mean lymphoid profile (or its four lymphoid profiles, a missing CD8+ row filled
with their mean) to its B / Myeloid profile, fitted per cell type on the 17 panel compounds with
its strength chosen by leave-one-out, scores on the hidden test, as a ratio to zeros: default
0.856 / 0.856, carryover 0.766 / 0.772, divergent 0.895 / 0.893, fewcells 0.921 / 0.890 (all
genes); at 2,000 genes 0.864 / 0.862, 0.773 / 0.777, 0.903 / 0.898, 0.940 / 0.903.

Value scale of the default de_train: std 2.42, max |y| 251, 99.9th percentile of |y| 33; row RMS
median 0.80, 99th percentile 13, max 20. Full generation takes 5-12 s and under 1 GB on two cores.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from perturbkit.data.hidden import PUBLIC_FILE, TRUTH_FILE, WORLD_FILE
from perturbkit.data.layout import (
    CELL_TYPES,
    LYMPHOID_CELL_TYPES,
    TEST_CELL_TYPES,
    celltype_means,
    compounds,
    gene_names,
    leaderboard_split,
    nk_per_gene_std,
    public_test_rows,
    test_layout,
    train_layout,
)
from perturbkit.data.wide import wide_table
from perturbkit.errors import ConfigError, PerturbkitError
from perturbkit.transforms import signed_log10_p, signed_log10_p_and_slope, z_from_signed_log10_p

GENERATOR_VERSION = 5  # 5: private test compounds the more potent (4: Kaggle's split; 3: a random quarter public)
DEFAULT_VARIANT = "default"
# Kaggle's private rows scored ~1.3x its public ones; this head start (in std of log strength) gives
# the default world that ratio for transfer_ridge (module docstring).
PRIVATE_LEAD = 1.25
DEMO_FILES: tuple[str, ...] = ("de_train.parquet", "id_map.csv", "sample_submission.csv", TRUTH_FILE, PUBLIC_FILE, WORLD_FILE)


class UnknownVariantError(PerturbkitError, ValueError):
    """A demo variant name that :func:`list_variants` does not know."""


@dataclass(frozen=True)
class Variant:
    """The structural parameters of one demo world (see the module docstring for the model)."""

    name: str
    summary: str  # one line for ``perturbkit demo --list``
    carry_over: float  # correlation of B/Myeloid program mix and gene loadings with the lymphoid ones
    bm_interaction: float  # weight of the B/Myeloid x compound effect no other cell type reveals
    n_programs: int = 10  # rank of the program response shared across cell types
    program_decay: float = 0.5  # program strengths fall as r**-decay: higher = lower effective rank
    chemistry_share: float = 0.6  # share of a compound's latent variance explained by its fingerprint
    bm_gain: float = 1.0  # scale of B/Myeloid compound effects (before cells per well)
    bm_cells: float = 1.0  # cells in a B/Myeloid well relative to a T-cell well
    toxicity: float = 0.0  # how strongly a compound's toxicity depletes B/Myeloid wells (0: not at all)
    potency_spread: float = 0.5  # sigma of log potency
    strong_factor: float = 4.0  # potency of a strong compound relative to a typical one
    strong_share: float = 0.04  # share of strong compounds among the test compounds
    panel_strong_share: float = 0.5  # share of strong compounds among the 17 B/Myeloid training compounds
    bm_saturation: float = 0.0  # > 0: B/Myeloid program activations level off at this many t units (tanh); 0: linear
    bm_gated: float = 0.0  # weight of a program only B (or only Myeloid) cells express, gated by the compound latent
    private_lead: float = PRIVATE_LEAD  # head start of Kaggle's private test compounds, in std of log strength (0: none)


_VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant(
            name="default",
            summary="moderate carry-over of the lymphoid response to B/Myeloid, a strong training panel",
            carry_over=0.8,
            bm_interaction=0.5,
        ),
        Variant(
            name="carryover",
            summary="B/Myeloid responses are a near-linear map of the lymphoid ones; low rank, chemistry-driven",
            carry_over=0.95,
            bm_interaction=0.2,
            n_programs=6,
            program_decay=0.8,
            chemistry_share=0.85,
        ),
        Variant(
            name="divergent",
            summary="weak carry-over, high-rank cell-type interaction, little chemistry signal",
            carry_over=0.5,
            bm_interaction=0.8,
            n_programs=24,
            program_decay=0.2,
            chemistry_share=0.2,
            bm_gain=0.8,
        ),
        Variant(
            name="fewcells",
            summary="t statistics scale with cells per well: B/Myeloid wells are small and toxic compounds empty them",
            carry_over=0.85,
            bm_interaction=0.4,
            bm_gain=1.3,
            bm_cells=0.5,
            toxicity=1.0,
            strong_share=0.08,
            panel_strong_share=0.2,
        ),
        Variant(
            name="nonlinear",
            summary="B/Myeloid programs saturate with effect size, and each has a program gated by the compound",
            carry_over=0.85,
            bm_interaction=0.35,
            bm_gain=1.25,
            bm_saturation=0.1,
            bm_gated=0.5,
        ),
    )
}


def list_variants() -> list[str]:
    """The names of the demo variants, the default first."""
    return list(_VARIANTS)


def get_variant(name: str) -> Variant:
    """The parameters of demo variant ``name``; an unknown name raises an error listing the known ones."""
    try:
        return _VARIANTS[name]
    except KeyError:
        raise UnknownVariantError(f"unknown demo variant {name!r}; known: {list_variants()}") from None


@dataclass(frozen=True)
class _CellResponse:
    gain: float  # scale of every compound effect in this cell type, in t units
    program_agreement: float  # correlation of its program mix with the shared (lymphoid) mix
    loading_agreement: float  # correlation of its gene loadings with the shared loadings
    interaction: float  # weight of the compound x cell-type effect no other cell type reveals
    saturation: float = 0.0  # level (t units) at which program activations saturate; 0: linear
    gated: float = 0.0  # weight of the program only this cell type expresses (see _gated_program)


# Lymphoid cell types are alike in every variant; CD8+ is weak (noise-dominated like the real CD8+).
_LYMPHOID_RESPONSES: dict[str, _CellResponse] = {
    "NK cells": _CellResponse(gain=1.0, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
    "T cells CD4+": _CellResponse(gain=0.9, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
    "T cells CD8+": _CellResponse(gain=0.5, program_agreement=0.85, loading_agreement=0.9, interaction=0.35),
    "T regulatory cells": _CellResponse(gain=1.0, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
}
# Myeloid cells are further from lymphocytes than B cells are.
_MYELOID_CARRY_OVER_LOSS = 0.1


def _cell_response(variant: Variant, cell_type: str) -> _CellResponse:
    if cell_type in _LYMPHOID_RESPONSES:
        return _LYMPHOID_RESPONSES[cell_type]
    agreement = variant.carry_over - (_MYELOID_CARRY_OVER_LOSS if cell_type == "Myeloid cells" else 0.0)
    return _CellResponse(variant.bm_gain, agreement, agreement, variant.bm_interaction, variant.bm_saturation, variant.bm_gated)


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


def check_gene_count(n_genes: int | None) -> int | None:
    """``n_genes`` if a demo world can have that many genes (None: all of them); else a :class:`ConfigError`."""
    total = len(gene_names())
    if n_genes is not None and not 1 <= n_genes <= total:
        raise ConfigError(f"{n_genes} genes: a demo world has between 1 and {total} genes")
    return n_genes


def _gene_indices(n_genes: int | None) -> np.ndarray:
    total = len(gene_names())
    if check_gene_count(n_genes) is None:
        return np.arange(total)
    # Evenly spaced over the alphabetical list, so small worlds keep alphabetical order.
    return np.linspace(0, total - 1, n_genes).round().astype(int)


def _world_compounds() -> pd.DataFrame:
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
    width = max(v.n_programs for v in _VARIANTS.values())
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


def _simulate(gene_idx: np.ndarray, seed: int, variant: Variant) -> np.ndarray:
    """Signed -log10 p of every (cell type, compound) pair: array (cell type, compound, gene), float32.

    Gene-level randomness is drawn for all genes and then subset, so a gene's values do not depend
    on which other genes are in the world.
    """
    compound_table = _world_compounds()
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
        response = _cell_response(variant, cell_type)
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


def _pair_rows(
    layout: pd.DataFrame, cell_index: dict[str, int], compound_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    return (
        layout["cell_type"].map(cell_index).to_numpy(),
        layout["sm_name"].map(compound_index).to_numpy(),
    )


def generate_demo(
    out_dir: str | os.PathLike, n_genes: int | None = None, seed: int = 0, *, variant: str = DEFAULT_VARIANT
) -> Path:
    """Write Kaggle's file set for a demo world into ``out_dir`` (created or overwritten) and return it.

    Files: ``de_train.parquet`` (the 614 real training pairs), ``id_map.csv`` (Kaggle's own),
    ``sample_submission.csv`` (zeros), ``test_truth.parquet`` (the hidden truth of the 255 test
    rows, float32), ``public_test.csv`` (the ids of the public-leaderboard rows: the 100 test rows of
    the 50 public compounds of Kaggle's split; the other 155 are the private rows) and ``world.json``
    (the world's parameters: it declares the folder a demo world). ``n_genes`` keeps that many evenly spaced genes (alphabetical order) instead of
    all 18,211; ``variant`` names the world's structure (:func:`list_variants`). The same
    ``(variant, n_genes, seed)`` always gives the same values. An unknown variant writes nothing.
    """
    parameters = get_variant(variant)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gene_idx = _gene_indices(n_genes)
    genes = [gene_names()[i] for i in gene_idx]
    values = _simulate(gene_idx, seed, parameters)

    cell_index = {cell_type: k for k, cell_type in enumerate(CELL_TYPES)}
    compound_index = {name: c for c, name in enumerate(_world_compounds()["sm_name"])}
    train, test = train_layout(), test_layout()
    train_values = values[_pair_rows(train, cell_index, compound_index)]
    test_values = values[_pair_rows(test, cell_index, compound_index)]

    _write_table(train, train_values.astype(np.float64), genes, out_dir / "de_train.parquet")
    _write_table(test, test_values, genes, out_dir / TRUTH_FILE)
    (out_dir / "id_map.csv").write_bytes(
        resources.files("perturbkit.data").joinpath("layout", "id_map.csv").read_bytes()
    )
    _write_zero_submission(test["id"], genes, out_dir / "sample_submission.csv")
    test.loc[public_test_rows(test), ["id"]].to_csv(out_dir / PUBLIC_FILE, index=False)
    world = {"variant": variant, "n_genes": len(genes), "seed": seed, "generator_version": GENERATOR_VERSION}
    (out_dir / WORLD_FILE).write_text(json.dumps(world, indent=2) + "\n")
    return out_dir


def _write_table(obs: pd.DataFrame, values: np.ndarray, genes: list[str], path: Path) -> None:
    table = wide_table(obs, genes, values, dtype=values.dtype)
    # With 18k float columns, dictionary pages and column statistics only cost write time.
    pq.write_table(table, path, use_dictionary=False, write_statistics=False)


def _write_zero_submission(ids: pd.Series, genes: list[str], path: Path) -> None:
    zeros = ",0.0" * len(genes)
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow(["id", *genes])
        fh.writelines(f"{i}{zeros}\n" for i in ids)


def _is_complete(world: Path) -> bool:
    return all((world / name).is_file() for name in DEMO_FILES)


def demo_dir(
    root: str | os.PathLike | None = None, n_genes: int | None = None, seed: int = 0, *, variant: str = DEFAULT_VARIANT
) -> Path:
    """The demo world for ``(variant, n_genes, seed)`` under ``root``, generated on first use.

    ``root`` defaults to ``$PERTURBKIT_DEMO_ROOT`` or ``data/demo``. The world is written to a
    temporary sibling and renamed into place, so an interrupted run never leaves a partial world.
    An unknown variant raises before anything is created.
    """
    get_variant(variant)
    root = Path(root if root is not None else os.environ.get("PERTURBKIT_DEMO_ROOT", "data/demo"))
    n_resolved = len(_gene_indices(n_genes))
    world = root / f"{variant}_genes-{n_resolved}_seed-{seed}_v{GENERATOR_VERSION}"
    if _is_complete(world):
        return world
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{world.name}.{uuid.uuid4().hex}.partial"
    staging.mkdir()
    try:
        generate_demo(staging, n_genes=n_genes, seed=seed, variant=variant)
        try:
            os.replace(staging, world)
        except OSError as err:
            if not _is_complete(world):
                raise FileExistsError(f"{world} exists without all of {DEMO_FILES}; delete it to regenerate") from err
            # Another process finished the same world first; it is identical, so keep theirs.
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return world


REAL_TEST_SCORES: dict[str, float] = {"zeros": 1.57, "compound_mean": 1.47, "celltype_mean": 2.50}
"""Published MRRMSE on the real private test (B/Myeloid rows; openproblems' re-run, unclipped)."""
_QUANTILES = {"median": 50, "p90": 90, "p99": 99}


def _summary(std: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(std.mean()),
        **{name: float(np.percentile(std, q)) for name, q in _QUANTILES.items()},
        "max": float(std.max()),
    }


def calibration(world: str | os.PathLike) -> pd.DataFrame:
    """A demo world's figures next to the real ones: columns ``generated`` and ``real``.

    Rows: MRRMSE on the hidden test (``test_truth.parquet``) of predicting zeros, the compound mean
    (mean of the compound's training rows) and the cell-type mean (mean of the cell type's training
    rows), absolute and as a ratio to zeros; the largest per-gene difference between the training
    rows' per-cell-type means and ``celltype_means()`` (real: 0); the distribution of the per-gene
    std over the NK training rows and its Pearson r with the real one across genes (real: 1).
    """
    world = Path(world)
    train = pd.read_parquet(world / "de_train.parquet")
    truth = pd.read_parquet(world / "test_truth.parquet")
    genes = [c for c in train.columns if c in set(gene_names())]
    values = train[genes].to_numpy()
    target = truth[genes].to_numpy(dtype=np.float64)
    celltype_mean = pd.DataFrame(values).groupby(train["cell_type"].to_numpy()).mean()
    compound_mean = pd.DataFrame(values).groupby(train["sm_name"].to_numpy()).mean()
    predictions = {
        "zeros": np.zeros_like(target),
        "compound_mean": compound_mean.loc[truth["sm_name"]].to_numpy(),
        "celltype_mean": celltype_mean.loc[truth["cell_type"]].to_numpy(),
    }
    scores = {name: float(np.sqrt(((p - target) ** 2).mean(axis=1)).mean()) for name, p in predictions.items()}
    rows: dict[str, tuple[float, float]] = {}
    for name, score in scores.items():
        rows[f"test {name}"] = (score, REAL_TEST_SCORES[name])
    for name in ("compound_mean", "celltype_mean"):
        rows[f"test {name} / zeros"] = (scores[name] / scores["zeros"], REAL_TEST_SCORES[name] / REAL_TEST_SCORES["zeros"])
    real_means = celltype_means().loc[genes]
    difference = np.abs(celltype_mean.loc[list(real_means.columns)].to_numpy().T - real_means.to_numpy())
    rows["celltype means max |diff|"] = (float(difference.max()), 0.0)
    nk = values[(train["cell_type"] == "NK cells").to_numpy()]
    generated_std, real_std = nk.std(axis=0), nk_per_gene_std().loc[genes].to_numpy()
    for name, (ours, theirs) in zip(_summary(real_std), zip(_summary(generated_std).values(), _summary(real_std).values())):
        rows[f"NK per-gene std {name}"] = (ours, theirs)
    rows["NK per-gene std r"] = (float(np.corrcoef(generated_std, real_std)[0, 1]), 1.0)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["generated", "real"])
