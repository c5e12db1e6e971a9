"""Fit a blend of aligned members, score it in-sample and nested, and predict the test rows.

In-sample: weights fitted on every common OOF row and scored on the same rows (optimistic).
Nested (:mod:`perturbkit.blend.nested`): for each fold k, weights (and scale) fitted on the rows of
the other folds only and scored on fold k; it also chooses what is written (the tuned weights, the
simple average or the best member). Rows are weighted as the runs' scheme weights them (``test_like``:
the B/Myeloid rows carry half the score), in the search and in every score.

The written blend is also scored on openproblems' clipped layer (truth and prediction clipped to
±4, as in a run's ``scores["clipped"]``): in-sample, nested (the chosen candidate's fit without
each fold, on that fold) and predicting zeros, for their ratios to zeros (``scores["clipped"]``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perturbkit.blend import objective
from perturbkit.blend.fit import Fit, clip_by_fold, clip_ranges, fit_weights, gram_row_rmse, weighted_sum
from perturbkit.blend.leaderboard import LeaderboardScale
from perturbkit.blend.members import Members
from perturbkit.blend.nested import NOT_NESTED, NestedChoice, candidate_fit, nested_choice
from perturbkit.blend.options import BlendOptions
from perturbkit.blend.record import BlendMember, BlendRecord, WeightSet
from perturbkit.blend.search import study_name_for
from perturbkit.data import Dataset
from perturbkit.metrics import clip_layer, rowwise_rmse


@dataclass
class BlendResult:
    members: Members
    options: BlendOptions
    fit: Fit  # the written weights and scale (the chosen candidate's, fitted on every row)
    # per common row: cell_type, sm_name, fold, one RMSE column per member, simple_average, blend[, blend_unclipped][, blend_nested],
    # zeros, and on the clipped layer (±4): blend_clipped[, blend_nested_clipped], zeros_clipped
    row_scores: pd.DataFrame
    oof: np.ndarray  # the written blend's OOF predictions (clipped when asked), rows x genes
    test: np.ndarray  # test predictions, test rows (dataset.test order) x genes
    correlation: np.ndarray  # members' OOF residual correlation
    nested: NestedChoice | None = None
    seconds: dict = field(default_factory=dict)
    gene_range: tuple | None = None
    leaderboard: LeaderboardScale | None = None  # set when the test rows' scale includes a leaderboard factor

    @property
    def names(self) -> list[str]:
        return self.members.names

    @property
    def choice(self) -> dict:
        return self.nested.to_json() if self.nested else {"chosen": "tuned", "nested": {}, "reason": NOT_NESTED}

    def _mean(self, column: str) -> float:
        return float(np.average(self.row_scores[column], weights=self.row_scores["weight"]))

    @property
    def scores(self) -> dict:
        rows = self.row_scores
        scores = {
            "in_sample": self._mean("blend"),
            "nested": self._mean("blend_nested") if "blend_nested" in rows else None,
            "simple_average": self._mean("simple_average"),
            "members": {name: self._mean(name) for name in self.names},
            "rows": int(len(rows)),
            "chosen": self.choice["chosen"],
        }
        if "blend_unclipped" in rows:
            scores["in_sample_unclipped"] = self._mean("blend_unclipped")
        scores |= self._layer_scores("blend", "blend_nested", "zeros")
        scores["clipped"] = self._layer_scores("blend_clipped", "blend_nested_clipped", "zeros_clipped")
        return scores

    def _layer_scores(self, in_sample_column: str, nested_column: str, zeros_column: str) -> dict:
        """In-sample, nested and zeros' scores of one layer and the blend's ratios to zeros."""
        zeros = self._mean(zeros_column)
        in_sample = self._mean(in_sample_column)
        nested = self._mean(nested_column) if nested_column in self.row_scores else None
        return {"in_sample": in_sample, "nested": nested, "zeros": zeros,
                "in_sample_relative_to_zeros": in_sample / zeros if zeros > 0 else None,
                "nested_relative_to_zeros": nested / zeros if nested is not None and zeros > 0 else None}

    def columns(self) -> list[str]:
        extra = [c for c in ("blend_unclipped", "blend_nested") if c in self.row_scores]
        return [*self.names, "simple_average", "blend", *extra]

    def _grouped(self, by: str) -> pd.DataFrame:
        columns = self.columns()
        weighted = self.row_scores[columns].mul(self.row_scores["weight"], axis=0).groupby(self.row_scores[by], sort=True).sum()
        return weighted.div(self.row_scores.groupby(by, sort=True)["weight"].sum(), axis=0)

    def per_fold(self) -> pd.DataFrame:
        """MRRMSE per fold (rows) of each member, the simple average and the blend (columns), rows weighted."""
        return self._grouped("fold")

    def per_cell_type(self) -> pd.DataFrame:
        return self._grouped("cell_type")

    def record(self, *, name: str = "", files: dict | None = None, file_sha256: dict | None = None,
               extra: dict | None = None) -> BlendRecord:
        """The blend's record (:class:`BlendRecord`) with its scores and search: the contract for re-running it elsewhere.
        ``extra``: what the writer adds (the writer command, the template, the data source)."""
        members = tuple(
            BlendMember(name=member, config=run.meta.get("config"), model=run.meta.get("model"), run_id=run.path.name,
                        path=str(run.path), config_hash=run.meta.get("config_hash"), score=self.scores["members"][member])
            for member, run in zip(self.names, self.members.runs)
        )
        search = self.fit.search
        details = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": self.options.to_json(),
            "clip_range": "each gene's min..max over all de_train rows" if self.options.clip else None,
            "formula": "prediction[row] = clip?(scale * sum_m members[m].weight * member_m[row])",
            "scores": {
                **self.scores,
                "per_fold": {str(k): v for k, v in self.per_fold().to_dict(orient="index").items()},
                "per_cell_type": self.per_cell_type().to_dict(orient="index"),
            },
            "choice": self.choice,
            "nested_weights": {str(k): dict(zip(self.names, map(float, fit.weights))) for k, fit in
                               (self.nested.fits.items() if self.nested else ())},
            "search": {"all": {"chosen": search.chosen, "evaluations": search.evaluations, "seconds": round(search.seconds, 3),
                               "history": search.history, "details": search.details}},
            "correlation": {"names": self.names, "matrix": np.round(self.correlation, 6).tolist()},
            "scheme": self.members.scheme,
            "n_genes": len(self.members.genes),
            "test_rows": int(len(self.members.test_ids)),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "leaderboard": None if self.leaderboard is None else self.leaderboard.to_json(),
            **(extra or {}),
        }
        return BlendRecord(
            members=members,
            weights=WeightSet(weights=tuple(map(float, self.fit.weights)), scale=float(self.fit.scale)),
            clip=bool(self.options.clip),
            method=self.options.method,
            data_hash=self.members.data_hash,
            folds_hash=self.members.folds_hash,
            files=dict(files or {}),
            file_sha256=dict(file_sha256 or {}),
            name=name,
            details=details,
        )


def blend_members(members: Members, dataset: Dataset | None, options: BlendOptions = BlendOptions(), *,
                  progress=None) -> BlendResult:
    """Fit, score (in-sample and nested), choose and apply a blend of ``members`` (aligned on ``dataset``)."""
    say = progress or (lambda message: None)
    timings = {}
    started = time.perf_counter()
    gram = objective.gram_matrices(members.oof, members.y)
    # Scaling row r's Gram matrix by w_r^2 scales its RMSE by w_r: every search then minimises the weighted MRRMSE.
    weighted_gram = gram * (members.row_weights**2)[:, None, None]
    timings["gram"] = time.perf_counter() - started
    folds = members.folds

    say(f"fitting weights ({options.method}) on {len(folds)} OOF rows")
    started = time.perf_counter()
    study = study_name_for(members.names, str(members.folds_hash) + str(members.data_hash)) + f"-{options.method}-s{options.seed}-all"
    fit = fit_weights(weighted_gram, options, storage=options.settings.get("storage"), study_name=study)
    timings["fit"] = time.perf_counter() - started

    ranges = clip_ranges(dataset.targets, members.dataset_folds, np.unique(folds)) if options.clip else None
    table = _member_scores(members, gram)
    clipped_y = clip_layer(members.y)
    nested = None
    if options.nested:
        started = time.perf_counter()
        nested = nested_choice(members, gram, weighted_gram, options, ranges, clipped_y, say)
        table["blend_nested"], table["blend_nested_clipped"] = nested.row_scores, nested.row_scores_clipped
        fit = candidate_fit(nested.chosen, fit, weighted_gram)
        timings["nested"] = time.perf_counter() - started

    unclipped = gram_row_rmse(gram, fit.weights, fit.scale)
    oof = weighted_sum(members.oof, fit.weights, fit.scale)
    if options.clip:
        oof = clip_by_fold(oof, folds, ranges)
        table["blend"] = rowwise_rmse(members.y, oof)
        table["blend_unclipped"] = unclipped
    else:
        table["blend"] = unclipped
    table["blend_clipped"] = rowwise_rmse(clipped_y, clip_layer(oof))
    table["zeros_clipped"] = rowwise_rmse(clipped_y, np.zeros_like(clipped_y))
    table["zeros"] = rowwise_rmse(members.y, np.zeros_like(members.y))
    gene_range = ranges[None] if ranges else None
    return BlendResult(members=members, options=options, fit=fit, row_scores=table, oof=oof,
                       test=_test_predictions(members, fit, gene_range), correlation=objective.residual_correlation(gram),
                       nested=nested, seconds=timings, gene_range=gene_range)


def _member_scores(members: Members, gram: np.ndarray) -> pd.DataFrame:
    """Every OOF row's keys, weight, and RMSE of each member and of the simple average."""
    table = members.keys.copy()
    table["weight"] = members.row_weights
    for m, name in enumerate(members.names):
        table[name] = np.sqrt(np.maximum(gram[:, m, m], 0.0))
    n_members = len(members.names)
    table["simple_average"] = objective.row_rmse(gram, np.full(n_members, 1.0 / n_members))
    return table


def _test_predictions(members: Members, fit: Fit, gene_range) -> np.ndarray:
    test = weighted_sum(members.test, fit.weights, fit.scale)
    return test if gene_range is None else np.clip(test, *gene_range)


def with_leaderboard_scale(result: BlendResult, leaderboard: LeaderboardScale) -> BlendResult:
    """The blend with its scale multiplied by a leaderboard factor (:mod:`perturbkit.blend.leaderboard`).

    The test predictions (and the record's scale, so a kernel reproduces them) change; the OOF
    rows and every CV score stay as fitted, since the factor comes from public test rows.
    """
    fit = dataclasses.replace(result.fit, scale=result.fit.scale * leaderboard.factor)
    return dataclasses.replace(result, fit=fit, test=_test_predictions(result.members, fit, result.gene_range),
                               leaderboard=leaderboard)
