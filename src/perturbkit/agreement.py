"""Does CV rank models like the test? The agreement study, on demo worlds whose test truth is known.

For each demo variant and each CV scheme, every model is cross-validated through the harness and
its fold-averaged test predictions are scored against the world's hidden ``test_truth.parquet``, on
its private rows (those outside ``public_test.csv``, the rows its public leaderboard scores).
Per (variant, scheme) the study reports Spearman's rank correlation between the models' CV and
test MRRMSE (does the scheme pick the right model?) and per model the CV-to-test gap, both as
ratios to predicting zeros on the same rows. With a recipe, the recipe's blend is scored too, and
each member that carries overrides (a model setting of its own).
The scheme with the best mean Spearman across variants is the project's default
(``configs/cv.toml``); README "Validation schemes" shows the table ``make agreement`` writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from perturbkit.config import load_config
from perturbkit.cv import run_cv
from perturbkit.data import load, resolve_data_dir
from perturbkit.data.demo import read_hidden_test
from perturbkit.errors import ConfigError
from perturbkit.metrics import rowwise_rmse


@dataclass(frozen=True)
class AgreementResult:
    scores: pd.DataFrame  # variant, scheme, model, cv, cv_rel, test, test_rel, gap, seconds, recipe (a recipe-only row)
    spearman: pd.DataFrame  # variants (rows) x schemes (columns), plus a "mean" row

    def best_scheme(self) -> str:
        return str(self.spearman.loc["mean"].idxmax())

    def markdown(self) -> str:
        lines = ["Spearman correlation between CV and hidden-test MRRMSE across models (higher: CV ranks models like the test)", ""]
        lines += _markdown_table(self.spearman.round(3), index_name="variant")
        lines += ["", f"Best mean agreement: `{self.best_scheme()}`.", ""]
        for (variant, scheme), group in self.scores.groupby(["variant", "scheme"], sort=False):
            lines += [f"### {variant}, {scheme}: ratios to predicting zeros", ""]
            table = group.set_index("model")[["cv_rel", "test_rel", "gap", "seconds"]].sort_values("test_rel")
            lines += _markdown_table(table.round({"cv_rel": 3, "test_rel": 3, "gap": 3, "seconds": 1}), index_name="model")
            lines.append("")
        return "\n".join(lines)


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

    def score(self, prediction: np.ndarray) -> float:
        return float(rowwise_rmse(self.truth[self.private], np.asarray(prediction)[self.private]).mean())


def hidden_truth(data: str, dataset, *, demo_genes: int | None) -> HiddenTest:
    """The world's hidden test (``test_truth.parquet``) with its private rows (all rows without ``public_test.csv``)."""
    truth, public = read_hidden_test(resolve_data_dir(data, demo_genes=demo_genes), dataset.test["id"], dataset.genes)
    return HiddenTest(truth=truth, private=~public)


RECIPE_BLEND = "recipe blend"


def run_agreement(variants, schemes, models, *, demo_genes: int | None = None, recipe=None, oof_root: Path | str | None = None,
                  say=print) -> AgreementResult:
    """Cross-validate every model under every scheme on every demo variant and score the hidden test.

    With ``recipe`` (a :class:`perturbkit.recipe.Recipe`) and ``oof_root``, the runs are stored
    under ``<oof_root>/<variant>/`` and the recipe's blend (its members reused from there where
    their configs match) is scored too, as model ``recipe blend`` (CV: its nested score).
    """
    from perturbkit.cv import save_run
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
        zeros_test = hidden.score(np.zeros_like(hidden.truth))
        store = Path(oof_root) / variant if oof_root is not None else None
        for scheme in schemes:
            for model in models:
                started = time.perf_counter()
                result = run_cv(dataset, configs[scheme, model], progress=False)
                if store is not None:
                    save_run(result, store)
                scores = result.meta["scores"]
                test = hidden.score(result.test)
                rows.append(_score_row(variant, scheme, model, scores["overall"], scores["relative_to_zeros"], test, zeros_test,
                                       time.perf_counter() - started, recipe=False))
                say(f"{variant:>12} {scheme:>17} {model:>16}: CV {scores['relative_to_zeros']:.3f}, test {test / zeros_test:.3f} x zeros")
        if recipe is not None:
            rows += _recipe_rows(dataset, recipe, store, variant, hidden, zeros_test, say)
    scores = pd.DataFrame(rows)
    scores["gap"] = scores["cv_rel"] - scores["test_rel"]
    # The recipe's rows exist under its scheme only, so they stay out of the schemes' comparison.
    spearman = scores[~scores["recipe"]].groupby(["variant", "scheme"], sort=False).apply(
        lambda g: spearmanr(g["cv"], g["test"]).statistic, include_groups=False
    ).unstack("scheme")
    spearman = spearman.reindex(index=list(variants), columns=list(schemes))
    spearman.loc["mean"] = spearman.mean(axis=0)
    return AgreementResult(scores=scores, spearman=spearman)


def _score_row(variant: str, scheme: str, model: str, cv: float, cv_rel: float, test: float, zeros_test: float, seconds: float,
               *, recipe: bool) -> dict:
    """One row of :attr:`AgreementResult.scores` (``gap`` is added for all rows at once)."""
    return {"variant": variant, "scheme": scheme, "model": model, "cv": cv, "cv_rel": cv_rel, "test": test,
            "test_rel": test / zeros_test, "seconds": seconds, "recipe": recipe}


def _recipe_rows(dataset, recipe, store: Path, variant: str, hidden: HiddenTest, zeros_test: float, say) -> list[dict]:
    import tempfile

    from perturbkit.recipe import run_recipe

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="perturbkit-agreement-") as submissions:
        outcome = run_recipe(dataset, recipe, oof_root=store, submissions=submissions, dataset_id=variant, say=lambda message: None)
    scores = outcome.blend.scores
    zeros_cv = outcome.members[0].meta["scores"]["zeros"]
    test = hidden.score(outcome.blend.test)
    say(f"{variant:>12} {recipe.scheme:>17} {RECIPE_BLEND:>16}: nested {scores['nested'] / zeros_cv:.3f}, test {test / zeros_test:.3f} x zeros ({scores['chosen']})")
    rows = [_score_row(variant, recipe.scheme, RECIPE_BLEND, scores["nested"], scores["nested"] / zeros_cv, test, zeros_test,
                       time.perf_counter() - started, recipe=True)]
    # Members with overrides are models of their own; each gets a row (the study's models already have theirs).
    for member, prediction in zip(outcome.members, outcome.blend.members.test):  # dataset.test order
        if member.label != member.model:
            member_scores = member.meta["scores"]
            rows.append(_score_row(variant, recipe.scheme, member.label, member_scores["overall"], member_scores["relative_to_zeros"],
                                   hidden.score(prediction), zeros_test, member.seconds, recipe=True))
    return rows


def write_agreement(result: AgreementResult, out_dir: Path | str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"csv": out_dir / "agreement.csv", "md": out_dir / "agreement.md"}
    result.scores.to_csv(files["csv"], index=False)
    files["md"].write_text(result.markdown() + "\n")
    return files
