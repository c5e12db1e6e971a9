"""The nested choice: which candidate a blend writes, judged on folds its weights never saw.

For each fold k, every candidate of :mod:`perturbkit.blend.choice` (the tuned weights, the simple
average, the best member) is fitted on the rows of the other folds only and scored on fold k; a
candidate's nested score is the MRRMSE of those held-out rows (rows weighted as the runs' scheme
weighs them). :func:`perturbkit.blend.choice.choose` picks the lowest, so the written blend is never
worse, nested, than the simple average or the best member.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perturbkit.blend import choice
from perturbkit.blend.fit import Fit, fit_weights, fixed_fit, gram_row_rmse, weighted_sum
from perturbkit.blend.members import BlendError, Members
from perturbkit.blend.options import BlendOptions
from perturbkit.metrics import clip_layer, rowwise_rmse

NOT_NESTED = "no nested score (nested = false)"


@dataclass(frozen=True)
class NestedChoice:
    chosen: choice.Candidate
    nested: dict[str, float]  # each candidate's weighted held-out MRRMSE
    reason: str
    fits: dict[int, Fit]  # the tuned fit without each fold
    row_scores: np.ndarray  # the chosen candidate's held-out RMSE of every row
    row_scores_clipped: np.ndarray  # the same on openproblems' clipped layer (±4)

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "nested": self.nested, "reason": self.reason}


def candidate_fit(candidate: choice.Candidate, tuned: Fit, weighted_gram: np.ndarray) -> Fit:
    """The fit of ``candidate`` on the rows of ``weighted_gram`` (``tuned``: the search's, fitted on the same rows)."""
    if candidate == "tuned":
        return tuned
    return fixed_fit(choice.references(weighted_gram)[candidate], candidate)


def predict_rows(members: Members, fitted: Fit, rows: np.ndarray, clip_range) -> np.ndarray:
    """The blend of ``fitted`` on ``rows`` (members' OOF predictions), clipped to ``clip_range`` when one is given."""
    prediction = weighted_sum(members.oof[:, rows], fitted.weights, fitted.scale)
    return prediction if clip_range is None else np.clip(prediction, *clip_range)


def nested_choice(members: Members, gram: np.ndarray, weighted_gram: np.ndarray, options: BlendOptions, ranges,
                  clipped_y: np.ndarray, say=lambda message: None) -> NestedChoice:
    """Each candidate fitted without each fold and scored on it; the best (weighted held-out MRRMSE) is chosen."""
    folds = members.folds
    unique = np.unique(folds)
    if len(unique) < 2:
        raise BlendError("a nested score needs at least two folds; pass --no-nested")

    def row_scores(fitted: Fit, rows: np.ndarray, clip_range) -> np.ndarray:
        if clip_range is None:
            return gram_row_rmse(gram[rows], fitted.weights, fitted.scale)
        return rowwise_rmse(members.y[rows], predict_rows(members, fitted, rows, clip_range))

    nested = {name: np.empty(len(folds)) for name in choice.PREFERENCE}
    fits, candidates_by_fold = {}, {}
    for k in unique:
        say(f"nested score: fitting without fold {k}")
        train, held = folds != k, np.flatnonzero(folds == k)
        tuned = fit_weights(weighted_gram[train], options)
        candidates = {name: candidate_fit(name, tuned, weighted_gram[train]) for name in choice.PREFERENCE}
        fits[int(k)], candidates_by_fold[int(k)] = tuned, candidates
        for name, fitted in candidates.items():
            nested[name][held] = row_scores(fitted, held, ranges[int(k)] if ranges else None)
    means = {name: float(np.average(values, weights=members.row_weights)) for name, values in nested.items()}
    chosen = choice.choose(means)
    reason = (
        "the tuned weights generalise best to held-out folds" if chosen == "tuned"
        else f"the tuned weights score no better on held-out folds than the {chosen.replace('_', ' ')}, which is written instead"
    )
    # The clipped layer needs the predictions themselves (the Gram matrices hold unclipped errors only): the chosen candidate's.
    clipped = np.empty(len(folds))
    for k, candidates in candidates_by_fold.items():
        held = np.flatnonzero(folds == k)
        prediction = predict_rows(members, candidates[chosen], held, ranges[k] if ranges else None)
        clipped[held] = rowwise_rmse(clipped_y[held], clip_layer(prediction))
    return NestedChoice(chosen=chosen, nested={name: means[name] for name in ("tuned", "simple_average", "best_member")},
                        reason=reason, fits=fits, row_scores=nested[chosen], row_scores_clipped=clipped)

