"""Every score of a test prediction against a truth, per cell type and overall, each with a bootstrap interval.

- The competition's MRRMSE on the unclipped values, and as a ratio to predicting zeros;
- openproblems' suite on its clipped layer (``clipped_sign_log10_pval``, ±4): MRRMSE (and its
  ratio to zeros), MAE, Pearson, Spearman and cosine, the prediction clipped to ±4 as well
  (openproblems' models are trained on the clipped layer; clipping can only lower each error);
- the same four row-wise metrics on the unclipped values;
- cell-eval's DE-centric metrics on the unclipped values: sign agreement on the truly DE genes,
  top-k precision and overlap, the discrimination score (``perturbkit.metrics``).

Intervals: resample the compounds with replacement (each drawn compound brings all its rows),
``resamples`` times, seeded, and take the percentile interval of each score; a ratio to zeros is
resampled as a ratio. The discrimination score's per-row ranks are computed once, on all rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perturbkit.metrics import (
    DE_THRESHOLD,
    ROWWISE_METRICS,
    TOP_K,
    bootstrap_means,
    clip_layer,
    percentile_interval,
    rowwise_discrimination,
    rowwise_rmse,
    rowwise_sign_agreement,
    rowwise_top_k,
)

CLIPPED_PREFIX = "clipped_"
ALL_ROWS = "all"


@dataclass(frozen=True)
class ScoreSettings:
    threshold: float = DE_THRESHOLD
    top_k: tuple[int, ...] = TOP_K
    resamples: int = 1000
    seed: int = 0
    level: float = 0.95


def per_row_scores(truth, prediction, cell_types, clipped_truth=None, settings: ScoreSettings = ScoreSettings()) -> pd.DataFrame:
    """One row per test row, one column per per-row score (``zeros``: the RMSE of predicting zeros)."""
    truth = np.asarray(truth, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    clipped_truth = clip_layer(truth) if clipped_truth is None else np.asarray(clipped_truth, dtype=np.float64)
    clipped_prediction = clip_layer(prediction)
    columns = {"zeros": rowwise_rmse(truth, np.zeros_like(truth))}
    columns |= {name: metric(truth, prediction) for name, metric in ROWWISE_METRICS.items()}
    columns[CLIPPED_PREFIX + "zeros"] = rowwise_rmse(clipped_truth, np.zeros_like(clipped_truth))
    columns |= {CLIPPED_PREFIX + name: metric(clipped_truth, clipped_prediction) for name, metric in ROWWISE_METRICS.items()}
    columns["sign_agreement"] = rowwise_sign_agreement(truth, prediction, settings.threshold)
    columns |= rowwise_top_k(truth, prediction, settings.top_k, settings.threshold)
    columns["discrimination"] = rowwise_discrimination(truth, prediction, cell_types)
    return pd.DataFrame(columns)


RATIOS = {"mrrmse_rel": ("mrrmse", "zeros"), CLIPPED_PREFIX + "mrrmse_rel": (CLIPPED_PREFIX + "mrrmse", CLIPPED_PREFIX + "zeros")}


def _order(columns) -> list[str]:
    """The display order: each layer's MRRMSE, its ratio to zeros and zeros first."""
    first = ["mrrmse", "mrrmse_rel", "zeros", *(CLIPPED_PREFIX + n for n in ("mrrmse", "mrrmse_rel", "zeros"))]
    return [*first, *(c for c in columns if c not in first)]


def summarise(per_row: pd.DataFrame, cell_types, compounds, settings: ScoreSettings = ScoreSettings()) -> pd.DataFrame:
    """Per group (each cell type, then ``all``) and score: ``rows``, ``value`` (mean over rows; a ratio:
    of the two means) and the bootstrap interval ``low``, ``high``. Index: (group, metric)."""
    cell_types = np.asarray(cell_types, dtype=object)
    compounds = np.asarray(compounds, dtype=object)
    frames = []
    for group in [*sorted(pd.unique(cell_types)), ALL_ROWS]:
        rows = np.ones(len(per_row), bool) if group == ALL_ROWS else cell_types == group
        part = per_row[rows]
        value = part.mean(axis=0)
        for name, (numerator, denominator) in RATIOS.items():
            value[name] = value[numerator] / value[denominator]
        resampled = bootstrap_means(part, compounds[rows], ratios=RATIOS, resamples=settings.resamples, seed=settings.seed)
        frame = percentile_interval(resampled, settings.level).join(value.rename("value"))
        frame = frame.loc[_order(frame.index), ["value", "low", "high"]]
        frame.insert(0, "rows", int(rows.sum()))
        frames.append(frame.set_index(pd.MultiIndex.from_product([[group], frame.index], names=["group", "metric"])))
    return pd.concat(frames)


@dataclass(frozen=True)
class Scorecard:
    table: pd.DataFrame  # index (group, metric); columns rows, value, low, high
    settings: ScoreSettings
    compounds: int
    clipped_source: str  # where the clipped layer's truth came from
    notes: list[str] = field(default_factory=list)

    def value(self, metric: str, group: str = ALL_ROWS) -> float:
        return float(self.table.loc[(group, metric), "value"])

    def interval(self, metric: str, group: str = ALL_ROWS) -> tuple[float, float]:
        row = self.table.loc[(group, metric)]
        return float(row["low"]), float(row["high"])

    def describe(self) -> list[str]:
        s = self.settings
        return [
            *self.notes,
            f"clipped layer: {self.clipped_source}; predictions clipped to ±4",
            f"DE genes: |truth| > {s.threshold:g} (-log10 p > {s.threshold:g}); top-k: k = {', '.join(map(str, s.top_k))}; "
            "discrimination: L1 distance, within each cell type (1 = perfect)",
            f"intervals: {s.level:.0%} bootstrap percentile, compounds resampled ({self.compounds} compounds, "
            f"{s.resamples} resamples, seed {s.seed})",
        ]

    def text(self) -> str:
        cells = self.table.apply(lambda r: f"{r['value']:.4f} [{r['low']:.4f}, {r['high']:.4f}]", axis=1).unstack("group")
        groups = list(dict.fromkeys(self.table.index.get_level_values("group")))
        cells = cells.loc[list(dict.fromkeys(self.table.index.get_level_values("metric"))), groups]
        rows = self.table.groupby(level="group", sort=False)["rows"].first()
        cells.columns = [f"{g} ({rows[g]} rows)" for g in groups]
        return "\n".join([*self.describe(), "", cells.to_string()])

    def to_dict(self) -> dict:
        s = self.settings
        groups = {}
        for (group, metric), row in self.table.iterrows():
            entry = groups.setdefault(group, {"rows": int(row["rows"]), "metrics": {}})
            entry["metrics"][metric] = {k: (None if not np.isfinite(row[k]) else float(row[k])) for k in ("value", "low", "high")}
        return {
            "notes": list(self.notes),
            "clipped_layer": self.clipped_source,
            "de_threshold": s.threshold,
            "top_k": list(s.top_k),
            "bootstrap": {"unit": "compound", "compounds": self.compounds, "resamples": s.resamples, "seed": s.seed, "level": s.level},
            "groups": groups,
        }


def score_predictions(truth, prediction, keys: pd.DataFrame, *, clipped_truth=None, clipped_source: str = "the truth clipped to ±4",
                      settings: ScoreSettings = ScoreSettings(), notes=()) -> Scorecard:
    """Every score of ``prediction`` against ``truth`` (rows aligned; ``keys`` holds their cell_type and sm_name)."""
    cell_types = keys["cell_type"].astype(str).to_numpy()
    compounds = keys["sm_name"].astype(str).to_numpy()
    per_row = per_row_scores(truth, prediction, cell_types, clipped_truth, settings)
    return Scorecard(table=summarise(per_row, cell_types, compounds, settings), settings=settings,
                     compounds=len(pd.unique(compounds)), clipped_source=clipped_source, notes=list(notes))


def runs_table(runs: pd.DataFrame, cards: list[Scorecard]) -> pd.DataFrame:
    """One row per run (model, run_id), one column per score over all test rows: ``value [low, high]``."""
    rows = []
    for (_, run), card in zip(runs.iterrows(), cards):
        overall = card.table.xs(ALL_ROWS, level="group")
        rows.append({"model": run["model"], "run_id": run["run_id"],
                     **{metric: f"{r['value']:.4f} [{r['low']:.4f}, {r['high']:.4f}]" for metric, r in overall.iterrows()}})
    return pd.DataFrame(rows)


def runs_records(runs: pd.DataFrame, cards: list[Scorecard]) -> list[dict]:
    """``runs`` as JSON-ready records, each with its scorecard under ``test`` when the runs were scored."""
    records = runs.to_dict(orient="records")
    for record, card in zip(records, cards):
        record["test"] = card.to_dict()
    return records
