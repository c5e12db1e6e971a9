"""Fit a blend of aligned members, score it in-sample and nested, and predict the test rows.

In-sample: weights fitted on every common OOF row and scored on the same rows (optimistic).
Nested: for each fold k, weights (and scale) fitted on the rows of the other folds only and
scored on fold k; the nested score is the MRRMSE of those held-out rows, i.e. the fold scores
averaged with the folds' row counts as weights. Clipping uses, for the rows of fold k, each
gene's range over the training rows of fold k (every de_train row not in fold k), so it never
sees the truth it is scored on; test predictions are clipped to the range of all rows.

Rows are weighted as the runs' scheme weights them (``test_like``: the B/Myeloid rows carry half
the score), in the search and in every score. The blend never submits weights whose nested score
is worse than the simple average's or the best member's: the three candidates (the tuned weights,
the simple average, the single member that is best on the other folds) are scored nested in the
same way, and the lowest is written (ties go to the simpler one); the table says which and why.

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
from perturbkit.blend.leaderboard import LeaderboardScale
from perturbkit.blend.members import GROUPS, BlendError, Members
from perturbkit.blend.record import BlendMember, BlendRecord, CellTypeWeights, WeightSet
from perturbkit.blend.search import SearchResult, list_blend_methods, method_settings, search, study_name_for
from perturbkit.data import Dataset
from perturbkit.errors import ConfigError
from perturbkit.metrics import clip_layer, rowwise_rmse

ALL = "all"


@dataclass(frozen=True)
class BlendOptions:
    """What every blend has; ``settings`` holds the methods' own (``trials``, ``caruana_size``, ``max_iter``, ``storage``, ...)."""

    method: str = "optuna"
    seed: int = 0
    per_celltype: bool = False
    scale: bool = False
    clip: bool = False
    nested: bool = True
    scale_min: float = 0.0
    scale_max: float = 2.0
    settings: dict = field(default_factory=dict)  # by name; a method gets those its signature names, else its defaults

    @classmethod
    def from_dict(cls, values: dict) -> "BlendOptions":
        """Options from a flat table (configs/blend.toml, --set): a key that is no common field is a method's setting."""
        common = {f.name for f in dataclasses.fields(cls)} - {"settings"}
        known_settings = method_settings()
        unknown = sorted(set(values) - common - set(known_settings))
        if unknown:
            raise ConfigError(f"unknown blend option(s) {unknown}; known: {sorted(common | set(known_settings))}")
        settings = {key: _checked_setting(known_settings[key], value) for key, value in values.items() if key not in common}
        options = cls(**_typed(cls, {k: v for k, v in values.items() if k in common}), settings=settings)
        if options.method not in list_blend_methods():
            raise ConfigError(f"unknown blend method {options.method!r}; known: {list_blend_methods()}")
        if not options.scale_min <= 1.0 <= options.scale_max:
            raise ConfigError("blend scale_min <= 1 <= scale_max is required")
        return options

    def setting(self, name: str):
        """A method setting's value: as given, else the default in the signature of a method naming it."""
        return self.settings[name] if name in self.settings else method_settings()[name].default

    def to_json(self) -> dict:
        """Flat, as configs/blend.toml writes them: the common fields, then the chosen method's settings."""
        own = {name: self.setting(name) for name, s in method_settings().items() if self.method in s.methods}
        common = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "settings"}
        return {**common, **own, **self.settings}


def _checked_setting(setting, value):
    """A method setting's value against the type its signature gives (``trials: Annotated[int, Field(ge=1)]``)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(setting.hint).validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].lower()
        raise ConfigError(f"blend setting {setting.name} = {value!r} (of {', '.join(setting.methods)}): {message}") from None


def _typed(options: type, values: dict) -> dict:
    """Common ``values`` checked against the options' field types (``scale=no`` is false, ``scale=maybe`` is refused)."""
    import typing

    from pydantic import TypeAdapter, ValidationError

    types = typing.get_type_hints(options)
    checked = {}
    for key, value in values.items():
        try:
            checked[key] = TypeAdapter(types[key]).validate_python(value)
        except ValidationError as exc:
            raise ConfigError(f"blend option {key} = {value!r}: {exc.errors()[0]['msg'].lower()}") from None
    return checked


@dataclass(frozen=True)
class Fit:
    """Weights and scale per weight set: ``all``, or ``lymphoid`` / ``myeloid`` with per_celltype."""

    weights: dict[str, np.ndarray]
    scale: dict[str, float]
    searches: dict[str, SearchResult]

    def params_for(self, groups) -> tuple[np.ndarray, np.ndarray]:
        """Per row: weights (n, M) and scale (n,), from the row's group set, else the global one."""
        keys = [g if g in self.weights else ALL for g in np.asarray(groups, dtype=object)]
        missing = sorted({k for k in keys if k not in self.weights})
        if missing:
            raise BlendError(f"no weights were fitted for cell group(s) {missing}")
        return np.vstack([self.weights[k] for k in keys]), np.array([self.scale[k] for k in keys])


def fit_scale(gram: np.ndarray, weights: np.ndarray, low: float, high: float) -> float:
    """The global factor ``s`` minimising the MRRMSE of ``s * blend``; 1 unless it does better."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda s: objective.score(gram, weights, s), bounds=(low, high), method="bounded",
                             options={"xatol": 1e-6})
    return float(result.x) if result.fun < objective.score(gram, weights, 1.0) else 1.0


def fit_weights(gram: np.ndarray, groups: np.ndarray, options: BlendOptions, *, need=(), storage: str | None = None,
                study_prefix: str | None = None) -> Fit:
    """Fit weight sets on the rows of ``gram`` (global, or one per cell group with per_celltype).

    ``need`` names groups that will be predicted; with per_celltype, one absent from these rows
    falls back on a global fit.
    """
    sets: dict[str, np.ndarray] = {}
    if options.per_celltype:
        for group in GROUPS:
            if (groups == group).any():
                sets[group] = np.flatnonzero(groups == group)
        if set(need) - set(sets):
            sets[ALL] = np.arange(len(groups))
    else:
        sets[ALL] = np.arange(len(groups))
    weights, scales, searches = {}, {}, {}
    for key, rows in sets.items():
        sub = gram[rows]
        result = search(sub, options.method, **{**options.settings, "storage": storage}, seed=options.seed,
                        study_name=f"{study_prefix}-{key}" if study_prefix else None)
        weights[key], searches[key] = result.weights, result
        scales[key] = fit_scale(sub, result.weights, options.scale_min, options.scale_max) if options.scale else 1.0
    return Fit(weights=weights, scale=scales, searches=searches)


def gram_row_rmse(gram: np.ndarray, weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Row RMSE with per-row weights (n, M) and scale (n,)."""
    scaled = weights * scale[:, None]
    c = np.concatenate([scaled, scaled.sum(axis=1, keepdims=True) - 1.0], axis=1)
    return np.sqrt(np.maximum(np.einsum("rm,rmn,rn->r", c, gram, c), 0.0))


def weighted_sum(predictions: np.ndarray, weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``scale_r * sum_m w_rm p_m[r]`` for member predictions (M, n, G); float32 (n, G)."""
    coef = (weights * scale[:, None]).astype(np.float32)
    out = np.zeros(predictions.shape[1:], dtype=np.float32)
    for m in range(predictions.shape[0]):
        out += predictions[m] * coef[:, m, None]
    return out


def clip_ranges(targets: np.ndarray, dataset_folds: np.ndarray, folds) -> dict:
    """Per fold k: each gene's (min, max) over the de_train rows not in fold k; key None: all rows."""
    ranges = {None: (targets.min(axis=0), targets.max(axis=0))}
    for k in folds:
        train = targets[dataset_folds != k]
        ranges[int(k)] = (train.min(axis=0), train.max(axis=0))
    return ranges


def _clip_by_fold(matrix: np.ndarray, folds: np.ndarray, ranges: dict) -> np.ndarray:
    out = matrix.copy()
    for k in np.unique(folds):
        rows = folds == k
        out[rows] = np.clip(out[rows], *ranges[int(k)])
    return out


@dataclass
class BlendResult:
    members: Members
    options: BlendOptions
    fit: Fit
    # per common row: cell_type, sm_name, fold, one RMSE column per member, simple_average, blend[, blend_unclipped][, blend_nested],
    # zeros, and on the clipped layer (±4): blend_clipped[, blend_nested_clipped], zeros_clipped
    row_scores: pd.DataFrame
    oof: np.ndarray  # the tuned blend's OOF predictions (clipped when asked), rows x genes
    test: np.ndarray  # test predictions, test rows (dataset.test order) x genes
    correlation: np.ndarray  # members' OOF residual correlation
    nested_fits: dict[int, Fit] = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    gene_range: tuple | None = None
    leaderboard: LeaderboardScale | None = None  # set when the test rows' scale includes a leaderboard factor
    choice: dict = field(default_factory=lambda: {"chosen": CHOICES[0], "nested": {}, "reason": "no nested score (nested = false)"})

    @property
    def names(self) -> list[str]:
        return self.members.names

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
        """In-sample, nested and zeros' scores of one layer and the blend's ratios to zeros (named as a run's, with
        in-sample and nested for ``overall``)."""
        zeros = self._mean(zeros_column)
        in_sample = self._mean(in_sample_column)
        nested = self._mean(nested_column) if nested_column in self.row_scores else None
        return {"in_sample": in_sample, "nested": nested, "zeros": zeros,
                "in_sample_relative_to_zeros": in_sample / zeros if zeros > 0 else None,
                "nested_relative_to_zeros": nested / zeros if nested is not None and zeros > 0 else None}

    def _columns(self) -> list[str]:
        extra = [c for c in ("blend_unclipped", "blend_nested") if c in self.row_scores]
        return [*self.names, "simple_average", "blend", *extra]

    def _grouped(self, by: str) -> pd.DataFrame:
        columns = self._columns()
        weighted = self.row_scores[columns].mul(self.row_scores["weight"], axis=0).groupby(self.row_scores[by], sort=True).sum()
        return weighted.div(self.row_scores.groupby(by, sort=True)["weight"].sum(), axis=0)

    def per_fold(self) -> pd.DataFrame:
        """MRRMSE per fold (rows) of each member, the simple average and the blend (columns), rows weighted."""
        return self._grouped("fold")

    def per_cell_type(self) -> pd.DataFrame:
        return self._grouped("cell_type")

    def weight_sets(self) -> list[str]:
        return list(self.fit.weights)

    def table(self) -> str:
        """Members, simple average and tuned blend, in-sample and nested, with the weights."""
        scores = self.scores
        folds = self.row_scores["fold"].nunique()
        sets = self.weight_sets()
        search_seconds = sum(s.seconds for s in self.fit.searches.values())
        head = (
            f"blend of {len(self.names)} runs on {scores['rows']} OOF rows (scheme {self.members.scheme}, {folds} folds), "
            f"method {self.options.method}"
            + (f", {self.options.setting('trials')} trials" if self.options.method == "optuna" else "")
            + f", search {search_seconds:.1f} s"
        )
        weight_titles = ["weight" if k == ALL else f"w {k}" for k in sets]
        width = max(28, *(len(n) + 2 for n in self.names))
        lines = [head, f"{'':<{width}}" + "".join(f"{t:>16}" for t in weight_titles) + f"{'in-sample':>11}{'nested':>9}"]
        nested_available = scores["nested"] is not None
        for m, name in enumerate(self.names):
            weights = "".join(f"{self.fit.weights[k][m]:>16.3f}" for k in sets)
            value = scores["members"][name]
            lines.append(f"{name:<{width}}{weights}{value:>11.4f}{value:>9.4f}")
        blank = " " * (16 * len(sets))
        average = scores["simple_average"]
        lines.append(f"{'simple average':<{width}}{blank}{average:>11.4f}{average:>9.4f}")
        scales = "".join(f"{self.fit.scale[k]:>16.3f}" for k in sets)
        if self.options.scale:
            lines.append(f"{'  scale':<{width}}{scales}")
        if self.leaderboard is not None:
            probes = ", ".join(f"x{s:g} {v:.4f}" for s, v in self.leaderboard.scores.items())
            lines.append(f"test rows x {self.leaderboard.factor:.3f} from public-leaderboard probes ({probes}; "
                         f"{self.leaderboard.source}); the recorded scales include it")
        if "in_sample_unclipped" in scores:
            lines.append(f"{'tuned blend, unclipped':<{width}}{blank}{scores['in_sample_unclipped']:>11.4f}{'':>9}")
        nested = f"{scores['nested']:>9.4f}" if nested_available else f"{'-':>9}"
        label = "tuned blend" + (", clipped" if self.options.clip else "")
        lines.append(f"{label:<{width}}{blank}{scores['in_sample']:>11.4f}{nested}")
        clipped = scores["clipped"]
        clipped_nested = f"{'-':>9}" if clipped["nested"] is None else f"{clipped['nested']:>9.4f}"
        ratios = ", ".join(f"{name.replace('_', '-')} {clipped[f'{name}_relative_to_zeros']:.3f}" for name in ("in_sample", "nested")
                           if clipped[f"{name}_relative_to_zeros"] is not None)
        lines.append(f"{'tuned blend, ±4 layer':<{width}}{blank}{clipped['in_sample']:>11.4f}{clipped_nested}  (x zeros: {ratios})")
        best = min(scores["members"].values())
        lines.append(
            f"in-sample: weights fitted and scored on the same rows; nested: fitted on {folds - 1} folds, scored on the held-out one"
            + (f" (nested minus best member {scores['nested'] - best:+.4f}, minus simple average {scores['nested'] - average:+.4f})"
               if nested_available else "")
        )
        if self.choice["nested"]:
            nested_scores = ", ".join(f"{k} {v:.4f}" for k, v in self.choice["nested"].items())
            lines.append(f"written: {self.choice['chosen']} (nested: {nested_scores}); {self.choice['reason']}")
        # A search that fell back on a reference in-sample (the nested choice has its own line above).
        chosen = {k: s.chosen for k, s in self.fit.searches.items() if s.chosen != "search" and self.choice["chosen"] == "tuned"}
        for key, which in chosen.items():
            label = "the simple average" if which == "simple_average" else self.names[int(which.split(":")[1])]
            lines.append(f"note: for weight set {key!r} the search did not beat {label}, which is used instead")
        if self.members.dropped_rows and any(self.members.dropped_rows.values()):
            lines.append(f"note: rows not validated in every run were left out: {self.members.dropped_rows}")
        return "\n".join(lines)

    def record(self, *, name: str = "", files: dict | None = None, file_sha256: dict | None = None) -> BlendRecord:
        """The weights and scale applied to each test cell type (and the global set's, when one was fitted), as a record."""
        members = tuple(
            BlendMember(
                name=member,
                config=run.meta.get("config"),
                model=run.meta.get("model"),
                run_id=run.path.name,
                path=str(run.path),
                config_hash=run.meta.get("config_hash"),
                score=self.scores["members"][member],
            )
            for member, run in zip(self.names, self.members.runs)
        )
        return BlendRecord(
            members=members,
            weights=cell_type_weights(self.fit, self.members),
            clip=bool(self.options.clip),
            method=self.options.method,
            data_hash=self.members.data_hash,
            folds_hash=self.members.folds_hash,
            files=dict(files or {}),
            file_sha256=dict(file_sha256 or {}),
            name=name,
        )

    def to_json(self, *, name: str, files: dict | None = None, dataset: Dataset | None = None, file_sha256: dict | None = None) -> dict:
        """The blend's record (:class:`BlendRecord`) with its scores and search: the contract for re-running it elsewhere."""
        record = self.record(name=name, files=files, file_sha256=file_sha256).to_json()
        record.update({
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": self.options.to_json(),
            "weight_sets": {k: dict(zip(self.names, map(float, w))) for k, w in self.fit.weights.items()},
            "clip_range": "each gene's min..max over all de_train rows" if self.options.clip else None,
            "per_celltype": bool(self.options.per_celltype),
            "formula": "prediction[row] = clip?(scales[cell_type] * sum_m members[m].weights[cell_type] * member_m[row])",
            "scores": {
                **self.scores,
                "per_fold": {str(k): v for k, v in self.per_fold().to_dict(orient="index").items()},
                "per_cell_type": self.per_cell_type().to_dict(orient="index"),
            },
            "choice": self.choice,
            "nested_weights": {
                str(k): {g: dict(zip(self.names, map(float, w))) for g, w in fit.weights.items()} for k, fit in self.nested_fits.items()
            },
            "search": {
                key: {"chosen": s.chosen, "evaluations": s.evaluations, "seconds": round(s.seconds, 3), "history": s.history,
                      "details": s.details}
                for key, s in self.fit.searches.items()
            },
            "correlation": {"names": self.names, "matrix": np.round(self.correlation, 6).tolist()},
            "scheme": self.members.scheme,
            "n_genes": len(self.members.genes),
            "test_rows": int(len(self.members.test_ids)),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        })
        record["leaderboard"] = None if self.leaderboard is None else self.leaderboard.to_json()
        if dataset is not None:
            record["data_source"] = dataset.source
        return record


CHOICES = ("tuned", "simple_average", "best_member")


def _fixed_fit(weights: np.ndarray, chosen: str) -> Fit:
    """One global weight set that no search produced (the simple average or a single member)."""
    result = SearchResult(method=chosen, weights=weights, score=float("nan"), evaluations=0, seconds=0.0, chosen=chosen)
    return Fit(weights={ALL: weights}, scale={ALL: 1.0}, searches={ALL: result})


def _best_member(weighted_gram: np.ndarray) -> np.ndarray:
    members = np.eye(weighted_gram.shape[1] - 1)
    return members[int(np.argmin(objective.score_many(weighted_gram, members)))]


def blend_members(members: Members, dataset: Dataset, options: BlendOptions = BlendOptions(), *, progress=None) -> BlendResult:
    """Fit, score (in-sample and nested), choose and apply a blend of ``members`` (aligned on ``dataset``)."""
    say = progress or (lambda message: None)
    timings = {}
    started = time.perf_counter()
    gram = objective.gram_matrices(members.oof, members.y)
    # Scaling row r's Gram matrix by w_r^2 scales its RMSE by w_r: every search then minimises the weighted MRRMSE.
    weighted_gram = gram * (members.row_weights**2)[:, None, None]
    timings["gram"] = time.perf_counter() - started
    groups, folds = members.groups, members.folds
    if options.per_celltype and len(set(groups)) < 2:
        raise BlendError(
            f"--per-celltype needs validated rows of both lymphoid (B, NK, T cells) and myeloid cells; scheme "
            f"{members.scheme} validates only {sorted(set(members.keys['cell_type']))}; use bm_holdout, test_like or kfold runs"
        )
    need = set(members.test_groups)

    say(f"fitting weights ({options.method}) on {len(folds)} OOF rows")
    started = time.perf_counter()
    rows_digest = str(members.folds_hash) + str(members.data_hash)
    prefix = study_name_for(members.names, rows_digest) + f"-{options.method}-s{options.seed}"
    fit = fit_weights(weighted_gram, groups, options, need=need, storage=options.settings.get("storage"), study_prefix=prefix)
    timings["fit"] = time.perf_counter() - started

    ranges = clip_ranges(dataset.targets, members.dataset_folds, np.unique(folds)) if options.clip else None
    table = _member_scores(members, gram)
    clipped_y = clip_layer(members.y)
    nested_fits, choice = {}, None
    if options.nested:
        started = time.perf_counter()
        nested_fits, choice, table["blend_nested"], table["blend_nested_clipped"] = _nested_choice(
            members, gram, weighted_gram, options, ranges, clipped_y, say)
        n_members = len(members.names)
        if choice["chosen"] == "simple_average":
            fit = _fixed_fit(np.full(n_members, 1.0 / n_members), "simple_average")
        elif choice["chosen"] == "best_member":
            fit = _fixed_fit(_best_member(weighted_gram), "best_member")
        timings["nested"] = time.perf_counter() - started

    weights, scale = fit.params_for(groups)
    unclipped = gram_row_rmse(gram, weights, scale)
    oof = weighted_sum(members.oof, weights, scale)
    if options.clip:
        oof = _clip_by_fold(oof, folds, ranges)
        table["blend"] = rowwise_rmse(members.y, oof)
        table["blend_unclipped"] = unclipped
    else:
        table["blend"] = unclipped
    table["blend_clipped"] = rowwise_rmse(clipped_y, clip_layer(oof))
    table["zeros_clipped"] = rowwise_rmse(clipped_y, np.zeros_like(clipped_y))
    table["zeros"] = rowwise_rmse(members.y, np.zeros_like(members.y))

    result = BlendResult(
        members=members,
        options=options,
        fit=fit,
        row_scores=table,
        oof=oof,
        test=_test_predictions(members, fit, ranges[None] if ranges else None),
        correlation=objective.residual_correlation(gram),
        nested_fits=nested_fits,
        seconds=timings,
        gene_range=ranges[None] if ranges else None,
    )
    if choice is not None:
        result.choice = choice
    return result


def _member_scores(members: Members, gram: np.ndarray) -> pd.DataFrame:
    """Every OOF row's keys, weight, and RMSE of each member and of the simple average."""
    table = members.keys.copy()
    table["weight"] = members.row_weights
    for m, name in enumerate(members.names):
        table[name] = np.sqrt(np.maximum(gram[:, m, m], 0.0))
    n_members = len(members.names)
    table["simple_average"] = objective.row_rmse(gram, np.full(n_members, 1.0 / n_members))
    return table


def _predict_rows(members: Members, fitted: Fit, rows: np.ndarray, clip_range) -> np.ndarray:
    """The blend of ``fitted`` on ``rows`` (members' OOF predictions), clipped to ``clip_range`` when one is given."""
    w, s = fitted.params_for(members.groups[rows])
    prediction = weighted_sum(members.oof[:, rows], w, s)
    return prediction if clip_range is None else np.clip(prediction, *clip_range)


def _nested_choice(members: Members, gram: np.ndarray, weighted_gram: np.ndarray, options: BlendOptions, ranges,
                   clipped_y: np.ndarray, say) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """Each candidate (tuned weights, the simple average, the best member) fitted without each fold and scored on it.

    Returns the tuned fit of each fold, the choice (the candidate with the best weighted held-out score) and the
    chosen candidate's held-out row scores, on the values and on the clipped layer (±4).
    """
    groups, folds = members.groups, members.folds
    n_members = len(members.names)

    def row_scores(fitted: Fit, rows: np.ndarray, clip_range) -> np.ndarray:
        if clip_range is None:
            return gram_row_rmse(gram[rows], *fitted.params_for(groups[rows]))
        return rowwise_rmse(members.y[rows], _predict_rows(members, fitted, rows, clip_range))

    unique = np.unique(folds)
    if len(unique) < 2:
        raise BlendError("a nested score needs at least two folds; pass --no-nested")
    nested = {name: np.empty(len(folds)) for name in CHOICES}
    nested_fits, candidates_by_fold = {}, {}
    for k in unique:
        say(f"nested score: fitting without fold {k}")
        train, held = folds != k, np.flatnonzero(folds == k)
        candidates = {
            "tuned": fit_weights(weighted_gram[train], groups[train], options, need=set(groups[held])),
            "simple_average": _fixed_fit(np.full(n_members, 1.0 / n_members), "simple_average"),
            "best_member": _fixed_fit(_best_member(weighted_gram[train]), "best_member"),
        }
        nested_fits[int(k)], candidates_by_fold[int(k)] = candidates["tuned"], candidates
        for name, fitted in candidates.items():
            nested[name][held] = row_scores(fitted, held, ranges[int(k)] if ranges else None)
    nested_means = {name: float(np.average(values, weights=members.row_weights)) for name, values in nested.items()}
    # Ties go to the simpler candidate: the simple average, then a single member, then tuned weights.
    chosen = min(("simple_average", "best_member", "tuned"), key=lambda name: nested_means[name])
    reason = (
        "the tuned weights generalise best to held-out folds" if chosen == "tuned"
        else f"the tuned weights score no better on held-out folds than the {chosen.replace('_', ' ')}, which is written instead"
    )
    # The clipped layer needs the predictions themselves (the Gram matrices hold unclipped errors only): the chosen candidate's.
    nested_clipped = np.empty(len(folds))
    for k, candidates in candidates_by_fold.items():
        held = np.flatnonzero(folds == k)
        prediction = _predict_rows(members, candidates[chosen], held, ranges[k] if ranges else None)
        nested_clipped[held] = rowwise_rmse(clipped_y[held], clip_layer(prediction))
    return nested_fits, {"chosen": chosen, "nested": nested_means, "reason": reason}, nested[chosen], nested_clipped


def cell_type_weights(fit: Fit, members: Members) -> CellTypeWeights:
    """The fit's weight sets by test cell type (each takes its cell group's set), and the global set for any other."""

    def weight_set(weights: np.ndarray, scale) -> WeightSet:
        return WeightSet(weights=tuple(map(float, weights)), scale=float(scale))

    by_cell_type = {}
    for cell_type in sorted(set(members.test_cell_types)):
        group = members.test_groups[members.test_cell_types == cell_type][0]
        weights, scale = fit.params_for([group])
        by_cell_type[cell_type] = weight_set(weights[0], scale[0])
    other = weight_set(fit.weights[ALL], fit.scale[ALL]) if ALL in fit.weights else None
    return CellTypeWeights(by_cell_type=by_cell_type, other=other)


def _test_predictions(members: Members, fit: Fit, gene_range) -> np.ndarray:
    """The test rows as the record (and so the kernel) weighs them: by each row's cell type."""
    weights, scale = cell_type_weights(fit, members).for_rows(members.test_cell_types, len(members.names))
    test = weighted_sum(members.test, weights, scale)
    return test if gene_range is None else np.clip(test, *gene_range)


def with_leaderboard_scale(result: BlendResult, leaderboard: LeaderboardScale) -> BlendResult:
    """The blend with every scale multiplied by a leaderboard factor (:mod:`perturbkit.blend.leaderboard`).

    The test predictions (and the record's scales, so a kernel reproduces them) change; the OOF
    rows and every CV score stay as fitted, since the factor comes from public test rows.
    """
    fit = dataclasses.replace(result.fit, scale={k: v * leaderboard.factor for k, v in result.fit.scale.items()})
    return dataclasses.replace(result, fit=fit, test=_test_predictions(result.members, fit, result.gene_range),
                               leaderboard=leaderboard)
