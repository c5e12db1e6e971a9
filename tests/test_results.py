"""The Results page is written by a command: its header says how, its tables come from the agreement study."""

from __future__ import annotations

import pandas as pd
import pytest

from perturbkit.agreement import RECIPE_BLEND, AgreementResult
from perturbkit.data.demo import GENERATOR_VERSION, list_variants
from perturbkit.io import OutputError
from perturbkit.recipe import load_recipe
from perturbkit.results import results_page, run_results


def _row(variant, model, cv, test, *, recipe=False):
    row = {"variant": variant, "scheme": "test_like", "model": model, "cv": cv, "test": 2 * test, "clipped_test": test, "recipe": recipe}
    for name, value in (("cv_rel", cv), ("clipped_cv_rel", cv + 0.01), ("test_rel", test), ("clipped_test_rel", test + 0.02)):
        row |= {name: value, f"{name}_low": value - 0.05, f"{name}_high": value + 0.05}
    return row


def test_page_has_its_provenance_both_layers_and_the_best_test_in_bold():
    rows = []
    for variant, best in (("default", RECIPE_BLEND), ("fewcells", "compound_mean")):
        rows += [_row(variant, "zeros", 1.0, 1.0), _row(variant, "compound_mean", 0.9, 0.8 if best == "compound_mean" else 0.95),
                 _row(variant, RECIPE_BLEND, 0.85, 0.7 if best == RECIPE_BLEND else 0.9, recipe=True),
                 _row(variant, "transfer_ridge params.n_components=64", 0.88, 0.92, recipe=True)]
    result = AgreementResult(scores=pd.DataFrame(rows), spearman=pd.DataFrame())
    page = results_page(result, command="perturbkit results --demo-genes 300", genes=300, seed=0, generator=5, date="2026-12-06")
    assert page.startswith("# Results\n")
    assert "`perturbkit results --demo-genes 300` on 2026-12-06" in page and "300 genes (world seed 0, generator v5)" in page
    assert "scheme `test_like`" in page
    tables = [line for line in page.splitlines() if line.startswith("|")]
    header = "| model | default CV | default test | fewcells CV | fewcells test |"
    assert tables.count(header) == 2  # the unclipped layer and the clipped one
    unclipped = tables[:len(tables) // 2]
    # the study's models, then the recipe's member with overrides, then the blend
    assert [line.split(" | ")[0] for line in unclipped[2:]] == ["| zeros", "| compound_mean", "| `transfer_ridge params.n_components=64`",
                                                               f"| **{RECIPE_BLEND}**"]
    assert unclipped[-1] == f"| **{RECIPE_BLEND}** | 0.850 | **0.700** [0.650, 0.750] | 0.850 | 0.900 [0.850, 0.950] |"
    assert unclipped[3] == "| compound_mean | 0.900 | 0.950 [0.900, 1.000] | 0.900 | **0.800** [0.750, 0.850] |"
    clipped = tables[len(tables) // 2:]
    assert clipped[-1] == f"| **{RECIPE_BLEND}** | 0.860 | **0.720** [0.670, 0.770] | 0.860 | 0.920 [0.870, 0.970] |"
    assert sum(line.count("**") for line in tables) == 2 * (2 * 2 + 2)  # one bold test per variant and layer, plus the blend's name
    assert "Zeros score 2.000 / 2.000 on the private tests of default / fewcells" in page


def test_run_results_writes_the_page_from_the_study_under_the_recipes_scheme(tmp_path, monkeypatch):
    monkeypatch.setenv("PERTURBKIT_DEMO_ROOT", str(tmp_path / "demo"))
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text('scheme = "bm_holdout"\nleaderboard = true\n[[members]]\nmodel = "compound_mean"\n'
                           '[[members]]\nmodel = "celltype_mean"\n[blend]\nmethod = "slsqp"\n')
    variants = list_variants()[:1]
    out = run_results(variants, ["zeros", "compound_mean"], load_recipe(recipe_path), demo_genes=60, oof_root=tmp_path / "oof",
                      out=tmp_path / "docs" / "results.md", say=lambda message: None)
    page = out.read_text()
    assert f"`perturbkit results --demo-genes 60 --recipe {recipe_path} --models zeros,compound_mean`" in page
    assert f"60 genes (world seed 0, generator v{GENERATOR_VERSION}), scheme `bm_holdout`" in page
    assert page.count(f"| model | {variants[0]} CV | {variants[0]} test |") == 2
    assert page.count(f"| **{RECIPE_BLEND}** |") == 2 and page.count("| compound_mean |") == 2
    assert not [path for path in out.parent.iterdir() if path != out]  # written atomically, nothing else left



def test_an_unwritable_out_is_refused_before_the_study(tmp_path):
    (tmp_path / "a_file").write_text("")
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text('[[members]]\nmodel = "compound_mean"\n[[members]]\nmodel = "celltype_mean"\n')
    with pytest.raises(OutputError, match="a_file"):
        run_results(list_variants()[:1], ["zeros", "compound_mean"], load_recipe(recipe_path), demo_genes=60,
                    oof_root=tmp_path / "oof", out=tmp_path / "a_file" / "results.md", say=lambda message: None)
    assert not (tmp_path / "oof").exists()
