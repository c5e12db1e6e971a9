"""Cell type x compound x gene completion: additive effects plus a low-rank cell-type x compound interaction.

In the target-PCA space of the rows given to ``fit`` (:class:`~perturbkit.features.pca.WidePCA`,
``n_components`` scores ``z``), each observed pair is modelled as::

    z[k, c] = m + a[k] + b[c] + sum_r u[k, r] v[c, r] W[r]

with cell-type and compound effects ``a``, ``b``, cell-type and compound factors ``u``, ``v`` of
``rank`` and a basis ``W`` (rank x components) over the gene PCA basis; predictions are inverted
to genes. The fit is alternating least squares on the observed (training) pairs only, each block
solved exactly with an L2 penalty: ``reg`` on the factors and basis (scores scaled to unit mean
square), ``effect_reg`` on the effects (that many pseudo-pairs at zero), for ``n_iter`` sweeps from
a seeded start.

A cell type's factors come from every compound it was measured with, so the 17 panel compounds
place B and Myeloid cells in the interaction space, and a test compound's lymphoid rows place it.
A compound without rows gets ``b = v = 0``, or with ``chemistry`` a ridge from its Morgan
fingerprint fitted on the compounds with rows; an unseen cell type gets ``a = u = 0``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge

from perturbkit.constraints import Interval, InvalidParameterError, available_memory, validate_params
from perturbkit.features.pca import WidePCA, check_components
from perturbkit.features.profiles import group_means
from perturbkit.models.registry import register_model


def _solve_factors(outer: np.ndarray, rhs: np.ndarray, reg: float) -> np.ndarray:
    """Batched ridge solutions of (outer[i] + reg I) x = rhs[i]."""
    return np.linalg.solve(outer + reg * np.eye(outer.shape[-1]), rhs[..., None])[..., 0]


def _factor_step(own: np.ndarray, other: np.ndarray, basis: np.ndarray, residual: np.ndarray, n_groups: int, reg: float) -> np.ndarray:
    """Each group's factor given the other side's factors: ``residual[i] ~ (f[own[i]] * other[i]) @ basis``."""
    gram = basis @ basis.T
    outer = np.zeros((n_groups, len(gram), len(gram)))
    np.add.at(outer, own, other[:, :, None] * other[:, None, :] * gram)
    rhs = np.zeros((n_groups, len(gram)))
    np.add.at(rhs, own, other * (residual @ basis.T))
    return _solve_factors(outer, rhs, reg)


@register_model("lowrank")
class LowRankCompletion(RegressorMixin, BaseEstimator):
    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "rank": [Interval(Integral, 0, None, closed="left")],
        "reg": [Interval(Real, 0, None, closed="neither")],
        "effect_reg": [Interval(Real, 0, None, closed="left")],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "chemistry": ["boolean"],
        "chemistry_alpha": [Interval(Real, 0, None, closed="neither")],
        "morgan_bits": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components: int = 64,
        rank: int = 0,
        reg: float = 3.0,
        effect_reg: float = 1.0,
        n_iter: int = 30,
        chemistry: bool = False,
        chemistry_alpha: float = 10.0,
        morgan_bits: int = 2048,
        random_state: int | None = 0,
    ):
        self.n_components = n_components
        self.rank = rank
        self.reg = reg
        self.effect_reg = effect_reg
        self.n_iter = n_iter
        self.chemistry = chemistry
        self.chemistry_alpha = chemistry_alpha
        self.morgan_bits = morgan_bits
        self.random_state = random_state

    def _check_params(self, n_groups: int = 1) -> None:
        """The ALS step solves one rank x rank system per group (float64): refuse a rank whose systems cannot fit in memory
        (before the data is known, for one group)."""
        needed, free = 8 * n_groups * self.rank**2, available_memory()
        if needed > free:
            raise InvalidParameterError("rank", f"rank={self.rank} needs {needed / 2**30:.1f} GiB for its {n_groups} rank x rank "
                                                f"system(s); {free / 2**30:.1f} GiB of memory is free")

    def feature_blocks(self) -> list[str]:
        """Morgan fingerprints when ``chemistry`` is on (perturbkit.models.feature_requirements reads it)."""
        return ["morgan"] if self.chemistry else []

    def fit(self, X: pd.DataFrame, y) -> LowRankCompletion:
        validate_params(self)
        y = np.asarray(y, dtype=np.float32)
        self.cell_types_, k = np.unique(X["cell_type"].astype(str).to_numpy(), return_inverse=True)
        self.compounds_, c = np.unique(X["sm_name"].astype(str).to_numpy(), return_inverse=True)
        n_cells, n_compounds = len(self.cell_types_), len(self.compounds_)
        self._check_params(max(n_cells, n_compounds))
        check_components(self.n_components, y.shape, "params.n_components")
        self.pca_ = WidePCA(self.n_components).fit(y)
        scores = self.pca_.transform(y).astype(np.float64)
        self.scale_ = float(np.sqrt(np.mean(np.square(scores)))) or 1.0
        z = scores / self.scale_

        rng = np.random.default_rng(self.random_state)
        rank, reg = self.rank, float(self.reg)
        u = rng.normal(scale=0.1, size=(n_cells, rank))
        v = rng.normal(scale=0.1, size=(n_compounds, rank))
        basis = rng.normal(scale=1.0 / np.sqrt(z.shape[1]), size=(rank, z.shape[1]))
        a, b = np.zeros((n_cells, z.shape[1])), np.zeros((n_compounds, z.shape[1]))
        for _ in range(self.n_iter):
            interaction = (u[k] * v[c]) @ basis
            self.mean_ = (z - a[k] - b[c] - interaction).mean(axis=0)
            a = group_means(z - self.mean_ - b[c] - interaction, k, n_cells, self.effect_reg)[0]
            b = group_means(z - self.mean_ - a[k] - interaction, c, n_compounds, self.effect_reg)[0]
            if rank == 0:
                continue
            residual = z - self.mean_ - a[k] - b[c]
            v = _factor_step(c, u[k], basis, residual, n_compounds, reg)
            u = _factor_step(k, v[c], basis, residual, n_cells, reg)
            features = u[k] * v[c]
            basis = _solve_factors(features.T @ features, (features.T @ residual).T, reg).T
        self.cell_effects_, self.compound_effects_ = a, b
        self.cell_factors_, self.compound_factors_, self.basis_ = u, v, basis
        self.chemistry_ = self._fit_chemistry(X, c) if self.chemistry else None
        return self

    def _fingerprints(self, smiles) -> np.ndarray:
        from perturbkit.features.chemistry import morgan_fingerprints  # RDKit only when chemistry is asked for

        return morgan_fingerprints(list(smiles), n_bits=self.morgan_bits).astype(np.float64)

    def _fit_chemistry(self, X: pd.DataFrame, compound_codes: np.ndarray) -> Ridge:
        """Compound effects and factors from fingerprints, for compounds without training rows."""
        smiles = pd.Series(X["SMILES"].astype(object).to_numpy()).groupby(compound_codes).first()
        targets = np.hstack([self.compound_effects_, self.compound_factors_])[smiles.index]
        return Ridge(alpha=self.chemistry_alpha).fit(self._fingerprints(smiles), targets)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        k = pd.Index(self.cell_types_).get_indexer(X["cell_type"].astype(str))
        c = pd.Index(self.compounds_).get_indexer(X["sm_name"].astype(str))
        n_components = self.compound_effects_.shape[1]
        a = np.where((k >= 0)[:, None], self.cell_effects_[k], 0.0)
        u = np.where((k >= 0)[:, None], self.cell_factors_[k], 0.0)
        compound = np.hstack([self.compound_effects_, self.compound_factors_])[c]
        unseen = c < 0
        compound[unseen] = 0.0
        if self.chemistry_ is not None and unseen.any():
            compound[unseen] = self.chemistry_.predict(self._fingerprints(X["SMILES"].astype(object).to_numpy()[unseen]))
        b, v = compound[:, :n_components], compound[:, n_components:]
        z = self.mean_ + a + b + (u * v) @ self.basis_
        return self.pca_.inverse_transform(z * self.scale_).astype(np.float32)
