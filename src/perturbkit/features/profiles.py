"""The compound x cell type table of target profiles, fitted on the rows given (a fold's training rows).

``transfer_ridge`` and ``transfer_net`` (:mod:`perturbkit.models.transfer`) regress on this table,
and the ``transfer_profiles`` feature block serves it as features; it lives in the features package
so that the block needs nothing from the models package.

* One target PCA (:class:`~perturbkit.features.pca.WidePCA`) over all the rows; a row's profile is
  its PCA scores. Without an intercept (``fit_intercept=False``, the default) the scores are
  shifted by ``origin_``, the projection of the PCA mean, so that they are projections of the raw
  values: zero stays zero.
* ``profiles_`` (compounds x cell types x components): the mean profile of a compound's rows in a
  cell type (duplicate pairs averaged), ``observed_`` where it has any, ``type_scores_`` each cell
  type's mean profile over its compounds.
* :meth:`ProfileTable.source_types` and :meth:`ProfileTable.source_inputs`: which other cell types a
  target type's profile is read from, and those profiles for some compounds, a missing one imputed
  as the cell type's mean plus the compound's mean deviation over its rows outside the target type.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from perturbkit.constraints import Interval, validate_params
from perturbkit.features.pca import WidePCA, check_components

__all__ = ["ProfileTable", "group_means"]


def group_means(values: np.ndarray, groups: np.ndarray, n_groups: int, pseudo_count: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The mean row of ``values`` per group code (0 for an empty group) and each group's row count.

    ``pseudo_count`` rows of zeros are added to every group (a mean shrunk toward zero).
    """
    counts = np.bincount(groups, minlength=n_groups)
    sums = np.zeros((n_groups, values.shape[1]))
    np.add.at(sums, groups, values)
    denominators = counts[:, None] + pseudo_count
    return np.divide(sums, denominators, out=np.zeros_like(sums), where=denominators > 0), counts


class ProfileTable(BaseEstimator):
    """See the module docstring: ``fit(X, y)`` with the key frame (``cell_type``, ``sm_name``) and the targets."""

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "min_source_coverage": [Interval(Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
    }

    def __init__(self, n_components: int = 32, min_source_coverage: float = 0.5, fit_intercept: bool = False):
        self.n_components = n_components
        self.min_source_coverage = min_source_coverage
        self.fit_intercept = fit_intercept

    def fit(self, X: pd.DataFrame, y) -> ProfileTable:
        validate_params(self)
        self._fit_table(X, np.asarray(y, dtype=np.float32))
        return self

    def _fit_table(self, X: pd.DataFrame, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The table of ``y`` (float32, in the space the profiles live in); returns the rows' cell type and
        compound codes and their profiles."""
        cells, compounds = X["cell_type"].astype(str).to_numpy(), X["sm_name"].astype(str).to_numpy()
        self.cell_types_, cell_codes = np.unique(cells, return_inverse=True)
        self.compounds_, compound_codes = np.unique(compounds, return_inverse=True)
        check_components(self.n_components, y.shape, "params.n_components")
        self.pca_ = WidePCA(self.n_components).fit(y)
        # Without an intercept, profiles are projections of the raw values (zero stays zero), so a map
        # fitted on them shrinks toward predicting zeros rather than toward the target type's training mean.
        self.origin_ = 0.0 if self.fit_intercept else self.pca_.mean_ @ self.pca_.components_.T
        scores = self.pca_.transform(y).astype(np.float64) + self.origin_
        n_compounds, n_cells = len(self.compounds_), len(self.cell_types_)
        means, counts = group_means(scores, compound_codes * n_cells + cell_codes, n_compounds * n_cells)
        self.observed_ = counts.reshape(n_compounds, n_cells) > 0
        self.profiles_ = means.reshape(n_compounds, n_cells, -1)
        self.type_scores_ = self.profiles_.sum(axis=0) / self.observed_.sum(axis=0)[:, None]
        return cell_codes, compound_codes, scores

    def source_types(self, target: int) -> list[int]:
        """The cell types whose profiles are inputs for ``target``: the other types measured for at least
        ``min_source_coverage`` of the compounds (all other types when none is)."""
        coverage = self.observed_.mean(axis=0)
        others = [s for s in range(len(self.cell_types_)) if s != target]
        return [s for s in others if coverage[s] >= self.min_source_coverage] or others

    def source_inputs(self, compounds: np.ndarray, target: int, sources: list[int]) -> np.ndarray:
        """Concatenated source profiles of the compounds; a missing one is the source's mean + the compound's
        mean deviation over its types other than ``target`` (so nothing of ``target``'s rows enters)."""
        others = np.array([k for k in range(len(self.cell_types_)) if k != target])
        observed = self.observed_[np.ix_(compounds, others)]
        deviations = (self.profiles_[compounds][:, others] - self.type_scores_[others]) * observed[..., None]
        deviation = deviations.sum(axis=1) / np.maximum(observed.sum(axis=1), 1)[:, None]
        blocks = []
        for s in sources:
            present = self.observed_[compounds, s][:, None]
            blocks.append(np.where(present, self.profiles_[compounds, s], self.type_scores_[s] + deviation))
        return np.hstack(blocks)
