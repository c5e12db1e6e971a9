"""The rule "never worse than the simple average or the best member", in one place.

A blend's weights compete with two references: the simple average and the single best member. The
candidate with the lowest score wins; ties go to the simpler one (:data:`PREFERENCE`). The weight
search applies the rule in-sample (:func:`perturbkit.blend.search.search`), the nested choice on
held-out folds (:mod:`perturbkit.blend.nested`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from perturbkit.blend import objective

Candidate = Literal["tuned", "simple_average", "best_member"]
PREFERENCE: tuple[Candidate, ...] = ("simple_average", "best_member", "tuned")  # simplest first: ties go to it


def simple_average(n_members: int) -> np.ndarray:
    return np.full(n_members, 1.0 / n_members)


def best_member(gram: np.ndarray) -> int:
    """The member whose MRRMSE over ``gram``'s rows is lowest (the first of equals)."""
    members = np.eye(gram.shape[1] - 1)
    return int(np.argmin(objective.score_many(gram, members)))


def references(gram: np.ndarray) -> dict[Candidate, np.ndarray]:
    """The weights of the two references on ``gram``'s rows: the simple average and the best member alone."""
    n_members = gram.shape[1] - 1
    return {"simple_average": simple_average(n_members), "best_member": np.eye(n_members)[best_member(gram)]}


def choose(scores: dict[Candidate, float]) -> Candidate:
    """The candidate with the lowest score; ties go to the simpler one."""
    return min((name for name in PREFERENCE if name in scores), key=lambda name: scores[name])
