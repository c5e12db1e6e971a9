"""The agreement study: CV vs hidden-test scores per scheme and variant, Spearman, the recipe's blend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perturbkit.agreement import RECIPE_BLEND, hidden_truth, run_agreement, write_agreement
from perturbkit.data import load, resolve_data_dir
from perturbkit.data.demo import list_variants
from perturbkit.data.hidden import PUBLIC_FILE
from perturbkit.recipe import load_recipe

GENES = 60


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERTURBKIT_DEMO_ROOT", str(root))
        yield root


def test_hidden_truth_is_aligned_and_scores_only_the_private_rows(demo_root):
    variant = list_variants()[0]
    data = f"demo:{variant}"
    dataset = load(data, demo_genes=GENES)
    hidden = hidden_truth(data, dataset, demo_genes=GENES)
    assert hidden.truth.shape == (len(dataset.test), GENES)
    public = set(pd.read_csv(resolve_data_dir(data, demo_genes=GENES) / PUBLIC_FILE)["id"])
    np.testing.assert_array_equal(hidden.private, ~dataset.test["id"].isin(public).to_numpy())
    assert (~hidden.private).sum() == 100 and hidden.private.sum() == 155  # Kaggle's public and private rows
    rms = np.sqrt((hidden.truth.astype(np.float64) ** 2).mean(axis=1))
    assert hidden.score(np.zeros_like(hidden.truth)) == pytest.approx(rms[hidden.private].mean())
    # A prediction that is perfect on the public rows only scores like zeros there: the public rows never count.
    public_only = np.where(hidden.private[:, None], 0.0, hidden.truth)
    assert hidden.score(public_only) == pytest.approx(hidden.score(np.zeros_like(hidden.truth)))


def test_study_reports_spearman_per_scheme_and_variant_and_the_recipe_blend(demo_root, tmp_path):
    variants = list_variants()[:2]
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text('scheme = "bm_holdout"\nleaderboard = true\n[[members]]\nmodel = "compound_mean"\n[[members]]\nmodel = "celltype_mean"\n'
                           '[[members]]\nmodel = "transfer_ridge"\nset = ["params.n_components=4"]\n[blend]\nmethod = "slsqp"\n')
    result = run_agreement(variants, ["lymphoid_holdout", "bm_holdout"], ["zeros", "compound_mean", "celltype_mean"],
                           demo_genes=GENES, recipe=load_recipe(recipe_path), oof_root=tmp_path / "oof", say=lambda m: None)
    assert list(result.spearman.index) == [*variants, "mean"]
    assert list(result.spearman.columns) == ["lymphoid_holdout", "bm_holdout"]
    assert result.spearman.abs().max().max() <= 1.0
    zeros = result.scores[result.scores["model"] == "zeros"]
    np.testing.assert_allclose(zeros["test_rel"], 1.0)
    np.testing.assert_allclose(zeros["cv_rel"], 1.0)
    np.testing.assert_allclose(zeros[["clipped_test_rel", "clipped_cv_rel", "test_rel_low", "clipped_test_rel_high"]], 1.0)
    # both layers, each test ratio inside its bootstrap interval over compounds
    for layer in ("test_rel", "clipped_test_rel"):
        assert ((result.scores[f"{layer}_low"] <= result.scores[layer]) & (result.scores[layer] <= result.scores[f"{layer}_high"])).all()
    assert (result.scores["clipped_test"] < result.scores["test"]).all()  # clipping to ±4 only shrinks the errors
    blends = result.scores[result.scores["model"] == RECIPE_BLEND]
    assert list(blends["variant"]) == variants and (blends["scheme"] == "bm_holdout").all()
    assert (blends["clipped_cv_rel"] > 0).all()  # the blend's nested score on the clipped layer over zeros' (NaN fails)
    # a member with overrides is scored as a model of its own, outside the schemes' Spearman
    member = result.scores[result.scores["model"] == "transfer_ridge params.n_components=4"]
    assert list(member["variant"]) == variants and member["recipe"].all() and (member["test_rel"] > 0).all()
    assert not result.scores.loc[result.scores["model"] == "zeros", "recipe"].any()
    # the recipe's members were reused from the study's own runs: one run per model and scheme, plus the new member
    assert len(list((tmp_path / "oof" / variants[0]).glob("*/*"))) == 7
    # a second study reuses every stored run (find_or_run): nothing is cross-validated again, the scores are the same
    said = []
    again = run_agreement(variants, ["lymphoid_holdout", "bm_holdout"], ["zeros", "compound_mean", "celltype_mean"],
                          demo_genes=GENES, oof_root=tmp_path / "oof", say=said.append)
    assert len(list((tmp_path / "oof" / variants[0]).glob("*/*"))) == 7 and not any("cross-validating" in m for m in said)
    studied = result.scores[~result.scores["recipe"]]
    np.testing.assert_array_equal(again.scores[["cv", "test", "seconds"]].to_numpy(), studied[["cv", "test", "seconds"]].to_numpy())
    files = write_agreement(result, tmp_path / "report")
    text = files["md"].read_text()
    assert "Spearman" in text and result.best_scheme() in text and "clipped test" in text
    results = files["results"].read_text().splitlines()
    assert results[0] == "| model | " + " | ".join(f"{v} {c}" for v in variants for c in ("CV", "test", "clipped CV", "clipped test")) + " |"
    assert any(line.startswith(f"| {RECIPE_BLEND} | ") for line in results)
