"""PCA for wide matrices (a few hundred rows x 18,211 genes) through the rows' Gram matrix.

scikit-learn's solvers factor the rows x genes matrix itself (full SVD, or randomized power
iterations); with rows << genes, the eigendecomposition of the rows x rows Gram matrix gives the
same components exactly, and about 3 times faster than the randomized solver on this task's
shapes (BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.extmath import svd_flip

from perturbkit.errors import ConfigError


def check_components(n_components: int, shape: tuple[int, int], key: str) -> None:
    """A component count the rows x columns matrix can hold, else a :class:`ConfigError` naming the config ``key``
    (a larger count is refused, never clamped, so a run records what it used)."""
    if n_components > min(shape):
        raise ConfigError(f"{key}={n_components}: at most {min(shape)} here (a matrix of {shape[0]} training rows x {shape[1]} columns)")


class WidePCA(TransformerMixin, BaseEstimator):
    """Exact PCA with scikit-learn's attributes (``components_``, ``mean_``, ``explained_variance_``).

    ``n_components`` larger than the rows or columns of ``X`` is a ``ValueError``: a caller checks its own
    config key first (:func:`check_components`).
    """

    def __init__(self, n_components: int = 16):
        self.n_components = n_components

    def fit(self, X, y=None) -> WidePCA:
        X = np.asarray(X, dtype=np.float32)
        self.mean_ = X.mean(axis=0)
        centered = (X - self.mean_).astype(np.float64)
        eigenvalues, eigenvectors = np.linalg.eigh(centered @ centered.T)
        if not 1 <= self.n_components <= min(X.shape):
            raise ValueError(f"WidePCA: n_components={self.n_components} on a {X.shape[0]} x {X.shape[1]} matrix (1 to {min(X.shape)})")
        self.n_components_ = self.n_components
        order = np.argsort(eigenvalues)[::-1][: self.n_components_]
        singular_values = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
        left = eigenvectors[:, order]
        # Directions below numpy's rank tolerance (float32 data) are noise: zero components, not
        # unit-variance scores that would blow up a row projected onto them.
        tolerance = singular_values[0] * max(X.shape) * np.finfo(np.float32).eps
        scale = np.divide(1.0, singular_values, out=np.zeros_like(singular_values), where=singular_values > tolerance)
        components = (left * scale).T @ centered
        left, components = svd_flip(left, components, u_based_decision=False)  # the signs sklearn's PCA picks
        self.components_ = components.astype(np.float32)
        self.singular_values_ = singular_values
        self.explained_variance_ = singular_values**2 / max(len(X) - 1, 1)
        return self

    def transform(self, X) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float32) - self.mean_) @ self.components_.T).astype(np.float32)

    def inverse_transform(self, scores) -> np.ndarray:
        return (np.asarray(scores, dtype=np.float32) @ self.components_ + self.mean_).astype(np.float32)
