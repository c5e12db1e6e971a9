"""The guarantees the suite claims, each with a one-line breakage it must catch.

Each :class:`Mutation` replaces an exact piece of source text (it must occur exactly once in its
file) and names the test files that must fail once it is applied. ``tests/mutations/run.py``
(``make mutate``) applies them one at a time to a temporary copy of the tree and reports each as
caught or missed; ``tests/test_mutations.py`` checks in the fast suite that every original text
is still there, so a refactor cannot silently turn a record into a no-op. A new guarantee gets a
record here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the repository root
    original: str
    replacement: str
    tests: tuple[str, ...]  # test files (or node ids) that must fail under the mutation
    why: str


MUTATIONS = (
    Mutation(
        name="harness_fits_later_folds_on_their_validation_rows",
        file="src/perturbkit/cv/__init__.py",
        original="        fold_start = time.perf_counter()\n",
        replacement="        train_idx = np.union1d(train_idx, valid_idx) if fold else train_idx\n        fold_start = time.perf_counter()\n",
        tests=("tests/test_harness_leakage.py",),
        why="every fold's OOF predictions come from a model that never saw that fold's targets",
    ),
    Mutation(
        name="nested_blend_clips_with_all_rows_ranges",
        file="src/perturbkit/blend/core.py",
        original="row_scores(fitted, held, ranges[int(k)] if ranges else None)",
        replacement="row_scores(fitted, held, ranges[None] if ranges else None)",
        tests=("tests/test_blend.py",),
        why="the nested score clips each held-out fold to gene ranges of the other folds' rows only",
    ),
    Mutation(
        name="blend_nested_clipped_layer_leaves_the_truth_unclipped",
        file="src/perturbkit/blend/core.py",
        original="nested_clipped[held] = rowwise_rmse(clipped_y[held], clip_layer(prediction))",
        replacement="nested_clipped[held] = rowwise_rmse(members.y[held], clip_layer(prediction))",
        tests=("tests/test_blend.py::test_clipped_layer_scores_of_the_blend_match_a_hand_computation",),
        why="the blend's nested clipped-layer score clips truth and prediction to ±4, as a run's clipped score does",
    ),
    Mutation(
        name="blend_nested_clipped_layer_scores_another_candidate",
        file="src/perturbkit/blend/core.py",
        original="prediction = _predict_rows(members, candidates[chosen], held, ranges[k] if ranges else None)",
        replacement="prediction = _predict_rows(members, candidates['simple_average'], held, ranges[k] if ranges else None)",
        tests=("tests/test_blend.py::test_clipped_layer_scores_of_the_blend_match_a_hand_computation",),
        why="each fold's nested clipped-layer score is the written candidate's fit without that fold, on that fold",
    ),
    Mutation(
        name="list_runs_reads_staging_folders",
        file="src/perturbkit/cv/store.py",
        original='    return run_dir.name.startswith(".")\n',
        replacement="    return False\n",
        tests=("tests/test_reliability.py",),
        why="a writer killed before its rename leaves a hidden staging folder that no reader lists or loads",
    ),
    Mutation(
        name="cv_seeds_accept_negative_values",
        file="src/perturbkit/config.py",
        original="    seeds: list[NonNegativeInt] = []\n",
        replacement="    seeds: list[int] = []\n",
        tests=("tests/test_config.py",),
        why="`--set 'cv.seeds=[-1,2]'` is refused before any work, like `--seeds -1,2`",
    ),
    Mutation(
        name="tuner_prunes_on_the_unweighted_fold_score",
        file="src/perturbkit/cv/__init__.py",
        original="on_fold(fold, float(np.average(row_rmse[done], weights=row_weights[done])))",
        replacement="on_fold(fold, score)",
        tests=("tests/test_tune.py::test_the_pruner_sees_the_weighted_running_score_the_trial_returns",),
        why="the pruner sees the scheme-weighted running score that the trial returns as its objective",
    ),
    Mutation(
        name="blend_weighs_rows_by_todays_scheme_code",
        file="src/perturbkit/blend/members.py",
        original="    return weights[0] / weights[0].mean()\n",
        replacement="    from perturbkit.cv import splitter_for\n    weights = splitter_for(dataset, runs[0].meta['config']['cv']).row_weights(dataset.obs)[obs_index.get_indexer(common)]\n    return weights / weights.mean()\n",
        tests=("tests/test_blend.py",),
        why="a blend weighs each row as the runs' stored scores did, not as the scheme code of today does",
    ),
    Mutation(
        name="target_statistics_cached_across_fits",
        file="src/perturbkit/features/target_stats.py",
        original="                group_stats = _group_statistics(y[rows])\n",
        replacement="                group_stats = _group_statistics.__dict__.setdefault((column, names[code]), _group_statistics(y[rows]))\n",
        tests=("tests/test_leakage.py", "tests/test_features.py"),
        why="target statistics come from the fold's own training rows, never from an earlier fit",
    ),
    Mutation(
        name="transfer_profiles_impute_from_the_rows_own_cell_type",
        file="src/perturbkit/features/blocks/transfer_profiles.py",
        original="table.source_inputs(compounds[rows], t, others)",
        replacement="table.source_inputs(compounds[rows], -1, others)",
        tests=("tests/test_transfer_profiles.py",),
        why="a row's own target never enters its transfer_profiles features: a missing profile is imputed from the compound's other cell types only",
    ),
    Mutation(
        name="transfer_profiles_fill_the_own_cell_type_block",
        file="src/perturbkit/features/blocks/transfer_profiles.py",
        original="cells[cells >= 0]] = 0.0",
        replacement="cells[cells >= 0]] += 0.0",
        tests=("tests/test_transfer_profiles.py",),
        why="a row's own cell type block of transfer_profiles is zeros, for a compound the table has not seen too",
    ),
    Mutation(
        name="results_page_bolds_the_worst_test",
        file="src/perturbkit/results.py",
        original="rel.index != rel.idxmin()",
        replacement="rel.index != rel.idxmax()",
        tests=("tests/test_results.py",),
        why="the Results page marks each variant's best (lowest) test ratio, on both layers",
    ),
    Mutation(
        name="documented_make_target_renamed",
        file="Makefile",
        original="\nresults: $(STAMP) ##",
        replacement="\nresults-page: $(STAMP) ##",
        tests=("tests/test_readme.py",),
        why="every make target the README and docs/ name exists: renaming one without the docs fails",
    ),
)
