"""MRRMSE of weighted member sums from per-row Gram matrices, without touching the genes again.

For row r let e_m = p_m - y be member m's residual and z = (e_1, ..., e_M, y). A blend
``s * sum_m w_m p_m`` has residual ``sum_m s w_m e_m + (s sum_m w_m - 1) y = c . z`` with
``c = (s w, s sum(w) - 1)``, so its squared row RMSE is ``c^T G_r c`` where
``G_r = z z^T / n_genes``. The Gram stack (rows x (M+1) x (M+1)) is computed once, in float64,
after which scoring a weight vector costs O(rows x M^2) instead of O(rows x genes x M).
Residuals (not raw predictions) keep the quadratic form well conditioned near a good blend.
"""

from __future__ import annotations

import numpy as np


def gram_matrices(oof: np.ndarray, y: np.ndarray, *, chunk_rows: int = 32) -> np.ndarray:
    """Per-row Gram matrices of (residual_1, ..., residual_M, y), mean over genes, float64."""
    oof = np.asarray(oof)
    n_members, n_rows, n_genes = oof.shape
    if y.shape != (n_rows, n_genes):
        raise ValueError(f"targets of shape {y.shape} do not match predictions of shape {oof.shape}")
    gram = np.empty((n_rows, n_members + 1, n_members + 1), dtype=np.float64)
    z = np.empty((min(chunk_rows, n_rows), n_members + 1, n_genes), dtype=np.float64)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        block = z[: stop - start]
        target = y[start:stop].astype(np.float64)
        block[:, :n_members] = np.moveaxis(oof[:, start:stop], 0, 1)
        block[:, :n_members] -= target[:, None, :]
        block[:, n_members] = target
        gram[start:stop] = np.matmul(block, block.transpose(0, 2, 1)) / n_genes
    return gram


def coefficients(weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The quadratic form's coefficients ``(s w, s sum(w) - 1)``; ``weights`` may be (M,) or (K, M)."""
    weights = np.asarray(weights, dtype=np.float64)
    scaled = scale * weights
    return np.concatenate([scaled, scaled.sum(axis=-1, keepdims=True) - 1.0], axis=-1)


def row_rmse(gram: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Row RMSE of the blend ``scale * weights . members`` for each row of ``gram``."""
    c = coefficients(weights, scale)
    return np.sqrt(np.maximum((gram @ c) @ c, 0.0))


def score(gram: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> float:
    """MRRMSE of ``scale * weights . members`` over the rows of ``gram``."""
    return float(row_rmse(gram, weights, scale).mean())


def score_many(gram: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """MRRMSE of each row of a (K, M) weight matrix, vectorised over candidates."""
    c = coefficients(np.atleast_2d(weights), scale)  # (K, M+1)
    mse = np.einsum("rmn,kn,km->kr", gram, c, c, optimize=True)
    return np.sqrt(np.maximum(mse, 0.0)).mean(axis=1)


def simplex_score_and_gradient(gram_members: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
    """Score and gradient for weights summing to one (the y term vanishes): ``mean_r sqrt(w^T E_r w)``."""
    ew = gram_members @ weights  # (R, M)
    mse = np.maximum(ew @ weights, 1e-300)
    rmse = np.sqrt(mse)
    return float(rmse.mean()), (ew / rmse[:, None]).mean(axis=0)


def residual_correlation(gram: np.ndarray) -> np.ndarray:
    """Correlation of the members' OOF residuals, pooled over rows (the members' block of the Gram sum)."""
    pooled = gram[:, :-1, :-1].sum(axis=0)
    scale = np.sqrt(np.clip(np.diag(pooled), 1e-300, None))
    return pooled / np.outer(scale, scale)
