"""Weight searches on the simplex behind one result type and one registry: optuna (TPE), slsqp, caruana.

A method is ``@register_blend_method(name, help)`` on ``fn(gram, *, setting=default, ...) -> SearchResult``.
Its keyword parameters are its settings: :func:`method_settings` reads them (default and type, e.g.
``Annotated[int, Field(ge=1)]``) from the signature, so ``configs/blend.toml`` keys, ``--set KEY=VALUE``
and their validation come from it, and :func:`search` passes a method the settings it names. The blend
itself supplies ``seed`` and ``study_name`` (:data:`CONTEXT`). Every search ends with the rule of
:mod:`perturbkit.blend.choice` in-sample: its answer against the best member alone and the simple average,
so a tuned blend is never worse in-sample than those.
"""

from __future__ import annotations

import hashlib
import inspect
import time
import typing
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from pydantic import Field

from perturbkit.blend import choice, objective
from perturbkit.blend.members import BlendError
from perturbkit.registry import Registry

BLEND_METHODS = Registry("blend method", error=BlendError)


def register_blend_method(name: str, help: str):
    """Register ``fn(gram, **settings) -> SearchResult`` as blend method ``name``."""
    return BLEND_METHODS.register(name, help)


def list_blend_methods() -> list[str]:
    return BLEND_METHODS.names()


def blend_method_help() -> dict[str, str]:
    return BLEND_METHODS.help()


CONTEXT = ("seed", "study_name")  # passed by the blend to a method that names them, never settings of their own


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    hint: object  # the annotation (with Annotated constraints), what a value is validated against
    methods: tuple[str, ...]  # the methods that name it


def method_settings() -> dict[str, Setting]:
    """Every registered method's settings (keyword parameters with a default, less :data:`CONTEXT`), by name."""
    settings: dict[str, Setting] = {}
    for method in list_blend_methods():
        fn = BLEND_METHODS.get(method)
        hints = typing.get_type_hints(fn, include_extras=True)
        for name, parameter in inspect.signature(fn).parameters.items():
            if name in CONTEXT or parameter.kind is not inspect.Parameter.KEYWORD_ONLY or parameter.default is inspect.Parameter.empty:
                continue
            known = settings.get(name)
            settings[name] = Setting(name, parameter.default, hints.get(name, typing.Any), (*(known.methods if known else ()), method))
    return settings


@dataclass(frozen=True)
class SearchResult:
    method: str
    weights: np.ndarray  # (M,), non-negative, summing to one
    score: float  # MRRMSE of the weights on the rows searched (scale 1, unclipped)
    evaluations: int  # objective evaluations of this search (trials, steps x members, iterations)
    seconds: float
    chosen: str  # "search", "simple_average" or "member:<index>" when a reference beat the search
    history: list[float] = field(default_factory=list)  # best score so far after each trial / step
    details: dict = field(default_factory=dict)


def weights_from_uniform(u: np.ndarray) -> np.ndarray:
    """The Dirichlet trick: ``x_i = -log(u_i)`` normalised, uniform on the simplex for uniform ``u``."""
    x = -np.log(np.clip(np.asarray(u, dtype=np.float64), 1e-12, 1.0))
    total = x.sum()
    return x / total if total > 0 else np.full(len(x), 1.0 / len(x))


def _best_so_far(values) -> list[float]:
    return [float(v) for v in np.minimum.accumulate(np.asarray(values, dtype=np.float64))] if len(values) else []


@register_blend_method("optuna", "seeded TPE over Dirichlet weights (x_i = -log u_i)")
def search_optuna(gram, *, trials: Annotated[int, Field(ge=1)] = 1000, seed: int = 0, storage: str | None = None,
                  study_name: str | None = None, multivariate: bool = True,
                  n_ei_candidates: Annotated[int, Field(ge=1)] = 24) -> SearchResult:
    import optuna
    from optuna.distributions import FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_members = gram.shape[1] - 1
    started = time.perf_counter()
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=multivariate, n_ei_candidates=n_ei_candidates)
    try:
        study = optuna.create_study(direction="minimize", sampler=sampler, storage=storage,
                                    study_name=study_name if storage else None, load_if_exists=storage is not None)
    except Exception as exc:  # a bad URL or an unreachable database
        raise BlendError(f"--storage {storage!r}: cannot open the optuna study ({exc})") from exc
    resumed = len(study.trials)
    distributions = {f"u{i}": FloatDistribution(0.0, 1.0) for i in range(n_members)}
    if resumed == 0:
        study.enqueue_trial({f"u{i}": 0.5 for i in range(n_members)})  # the simple average
        for m in range(n_members):  # each member alone
            study.enqueue_trial({f"u{i}": (0.5 if i == m else 1.0) for i in range(n_members)})
    values = []
    for _ in range(trials):
        trial = study.ask(distributions)
        weights = weights_from_uniform([trial.params[f"u{i}"] for i in range(n_members)])
        value = objective.score(gram, weights)
        study.tell(trial, value)
        values.append(value)
    best = study.best_trial if study.trials else None
    weights = weights_from_uniform([best.params[f"u{i}"] for i in range(n_members)]) if best else np.full(n_members, 1 / n_members)
    return SearchResult(
        method="optuna",
        weights=weights,
        score=objective.score(gram, weights),
        evaluations=trials,
        seconds=time.perf_counter() - started,
        chosen="search",
        history=_best_so_far(values),
        details={"resumed_trials": resumed, "study_trials": len(study.trials), "storage": storage, "study_name": study.study_name},
    )


@register_blend_method("slsqp", "scipy SLSQP on the simplex (fast, deterministic)")
def search_slsqp(gram, *, max_iter: Annotated[int, Field(ge=1)] = 200) -> SearchResult:
    from scipy.optimize import minimize

    n_members = gram.shape[1] - 1
    block = np.ascontiguousarray(gram[:, :n_members, :n_members])
    started = time.perf_counter()
    values = []

    def fun(w):
        value, grad = objective.simplex_score_and_gradient(block, w)
        values.append(value)
        return value, grad

    result = minimize(fun, np.full(n_members, 1.0 / n_members), jac=True, method="SLSQP",
                      bounds=[(0.0, 1.0)] * n_members,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
                      options={"maxiter": max_iter, "ftol": 1e-12})
    weights = np.clip(result.x, 0.0, None)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(n_members, 1.0 / n_members)
    return SearchResult(
        method="slsqp",
        weights=weights,
        score=objective.score(gram, weights),
        evaluations=len(values),
        seconds=time.perf_counter() - started,
        chosen="search",
        history=_best_so_far(values),
        details={"converged": bool(result.success), "message": str(result.message), "iterations": int(result.nit)},
    )


@register_blend_method("caruana", "greedy ensemble selection with replacement")
def search_caruana(gram, *, caruana_size: Annotated[int, Field(ge=1)] = 25) -> SearchResult:
    """Greedy forward selection with replacement; keeps the best ensemble seen over ``size`` steps."""
    n_members = gram.shape[1] - 1
    started = time.perf_counter()
    counts = np.zeros(n_members)
    eye = np.eye(n_members)
    best_counts, best_score, history = None, np.inf, []
    for _ in range(caruana_size):
        candidates = counts + eye
        scores = objective.score_many(gram, candidates / candidates.sum(axis=1, keepdims=True))
        pick = int(np.argmin(scores))
        counts = candidates[pick]
        if scores[pick] < best_score:
            best_counts, best_score = counts.copy(), float(scores[pick])
        history.append(best_score)
    weights = best_counts / best_counts.sum()
    return SearchResult(
        method="caruana",
        weights=weights,
        score=objective.score(gram, weights),
        evaluations=caruana_size * n_members,
        seconds=time.perf_counter() - started,
        chosen="search",
        history=history,
        details={"ensemble_size": int(best_counts.sum()), "counts": best_counts.astype(int).tolist()},
    )


def study_name_for(names, rows_digest: str) -> str:
    digest = hashlib.blake2b(("\n".join(names) + "|" + rows_digest).encode(), digest_size=6).hexdigest()
    return f"perturbkit-blend-{digest}"


def search(gram, method: str = "optuna", **settings) -> SearchResult:
    """Search non-negative weights summing to one that minimise the MRRMSE over ``gram``'s rows.

    ``settings`` (trials, seed, storage, study_name, caruana_size, max_iter, ...) reach the method when
    its signature names them. The answer is never worse than any single member or the simple average
    on these rows.
    """
    method_fn = BLEND_METHODS.get(method)
    n_members = gram.shape[1] - 1
    if n_members == 1:
        return SearchResult(method=method, weights=np.ones(1), score=objective.score(gram, np.ones(1)), evaluations=1,
                            seconds=0.0, chosen="member:0", history=[])
    accepted = inspect.signature(method_fn).parameters
    result = method_fn(gram, **{k: v for k, v in settings.items() if k in accepted})
    candidates = choice.references(gram)
    scores = {name: objective.score(gram, w) for name, w in candidates.items()}
    chosen = choice.choose({**scores, "tuned": result.score})
    if chosen == "tuned":
        return result
    label = "simple_average" if chosen == "simple_average" else f"member:{choice.best_member(gram)}"
    return SearchResult(method=result.method, weights=candidates[chosen], score=float(scores[chosen]),
                        evaluations=result.evaluations, seconds=result.seconds, chosen=label,
                        history=result.history, details=result.details)
