"""The Results page (``docs/results.md``): the agreement study under the recipe's scheme, written as markdown.

``make results`` runs :func:`perturbkit.agreement.run_agreement` on every demo variant with the recipe's
scheme only and writes the page with a header saying how it was produced (command, generator version,
genes, world seed, date), so the tables are never typed by hand.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pandas as pd

from perturbkit.agreement import RECIPE_BLEND, AgreementResult, _markdown_table, _number, run_agreement
from perturbkit.io import atomic_file, check_writable
from perturbkit.scorecard import CLIPPED_PREFIX

EXPLANATION = (
    "Each cell is a ratio to predicting zeros on the same rows: **CV** (the run's weighted OOF MRRMSE; for the "
    "recipe's blend, its nested score) and **test** (the run's fold-averaged test predictions on the variant's hidden "
    "`test_truth.parquet`, **Kaggle's private rows only**: the 155 B/Myeloid rows of its 79 private compounds; the 100 "
    "rows of its 50 public compounds set the recipe's leaderboard factor), with its 95 % bootstrap interval over the "
    "private compounds (1,000 resamples). Best test per variant in bold. Models run with their shipped configs; rows "
    "named with overrides are the recipe's members that carry them. What the tables show: "
    "[models.md](models.md#what-the-results-show)."
)
LAYERS = {
    "": "**The competition's layer** (unclipped signed −log10 p-values, Kaggle's MRRMSE):",
    CLIPPED_PREFIX: "**openproblems' clipped layer** (truth and predictions clipped to ±4, as its benchmark scores; the "
                    "recipe blend's CV is its nested score on this layer, with the weights fitted on the unclipped one):",
}


def layer_table(scores: pd.DataFrame, prefix: str = "") -> list[str]:
    """One layer's table: a row per model (the study's models, then the recipe's members with overrides, then its
    blend), per variant its CV ratio and its test ratio with interval, the best test of each variant in bold."""
    order = [*scores.loc[~scores["recipe"], "model"], *scores.loc[scores["recipe"] & (scores["model"] != RECIPE_BLEND), "model"],
             *scores.loc[scores["model"] == RECIPE_BLEND, "model"]]
    columns = {}
    for variant, group in scores.groupby("variant", sort=False):
        group = group.set_index("model")
        rel = group[f"{prefix}test_rel"]
        numbers = rel.map(_number).where(rel.index != rel.idxmin(), f"**{_number(rel.min())}**")
        low, high = (group[f"{prefix}test_rel_{end}"].map("{:.3f}".format) for end in ("low", "high"))
        columns |= {f"{variant} CV": group[f"{prefix}cv_rel"].map(_number), f"{variant} test": numbers + " [" + low + ", " + high + "]"}
    table = pd.DataFrame(columns).reindex(list(dict.fromkeys(order))).fillna("-")
    table.index = [f"**{name}**" if name == RECIPE_BLEND else f"`{name}`" if " " in name else name for name in table.index]
    return _markdown_table(table, index_name="model")


def results_page(result: AgreementResult, *, command: str, genes: int, seed: int, generator: int, date: str) -> str:
    """The whole page: header (how it was produced), both layers' tables, and zeros' own private-row MRRMSE."""
    scheme = str(result.scores["scheme"].iloc[0])
    lines = ["# Results", "",
             f"Written by `{command}` on {date}: every demo variant at {genes:,} genes (world seed {seed}, generator v{generator}), "
             f"scheme `{scheme}`. Do not edit by hand: rerun the command (`make results`, see [development.md](development.md)).",
             "", EXPLANATION, ""]
    for prefix, title in LAYERS.items():
        lines += [title, "", *layer_table(result.scores, prefix), ""]
    zeros = result.scores[result.scores["model"] == "zeros"].set_index("variant")
    if len(zeros):
        lines += [f"Zeros score {' / '.join(map(_number, zeros['test']))} on the private tests of "
                  f"{' / '.join(zeros.index)} (the real private test: 1.57) and {' / '.join(map(_number, zeros[CLIPPED_PREFIX + 'test']))} "
                  "on the clipped layer (real: 0.918): compare ratios, not values.", ""]
    return "\n".join(lines)


def run_results(variants, models, recipe, *, demo_genes: int | None, oof_root: Path | str, out: Path | str, say=print) -> Path:
    """Run the agreement study under ``recipe``'s scheme only and write the Results page to ``out`` (atomically)."""
    import json

    from perturbkit.data import resolve_data_dir

    check_writable(oof_root, "--oof")
    check_writable(Path(out).parent, "--out")  # before hours of study, not after
    result = run_agreement(variants, [recipe.scheme], models, demo_genes=demo_genes, recipe=recipe, oof_root=oof_root, say=say)
    world = json.loads((resolve_data_dir(f"demo:{variants[0]}", demo_genes=demo_genes) / "world.json").read_text())
    command = f"perturbkit results --demo-genes {demo_genes or 0} --recipe {recipe.source} --models {','.join(models)}"
    page = results_page(result, command=command, genes=world["n_genes"], seed=world["seed"], generator=world["generator_version"],
                        date=datetime.date.today().isoformat())
    with atomic_file(out) as staging:
        staging.write_text(page)
    return Path(out)
