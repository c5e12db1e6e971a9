"""Does CV rank models like the test? The agreement study, on demo worlds whose test truth is known.

For each demo variant and each CV scheme, every model is cross-validated through the harness and
its fold-averaged test predictions are scored against the world's hidden ``test_truth.parquet``, on
its private rows (the 155 rows of Kaggle's 79 private compounds, outside ``public_test.csv``).
Per (variant, scheme) the study reports Spearman's rank correlation between the models' CV and
test MRRMSE (does the scheme pick the right model?) and per model the CV-to-test gap, both as
ratios to predicting zeros on the same rows, on the competition's unclipped values and on openproblems'
clipped layer (±4), each with a 95 % bootstrap interval over compounds. With a recipe, the recipe's blend is scored too, and
each member that carries overrides (a model setting of its own).
The scheme with the best mean Spearman across variants is the project's default
(``configs/cv.toml``); docs/validation.md shows the table ``make agreement`` writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from perturbkit.config import load_config
from perturbkit.data import load, resolve_data_dir
from perturbkit.data.hidden import read_hidden_test
from perturbkit.errors import ConfigError
from perturbkit.metrics import clip_layer, ratio_interval, rowwise_rmse
from perturbkit.scorecard import CLIPPED_PREFIX


@dataclass(frozen=True)
class AgreementResult:
    # variant, scheme, model, cv, cv_rel, clipped_cv_rel, test, test_rel, clipped_test, clipped_test_rel (each *_rel with
    # its bootstrap interval *_rel_low, *_rel_high), gap, seconds, recipe (a recipe-only row)
    scores: pd.DataFrame
    spearman: pd.DataFrame  # variants (rows) x schemes (columns), plus a "mean" row

    def best_scheme(self) -> str:
        return str(self.spearman.loc["mean"].idxmax())

    def markdown(self) -> str:
        lines = ["Spearman correlation between CV and hidden-test MRRMSE across models (higher: CV ranks models like the test)", ""]
        lines += _markdown_table(self.spearman.round(3), index_name="variant")
        lines += ["", f"Best mean agreement: `{self.best_scheme()}`.", ""]
        for (variant, scheme), group in self.scores.groupby(["variant", "scheme"], sort=False):
            lines += [f"### {variant}, {scheme}: ratios to predicting zeros (test: private rows, 95 % bootstrap interval over compounds)", ""]
            table = group.set_index("model").sort_values("test_rel")
            table = pd.DataFrame({"CV": _with_interval(table, "cv_rel"), "test": _with_interval(table, "test_rel"),
                                  "clipped CV": _with_interval(table, CLIPPED_PREFIX + "cv_rel"),
                                  "clipped test": _with_interval(table, CLIPPED_PREFIX + "test_rel"),
                                  "gap": table["gap"].map(_number), "seconds": table["seconds"].round(1)})
            lines += _markdown_table(table, index_name="model")
            lines.append("")
        return "\n".join(lines)

    def results_markdown(self, scheme: str | None = None) -> str:
        """The layout of docs/results.md in one table: one row per model, per variant its CV and test ratios to zeros on both layers, each
        with its 95 % bootstrap interval over compounds (the blend's nested CV has none), under ``scheme`` (default: the recipe's,
        else the first)."""
        blends = self.scores.loc[self.scores["model"] == RECIPE_BLEND, "scheme"]
        scheme = scheme or str((blends if len(blends) else self.scores["scheme"]).iloc[0])
        rows = self.scores[self.scores["scheme"] == scheme]
        columns = {}
        for variant, group in rows.groupby("variant", sort=False):
            group = group.set_index("model")
            columns |= {f"{variant} CV": _with_interval(group, "cv_rel"), f"{variant} test": _with_interval(group, "test_rel"),
                        f"{variant} clipped CV": _with_interval(group, CLIPPED_PREFIX + "cv_rel"),
                        f"{variant} clipped test": _with_interval(group, CLIPPED_PREFIX + "test_rel")}
        table = pd.DataFrame(columns).reindex(list(dict.fromkeys(rows["model"]))).fillna("-")
        return "\n".join(_markdown_table(table, index_name="model"))


def _number(value) -> str:
    return "-" if pd.isna(value) else f"{value:.3f}"


def _with_interval(table: pd.DataFrame, column: str) -> pd.Series:
    return pd.Series([_number(v) + ("" if pd.isna(lo) else f" [{lo:.3f}, {hi:.3f}]") for v, lo, hi in
                      zip(table[column], table[f"{column}_low"], table[f"{column}_high"])], index=table.index)


def _markdown_table(frame: pd.DataFrame, *, index_name: str) -> list[str]:
    header = [index_name, *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in frame.iterrows():
        lines.append("| " + " | ".join([str(name), *(f"{v}" for v in row.to_numpy())]) + " |")
    return lines


@dataclass(frozen=True)
class HiddenTest:
    """A demo world's test truth aligned to ``dataset.test`` (rows) and ``dataset.genes`` (columns).

    Scores use the private rows only: the public ones (``public_test.csv``) may have set a
    recipe's leaderboard factor, as Kaggle's public leaderboard would.
    """

    truth: np.ndarray
    private: np.ndarray  # bool per test row
    compounds: np.ndarray  # sm_name per test row: the bootstrap's unit

    def score(self, prediction: np.ndarray) -> float:
        return float(rowwise_rmse(self.truth[self.private], np.asarray(prediction)[self.private]).mean())

    def scores(self, prediction: np.ndarray, *, resamples: int = 1000, seed: int = 0) -> dict[str, float]:
        """MRRMSE on the private rows of both layers (unclipped: ``test``; openproblems' ±4: ``clipped_test``),
        each as a ratio to zeros (``*_rel``) with its 95 % bootstrap interval over compounds (``*_rel_low``, ``*_rel_high``)."""
        truth, prediction = self.truth[self.private], np.asarray(prediction)[self.private]
        out = {}
        for name, (y, p) in {"test": (truth, prediction), CLIPPED_PREFIX + "test": (clip_layer(truth), clip_layer(prediction))}.items():
            rmse, zeros = rowwise_rmse(y, p), rowwise_rmse(y, np.zeros_like(y))
            low, high = ratio_interval(rmse, zeros, self.compounds[self.private], resamples=resamples, seed=seed)
            out |= {name: float(rmse.mean()), f"{name}_rel": float(rmse.mean() / zeros.mean()), f"{name}_rel_low": low, f"{name}_rel_high": high}
        return out


def hidden_truth(data: str, dataset, *, demo_genes: int | None) -> HiddenTest:
    """The world's hidden test (``test_truth.parquet``) with its private rows (outside ``public_test.csv``: Kaggle's 155)."""
    truth, public = read_hidden_test(resolve_data_dir(data, demo_genes=demo_genes), dataset.test["id"], dataset.genes)
    return HiddenTest(truth=truth, private=~public, compounds=dataset.test["sm_name"].astype(str).to_numpy())


RECIPE_BLEND = "recipe blend"


def run_agreement(variants, schemes, models, *, demo_genes: int | None = None, recipe=None, oof_root: Path | str | None = None,
                  say=print) -> AgreementResult:
    """Cross-validate every model under every scheme on every demo variant and score the hidden test.

    With ``oof_root`` the runs are stored under ``<oof_root>/<variant>/``, and runs stored there with the same
    data, config and folds are reused. With ``recipe`` (a :class:`perturbkit.recipe.Recipe`) the recipe's blend (its
    members reused from there where their configs match) is scored too, as model ``recipe blend`` (CV: its nested score).
    """
    from perturbkit.cv import find_or_run
    from perturbkit.data.demo import check_gene_count, get_variant

    # Every name checked (and every config resolved) before the first world is generated or model fitted.
    if len(set(models)) < 2:
        raise ConfigError(f"--models {','.join(models)}: the agreement of rankings needs at least two models")
    for variant in variants:
        get_variant(variant)
    check_gene_count(demo_genes)
    configs = {(scheme, model): load_config(model, overrides=[f'cv.scheme="{scheme}"']) for scheme in schemes for model in models}
    rows = []
    for variant in variants:
        data = f"demo:{variant}"
        dataset = load(data, demo_genes=demo_genes)
        hidden = hidden_truth(data, dataset, demo_genes=demo_genes)
        store = Path(oof_root) / variant if oof_root is not None else None
        for scheme in schemes:
            for model in models:
                found = find_or_run(store, dataset, configs[scheme, model],
                                    say=lambda message, where=f"{variant:>12} {scheme:>17} {model:>16}": say(f"{where}: {message}"))
                # seconds: the model's CV time, as recorded by its run (reused or not)
                row = _score_row(variant, scheme, model, found.meta["scores"], hidden.scores(found.test),
                                 found.meta["timings"]["total_seconds"], recipe=False)
                rows.append(row)
                say(f"{variant:>12} {scheme:>17} {model:>16}: CV {row['cv_rel']:.3f}, test {row['test_rel']:.3f} "
                    f"[{row['test_rel_low']:.3f}, {row['test_rel_high']:.3f}], clipped {row['clipped_test_rel']:.3f} x zeros")
        if recipe is not None:
            rows += _recipe_rows(dataset, recipe, store, variant, hidden, say)
    scores = pd.DataFrame(rows)
    scores["gap"] = scores["cv_rel"] - scores["test_rel"]
    # The recipe's rows exist under its scheme only, so they stay out of the schemes' comparison.
    spearman = scores[~scores["recipe"]].groupby(["variant", "scheme"], sort=False).apply(
        lambda g: spearmanr(g["cv"], g["test"]).statistic, include_groups=False
    ).unstack("scheme")
    spearman = spearman.reindex(index=list(variants), columns=list(schemes))
    spearman.loc["mean"] = spearman.mean(axis=0)
    return AgreementResult(scores=scores, spearman=spearman)


def _score_row(variant: str, scheme: str, model: str, cv: dict, test: dict, seconds: float, *, recipe: bool) -> dict:
    """One row of :attr:`AgreementResult.scores` from a run's CV scores (meta ``scores``; a blend's: ``overall`` and
    ``relative_to_zeros``, its clipped layer's ``relative_to_zeros`` only) and :meth:`HiddenTest.scores` (``gap`` is added for all rows at once)."""
    row = {"variant": variant, "scheme": scheme, "model": model, "cv": cv["overall"]}
    for name, layer in (("cv_rel", cv), (CLIPPED_PREFIX + "cv_rel", cv.get("clipped") or {})):
        low, high = layer.get("relative_to_zeros_interval") or (np.nan, np.nan)
        row |= {name: layer.get("relative_to_zeros", np.nan), f"{name}_low": low, f"{name}_high": high}
    return {**row, **test, "seconds": seconds, "recipe": recipe}


def _recipe_rows(dataset, recipe, store: Path, variant: str, hidden: HiddenTest, say) -> list[dict]:
    import tempfile

    from perturbkit.recipe import run_recipe

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="perturbkit-agreement-") as submissions:
        outcome = run_recipe(dataset, recipe, oof_root=store, submissions=submissions, dataset_id=variant, say=lambda message: None)
    scores = outcome.blend.scores
    nested = {"overall": scores["nested"], "relative_to_zeros": scores["nested_relative_to_zeros"],
              "clipped": {"relative_to_zeros": scores["clipped"]["nested_relative_to_zeros"]}}
    rows = [_score_row(variant, recipe.scheme, RECIPE_BLEND, nested, hidden.scores(outcome.blend.test), time.perf_counter() - started, recipe=True)]
    say(f"{variant:>12} {recipe.scheme:>17} {RECIPE_BLEND:>16}: nested {rows[0]['cv_rel']:.3f}, test {rows[0]['test_rel']:.3f} "
        f"[{rows[0]['test_rel_low']:.3f}, {rows[0]['test_rel_high']:.3f}], clipped {rows[0]['clipped_test_rel']:.3f} x zeros ({scores['chosen']})")
    # Members with overrides are models of their own; each gets a row (the study's models already have theirs).
    for member, prediction in zip(outcome.members, outcome.blend.members.test):  # dataset.test order
        if member.label != member.model:
            rows.append(_score_row(variant, recipe.scheme, member.label, member.meta["scores"], hidden.scores(prediction),
                                   member.seconds, recipe=True))
    return rows


def write_agreement(result: AgreementResult, out_dir: Path | str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"csv": out_dir / "agreement.csv", "md": out_dir / "agreement.md", "results": out_dir / "results.md"}
    result.scores.to_csv(files["csv"], index=False)
    files["md"].write_text(result.markdown() + "\n")
    files["results"].write_text(result.results_markdown() + "\n")
    return files
