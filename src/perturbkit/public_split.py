"""Does the public leaderboard tell the private one? Kaggle's split against random ones, on the demo worlds.

Kaggle's public leaderboard scores the 100 test rows of 50 of the 129 test compounds
(:func:`perturbkit.data.layout.leaderboard_split`); the 155 rows of the other 79 rank the competition.
On Kaggle the same submissions scored about 0.55-0.62 publicly and 0.72-0.84 privately: the private
rows are the harder ones. A demo world knows every row's truth, so for a set of submissions (each
model's fold-averaged CV test predictions) :func:`split_statistics` measures, for one public/private
split of the compounds:

* ``zeros public`` / ``zeros private``: MRRMSE of the zeros submission on each side, and their
  ratio ``zeros private / public`` (how much harder the private rows are);
* ``private / public``: a submission's private over its public MRRMSE, averaged over submissions;
* ``Spearman public-private``: do the two boards order the submissions alike?
* ``factor gap``: per submission, the leaderboard factor its three public probes give
  (:mod:`perturbkit.blend.leaderboard`) minus the factor that is best on the private rows, averaged
  over the non-zero submissions (``absolute factor gap``: the mean of its absolute value);
* ``factor regret %``: how much worse the private MRRMSE is with the public factor than with the
  best private one, in per cent, averaged likewise.

:func:`run_public_split` does so for Kaggle's split and for ``splits`` random splits with 50 public
compounds each, per demo variant, and places Kaggle's split among the random ones (``percentile``:
the share of random splits whose value is at most Kaggle's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from perturbkit.blend.leaderboard import FACTOR_RANGE, PROBE_SCALES, factor_from_scores
from perturbkit.data import load
from perturbkit.data.hidden import read_hidden_test

STATISTICS = ("zeros public", "zeros private", "zeros private / public", "private / public", "Spearman public-private",
              "factor gap", "absolute factor gap", "factor regret %")


@dataclass(frozen=True)
class RowMoments:
    """Per test row, the means over genes that every scaled submission's row RMSE needs.

    A row's squared RMSE of ``s x p`` against ``t`` is ``truth_sq - 2 s cross + s**2 pred_sq``, so any
    split's MRRMSE at any probe scale costs one pass over rows.
    """

    truth_sq: np.ndarray  # rows: mean t**2
    cross: np.ndarray  # submissions x rows: mean t p
    pred_sq: np.ndarray  # submissions x rows: mean p**2

    @classmethod
    def of(cls, truth: np.ndarray, predictions) -> RowMoments:
        """From the truth (rows x genes) and the submissions (an iterable of rows x genes matrices)."""
        truth = np.asarray(truth, dtype=np.float64)
        cross, pred_sq = [], []
        for prediction in predictions:  # one at a time: at 18,211 genes a stack of them is large
            prediction = np.asarray(prediction, dtype=np.float64)
            cross.append(np.mean(prediction * truth, axis=1))
            pred_sq.append(np.mean(prediction**2, axis=1))
        return cls(truth_sq=np.mean(truth**2, axis=1), cross=np.array(cross), pred_sq=np.array(pred_sq))

    def mrrmse(self, rows: np.ndarray, scale: float | np.ndarray = 1.0) -> np.ndarray:
        """Each submission's MRRMSE on ``rows`` (bool mask) at ``scale`` (a number, or one per submission)."""
        scale = np.reshape(np.asarray(scale, dtype=np.float64), (-1, 1))
        squared = self.truth_sq[rows] - 2 * scale * self.cross[:, rows] + scale**2 * self.pred_sq[:, rows]
        return np.sqrt(np.maximum(squared, 0.0)).mean(axis=1)


def probe_factors(moments: RowMoments, rows: np.ndarray) -> np.ndarray:
    """The factor three probes on ``rows`` give each submission (as the recipe reads it off the public board)."""
    probes = {s: moments.mrrmse(rows, s) for s in PROBE_SCALES}
    return np.array([factor_from_scores({s: float(v[i]) for s, v in probes.items()}) for i in range(len(moments.cross))])


def best_factors(moments: RowMoments, rows: np.ndarray, *, steps: int = 60) -> np.ndarray:
    """Each submission's factor in ``FACTOR_RANGE`` with the lowest MRRMSE on ``rows``.

    A row's RMSE is the norm of an affine function of the factor, so the MRRMSE is convex in it and
    a golden-section search finds the minimum (to 1e-12 of the range after 60 steps).
    """
    low = np.full(len(moments.cross), FACTOR_RANGE[0], dtype=np.float64)
    high = np.full_like(low, FACTOR_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(steps):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        go_left = moments.mrrmse(rows, left) <= moments.mrrmse(rows, right)
        high, low = np.where(go_left, right, high), np.where(go_left, low, left)
    return (low + high) / 2


def split_statistics(moments: RowMoments, public: np.ndarray) -> dict[str, float]:
    """The :data:`STATISTICS` of one split: ``public`` says per test row whether it is public."""
    public = np.asarray(public, dtype=bool)
    private = ~public
    zeros_public = float(np.sqrt(moments.truth_sq[public]).mean())
    zeros_private = float(np.sqrt(moments.truth_sq[private]).mean())
    public_scores, private_scores = moments.mrrmse(public), moments.mrrmse(private)
    scored = moments.pred_sq.max(axis=1) > 0  # a zeros submission has no factor
    sub = RowMoments(moments.truth_sq, moments.cross[scored], moments.pred_sq[scored])
    public_factor, private_factor = probe_factors(sub, public), best_factors(sub, private)
    regret = sub.mrrmse(private, public_factor) / sub.mrrmse(private, private_factor) - 1
    return {
        "zeros public": zeros_public,
        "zeros private": zeros_private,
        "zeros private / public": zeros_private / zeros_public,
        "private / public": float(np.mean(private_scores / public_scores)),
        "Spearman public-private": float(spearmanr(public_scores, private_scores).statistic),
        "factor gap": float(np.mean(public_factor - private_factor)),
        "absolute factor gap": float(np.mean(np.abs(public_factor - private_factor))),
        "factor regret %": float(100 * np.mean(regret)),
    }


def random_public_rows(compounds: pd.Series, n_public: int, rng: np.random.Generator) -> np.ndarray:
    """Per test row, whether its compound is among ``n_public`` compounds drawn at random."""
    names = np.sort(compounds.unique())
    return compounds.isin(rng.choice(names, size=n_public, replace=False)).to_numpy()


def compare_splits(moments: RowMoments, compounds: pd.Series, kaggle_public: np.ndarray, *, splits: int, seed: int = 0
                   ) -> pd.DataFrame:
    """Kaggle's split against ``splits`` random ones with as many public compounds: per statistic (rows)
    ``kaggle``, the random splits' ``mean``, ``p5`` and ``p95``, and Kaggle's ``percentile`` among them."""
    compounds = pd.Series(np.asarray(compounds, dtype=str))
    kaggle = split_statistics(moments, kaggle_public)
    n_public = compounds[kaggle_public].nunique()
    rng = np.random.default_rng(seed)
    random = pd.DataFrame([split_statistics(moments, random_public_rows(compounds, n_public, rng)) for _ in range(splits)])
    return pd.DataFrame({
        "kaggle": pd.Series(kaggle),
        "mean": random.mean(),
        "p5": random.quantile(0.05),
        "p95": random.quantile(0.95),
        "percentile": pd.Series({name: float(100 * (random[name] <= value).mean()) for name, value in kaggle.items()}),
    }).loc[list(STATISTICS)]


@dataclass(frozen=True)
class PublicSplitStudy:
    table: pd.DataFrame  # variant, statistic, kaggle, mean, p5, p95, percentile
    models: tuple[str, ...]
    splits: int
    n_genes: int

    def text(self) -> str:
        """What ``perturbkit public-split`` prints: a title line and :meth:`markdown`."""
        return (f"Kaggle's split (random splits of {self.splits} x 50 public compounds: mean [p5, p95], Kaggle's percentile); "
                f"{len(self.models)} submissions, {self.n_genes} genes\n" + self.markdown())

    def write_table(self, out: Path) -> Path:
        """The long table as CSV at ``out`` (its folder created)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(out, index=False)
        return out

    def markdown(self) -> str:
        """One table: per statistic, Kaggle's split and the random splits' mean [p5, p95] on each variant."""
        variants = list(dict.fromkeys(self.table["variant"]))
        lines = ["| statistic | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
        for statistic in STATISTICS:
            cells = []
            for variant in variants:
                row = self.table[(self.table["variant"] == variant) & (self.table["statistic"] == statistic)].iloc[0]
                cells.append(f"{row['kaggle']:.3f} ({row['mean']:.3f} [{row['p5']:.3f}, {row['p95']:.3f}], {row['percentile']:.0f} %)")
            lines.append(f"| {statistic} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _test_predictions(dataset, model: str, store: Path | None, say) -> np.ndarray:
    """The model's fold-averaged CV test predictions in ``dataset.test`` order, reused from ``store`` when stored."""
    from perturbkit.config import load_config
    from perturbkit.cv import find_or_run

    return find_or_run(store, dataset, load_config(model), say=lambda message: say(f"{model:>16}: {message}")).test


def run_public_split(variants, models, *, demo_genes: int | None = None, splits: int = 1000, seed: int = 0,
                     oof_root: Path | str | None = None, say=print) -> PublicSplitStudy:
    """:func:`compare_splits` on every demo variant, the submissions being ``models``' CV test predictions
    (default config and scheme; runs stored under ``<oof_root>/<variant>/`` are reused, new ones stored there)."""
    parts, n_genes = [], 0
    for variant in variants:
        dataset = load(f"demo:{variant}", demo_genes=demo_genes)
        n_genes = dataset.n_genes
        store = Path(oof_root) / variant if oof_root is not None else None
        truth, public = read_hidden_test(dataset.source, dataset.test["id"], dataset.genes)
        predictions = (_test_predictions(dataset, model, store, say=lambda m, v=variant: say(f"{v:>12} {m}")) for model in models)
        table = compare_splits(RowMoments.of(truth, predictions), dataset.test["sm_name"], public, splits=splits, seed=seed)
        parts.append(table.rename_axis("statistic").reset_index().assign(variant=variant))
    table = pd.concat(parts, ignore_index=True)[["variant", "statistic", "kaggle", "mean", "p5", "p95", "percentile"]]
    return PublicSplitStudy(table=table, models=tuple(models), splits=splits, n_genes=n_genes)
