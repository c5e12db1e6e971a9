"""Semi-synthetic demo world on the real competition layout.

The real target values cannot be downloaded, so :func:`generate_demo` writes Kaggle's file set for
the real 614 training pairs, 255 test pairs and 18,211 genes -- ``de_train.parquet``,
``id_map.csv`` (Kaggle's own bytes), ``sample_submission.csv`` -- plus ``test_truth.parquet``, the
hidden truth of the test rows drawn from the same model. :func:`demo_dir` caches worlds on disk.

Generative model
----------------
Everything happens in t-statistic space; values are then the signed -log10 of the two-sided normal
p-value, ``y = sign(t) * -log10(2 Phi(-|t|))`` (``log_ndtr`` in the far tail), so large t become
very large y: heavy tails, as in limma output. For cell type k, compound c, gene g::

    t = b[k, g] + gain_k * potency_c * (0.9 P[k, c, g] + 0.4 U[c, g])
        + sqrt(1 + (interaction_k * gain_k * potency_c)**2) * e[k, c, g]

* Compound latent z_c (10 programs) = sqrt(0.8) * (unit-length centred Morgan fingerprint @ random
  projection) + sqrt(0.2) * idiosyncratic normal. Two compounds' latents correlate at 0.8 x the
  cosine similarity of their centred fingerprints, so analogues (imatinib/masitinib,
  azacitidine/decitabine, the MEK inhibitors, ...) respond alike.
* Programs: P[k, c] = (mix_k(z_c) * s) @ L_k with strengths s_r proportional to r**-0.5 and
  heavy-tailed (Laplace) gene loadings L_k = lambda_k L_shared + sqrt(1 - lambda_k**2) L_own,k.
  The cell type's mix is mix_k(z) = rho_k z + sqrt(1 - rho_k**2) z Q_k with a random rotation Q_k:
  a fixed linear map of the same latent, so it is learnable from compounds seen in both cell types.
* U[c]: the compound's own Laplace gene signature, shared by all cell types.
* e ~ N(0, 1): the null noise of a t statistic, plus a compound x cell-type interaction that grows
  with potency and no other cell type reveals (one draw carries both variances).
* potency_c: 1.0 x lognormal(sigma 0.5); 5% of compounds (7 of 146) are 4x stronger.
* (gain, rho, lambda, interaction) per cell type: NK 1.0/0.9/0.9/0.35, CD4+ 0.9/0.9/0.9/0.35,
  Treg 1.0/0.9/0.9/0.35, CD8+ 0.5/0.85/0.9/0.35 (weak, so noise-dominated like the real CD8+),
  B 1.0/0.75/0.8/0.4, Myeloid 1.0/0.65/0.75/0.4 (own program mix and loadings: the domain shift).
* Baseline b[k, g]: per gene, the inverse transform of ``celltype_means()`` then 3 Newton steps
  so that the mean over the cell type's *training* rows equals ``celltype_means()``. Those are
  de_train's per-cell-type means, so fitting on training rows only keeps the shipped means from
  revealing anything about test rows. B and Myeloid baselines sit at t ~ 2-3, where the transform
  is steep: their compound effects and noise are amplified, which makes the test rows harder.

Gene-level randomness is drawn for all 18,211 genes and then subset, so a gene's values are the
same in a small world (``n_genes``) as in the full one; each model component has its own stream.

Measured (seed 0, all 18,211 genes)
-----------------------------------
Calibration, per-cell-type mean profile of the generated de_train vs ``celltype_means()`` (mean /
std, and Pearson r across genes):

=================== =========== =========== ========
cell type           generated   real        r
=================== =========== =========== ========
B cells             1.17 / 1.74 1.17 / 1.74 1.0000
Myeloid cells       1.18 / 2.14 1.18 / 2.14 1.0000
NK cells            0.41 / 0.61 0.41 / 0.61 1.0000
T cells CD4+        0.15 / 0.42 0.15 / 0.42 1.0000
T cells CD8+        0.03 / 0.17 0.03 / 0.17 1.0000
T regulatory cells  0.49 / 0.50 0.49 / 0.50 1.0000
=================== =========== =========== ========

(largest per-gene difference 9e-5). Over all 146 compounds, hidden test rows included, the mean
profiles still correlate with the real ones at r = 0.950 (B), 0.974 (Myeloid), 0.998 (CD8+) and
1.000 (other lymphoid).

Simple baselines, MRRMSE (mean over rows of the RMSE across genes) on ``test_truth``:

=============================== ===== ===== =======
prediction                      all   B     Myeloid
=============================== ===== ===== =======
zeros                           3.623 3.410 3.837
cell-type mean                  2.593 2.511 2.676
compound mean                   3.222 2.985 3.462
cell-type mean + compound dev.  2.384 2.282 2.486
noise-free world                1.612
=============================== ===== ===== =======

"cell-type mean" averages the training rows of the row's cell type; "compound mean" the
compound's training rows (all in other cell types); "compound dev." adds the compound's mean
deviation from the cell-type means over its training rows; "noise-free world" is the same world
regenerated with the residual term set to zero (measured outside this module), roughly what a
perfect model of the signal would score. On the lymphoid training rows, the first four computed
with the row left out score 1.624 / 1.531 / 1.599 / 1.509 (noise-free 0.981): the test rows are
harder. Seeds 1-3 give 3.33-3.99 (zeros), 2.28-2.97 (cell-type mean), 3.02-3.61 (compound mean)
and 2.18-2.78 (combined); the spread comes from which compounds are strong.

Value scale of de_train: std 2.60, max |y| 431, 99.9th percentile of |y| 28; row RMS median 1.25,
99th percentile 9.1, max 29. Full generation takes 3-5 s and under 1 GB on two cores.
"""

from __future__ import annotations

import csv
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
from scipy.special import log_ndtr, ndtr, ndtri_exp

from perturbkit.data.layout import CELL_TYPES, celltype_means, compounds, gene_names, test_layout, train_layout
from perturbkit.data.wide import wide_table
from perturbkit.features.chemistry import morgan_fingerprints

GENERATOR_VERSION = 1
DEMO_FILES: tuple[str, ...] = ("de_train.parquet", "id_map.csv", "sample_submission.csv", "test_truth.parquet")


@dataclass(frozen=True)
class _CellResponse:
    gain: float  # scale of every compound effect in this cell type, in t units
    program_agreement: float  # correlation of its program mix with the shared (lymphoid) mix
    loading_agreement: float  # correlation of its gene loadings with the shared loadings
    interaction: float  # weight of the compound x cell-type effect no other cell type reveals


_CELL_RESPONSES: dict[str, _CellResponse] = {
    "B cells": _CellResponse(gain=1.0, program_agreement=0.75, loading_agreement=0.8, interaction=0.4),
    "Myeloid cells": _CellResponse(gain=1.0, program_agreement=0.65, loading_agreement=0.75, interaction=0.4),
    "NK cells": _CellResponse(gain=1.0, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
    "T cells CD4+": _CellResponse(gain=0.9, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
    "T cells CD8+": _CellResponse(gain=0.5, program_agreement=0.85, loading_agreement=0.9, interaction=0.35),
    "T regulatory cells": _CellResponse(gain=1.0, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
}
N_PROGRAMS = 10
CHEMISTRY_SHARE = 0.8  # share of a compound's latent variance explained by its fingerprint
PROGRAM_WEIGHT = 0.9  # weight of the low-rank program response in a compound's effect
SIGNATURE_WEIGHT = 0.4  # weight of its own gene signature, shared by all cell types
POTENCY_MEDIAN = 1.0
POTENCY_SPREAD = 0.5  # sigma of log potency
STRONG_FRACTION = 0.05
STRONG_FACTOR = 4.0
CALIBRATION_STEPS = 3

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# Beyond this |t|, Phi(-|t|) is too small for float32 ndtr and log_ndtr takes over.
_FAR_TAIL = 10.0


def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent stream per model component, so changing one never shifts the others."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _heavy_tailed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Laplace draws: most genes barely loaded, a few strongly (kurtosis 6)."""
    return rng.laplace(scale=math.sqrt(0.5), size=shape).astype(np.float32)


def _random_rotation(rng: np.random.Generator, size: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((size, size)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def _log_normal_tail(magnitude: np.ndarray) -> np.ndarray:
    """log Phi(-magnitude): log(ndtr) is twice as fast as log_ndtr, which is kept for the far tail."""
    with np.errstate(divide="ignore"):  # ndtr underflows to 0 in the far tail, replaced below
        log_tail = np.log(ndtr(-magnitude))
    far = magnitude > _FAR_TAIL
    log_tail[far] = log_ndtr(-magnitude[far])
    return log_tail


def _signed_log10_p(t: np.ndarray, log_tail: np.ndarray | None = None) -> np.ndarray:
    """sign(t) * -log10 of the two-sided normal p-value of t; finite and heavy-tailed for huge |t|."""
    if log_tail is None:
        log_tail = _log_normal_tail(np.abs(t))
    return np.copysign(-(log_tail + _LN2) / _LN10, t)


def _signed_log10_p_and_slope(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    magnitude = np.abs(t)
    log_tail = _log_normal_tail(magnitude)
    # d/dt of -log10(2 Phi(-|t|)) is phi(t) / (Phi(-|t|) ln 10), formed in logs to stay finite.
    slope = np.exp(-0.5 * magnitude**2 - _LOG_SQRT_2PI - log_tail) / _LN10
    return _signed_log10_p(t, log_tail), slope


def _t_from_signed_log10_p(y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_signed_log10_p`."""
    return np.copysign(-ndtri_exp(-np.abs(y) * _LN10 - _LN2), y)


def _gene_indices(n_genes: int | None) -> np.ndarray:
    total = len(gene_names())
    if n_genes is None:
        return np.arange(total)
    if not 1 <= n_genes <= total:
        raise ValueError(f"n_genes must be between 1 and {total}, got {n_genes}")
    # Evenly spaced over the alphabetical list, so small worlds keep alphabetical order.
    return np.linspace(0, total - 1, n_genes).round().astype(int)


def _world_compounds() -> pd.DataFrame:
    """The compounds that occur in train or test (the DMSO vehicle in compounds() does not)."""
    used = set(train_layout()["sm_name"]) | set(test_layout()["sm_name"])
    return compounds().loc[lambda table: table["sm_name"].isin(used)].reset_index(drop=True)


def _simulate(gene_idx: np.ndarray, seed: int) -> np.ndarray:
    """Signed -log10 p of every (cell type, compound) pair: array (cell type, compound, gene), float32.

    Gene-level randomness is drawn for all genes and then subset, so a gene's values do not depend
    on which other genes are in the world.
    """
    compound_table = _world_compounds()
    n_compounds, n_all_genes = len(compound_table), len(gene_names())

    # Compound latent: a fingerprint projection (chemically similar => similar latent) plus its own part.
    fingerprints = morgan_fingerprints(compound_table["SMILES"]).astype(np.float32)
    centred = fingerprints - fingerprints.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    projection = _rng(seed, "chemistry").standard_normal((fingerprints.shape[1], N_PROGRAMS), dtype=np.float32)
    idiosyncratic = _rng(seed, "idiosyncratic").standard_normal((n_compounds, N_PROGRAMS), dtype=np.float32)
    latent = math.sqrt(CHEMISTRY_SHARE) * (centred @ projection) + math.sqrt(1 - CHEMISTRY_SHARE) * idiosyncratic

    potency_rng = _rng(seed, "potency")
    potency = POTENCY_MEDIAN * np.exp(POTENCY_SPREAD * potency_rng.standard_normal(n_compounds))
    strong = potency_rng.permutation(n_compounds)[: round(STRONG_FRACTION * n_compounds)]
    potency[strong] *= STRONG_FACTOR
    potency = potency.astype(np.float32)

    # Decaying program strengths: a few programs dominate, as in real perturbation data.
    program_scale = 1 / np.sqrt(np.arange(1, N_PROGRAMS + 1, dtype=np.float32))
    program_scale /= np.linalg.norm(program_scale)
    shared_loadings = _heavy_tailed(_rng(seed, "loadings"), (N_PROGRAMS, n_all_genes))[:, gene_idx]
    signature = _heavy_tailed(_rng(seed, "signature"), (n_compounds, n_all_genes))[:, gene_idx]
    real_means = celltype_means().to_numpy(dtype=np.float32)[gene_idx]
    # celltype_means() are de_train's per-cell-type means, so the baseline is fitted on the training
    # rows alone: the shipped means then say nothing about the hidden test rows.
    train = train_layout()
    compound_row = {name: c for c, name in enumerate(compound_table["sm_name"])}
    calibration_rows = [
        train.loc[train["cell_type"] == cell_type, "sm_name"].map(compound_row).to_numpy() for cell_type in CELL_TYPES
    ]

    def cell_type_values(k: int) -> np.ndarray:
        cell_type = CELL_TYPES[k]
        response = _CELL_RESPONSES[cell_type]
        rng = _rng(seed, f"cell type {cell_type}")
        own_loadings = _heavy_tailed(rng, (N_PROGRAMS, n_all_genes))[:, gene_idx]
        agreement = response.loading_agreement
        loadings = agreement * shared_loadings + math.sqrt(1 - agreement**2) * own_loadings
        # A rotation of the same compound latent: the cell type's mix is learnable from shared compounds.
        agreement = response.program_agreement
        mix = agreement * latent + math.sqrt(1 - agreement**2) * (latent @ _random_rotation(rng, N_PROGRAMS))
        effect_scale = (response.gain * potency)[:, None]
        t_value = (mix * (PROGRAM_WEIGHT * program_scale)) @ loadings
        t_value += SIGNATURE_WEIGHT * signature
        t_value *= effect_scale
        # Measurement noise (the null t is N(0, 1)) and the unpredictable compound x cell-type
        # interaction are independent normals, so one draw with the summed variance serves both.
        residual = rng.standard_normal((n_compounds, n_all_genes), dtype=np.float32)[:, gene_idx]
        residual *= np.sqrt(1 + (response.interaction * effect_scale) ** 2)
        t_value += residual
        return _add_calibrated_baseline(t_value, real_means[:, k], calibration_rows[k])

    # Cell types are independent given the shared draws; numpy releases the GIL, so threads overlap.
    with ThreadPoolExecutor(max_workers=min(len(CELL_TYPES), os.cpu_count() or 1)) as pool:
        return np.stack(list(pool.map(cell_type_values, range(len(CELL_TYPES)))))


def _add_calibrated_baseline(
    t_value: np.ndarray, target_mean: np.ndarray, calibration_rows: np.ndarray
) -> np.ndarray:
    """Signed -log10 p of ``t_value`` plus the per-gene baseline that puts the calibration rows' mean on target.

    Starts from the inverse transform of the target and takes Newton steps per gene; the mean of a
    monotone transform is monotone in the baseline, so the steps converge quickly.
    """
    calibration_t = t_value[calibration_rows]
    baseline = _t_from_signed_log10_p(target_mean).astype(np.float32)
    for _ in range(CALIBRATION_STEPS):
        value, slope = _signed_log10_p_and_slope(calibration_t + baseline)
        baseline += (target_mean - value.mean(axis=0)) / slope.mean(axis=0)
    return _signed_log10_p(t_value + baseline)


def _pair_rows(
    layout: pd.DataFrame, cell_index: dict[str, int], compound_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    return (
        layout["cell_type"].map(cell_index).to_numpy(),
        layout["sm_name"].map(compound_index).to_numpy(),
    )


def generate_demo(out_dir: str | os.PathLike, n_genes: int | None = None, seed: int = 0) -> Path:
    """Write Kaggle's file set for a demo world into ``out_dir`` (created or overwritten) and return it.

    Files: ``de_train.parquet`` (the 614 real training pairs), ``id_map.csv`` (Kaggle's own),
    ``sample_submission.csv`` (zeros) and ``test_truth.parquet`` (the hidden truth of the 255 test
    rows, float32). ``n_genes`` keeps that many evenly spaced genes (alphabetical order) instead of
    all 18,211; the same ``(n_genes, seed)`` always gives the same values.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gene_idx = _gene_indices(n_genes)
    genes = [gene_names()[i] for i in gene_idx]
    values = _simulate(gene_idx, seed)

    cell_index = {cell_type: k for k, cell_type in enumerate(CELL_TYPES)}
    compound_index = {name: c for c, name in enumerate(_world_compounds()["sm_name"])}
    train, test = train_layout(), test_layout()
    train_values = values[_pair_rows(train, cell_index, compound_index)]
    test_values = values[_pair_rows(test, cell_index, compound_index)]

    _write_table(train, train_values.astype(np.float64), genes, out_dir / "de_train.parquet")
    _write_table(test, test_values, genes, out_dir / "test_truth.parquet")
    (out_dir / "id_map.csv").write_bytes(
        resources.files("perturbkit.data").joinpath("layout", "id_map.csv").read_bytes()
    )
    _write_zero_submission(test["id"], genes, out_dir / "sample_submission.csv")
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


def demo_dir(root: str | os.PathLike | None = None, n_genes: int | None = None, seed: int = 0) -> Path:
    """The demo world for ``(n_genes, seed)`` under ``root``, generated on first use.

    ``root`` defaults to ``$PERTURBKIT_DEMO_ROOT`` or ``data/demo``. The world is written to a
    temporary sibling and renamed into place, so an interrupted run never leaves a partial world.
    """
    root = Path(root if root is not None else os.environ.get("PERTURBKIT_DEMO_ROOT", "data/demo"))
    n_resolved = len(_gene_indices(n_genes))
    world = root / f"genes-{n_resolved}_seed-{seed}_v{GENERATOR_VERSION}"
    if _is_complete(world):
        return world
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{world.name}.{uuid.uuid4().hex}.partial"
    staging.mkdir()
    try:
        generate_demo(staging, n_genes=n_genes, seed=seed)
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
