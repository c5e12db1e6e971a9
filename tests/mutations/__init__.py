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
        file="src/perturbkit/blend/nested.py",
        original="row_scores(fitted, held, ranges[int(k)] if ranges else None)",
        replacement="row_scores(fitted, held, ranges[None] if ranges else None)",
        tests=("tests/test_blend.py",),
        why="the nested score clips each held-out fold to gene ranges of the other folds' rows only",
    ),
    Mutation(
        name="blend_nested_clipped_layer_leaves_the_truth_unclipped",
        file="src/perturbkit/blend/nested.py",
        original="clipped[held] = rowwise_rmse(clipped_y[held], clip_layer(prediction))",
        replacement="clipped[held] = rowwise_rmse(members.y[held], clip_layer(prediction))",
        tests=("tests/test_blend.py::test_clipped_layer_scores_of_the_blend_match_a_hand_computation",),
        why="the blend's nested clipped-layer score clips truth and prediction to ±4, as a run's clipped score does",
    ),
    Mutation(
        name="blend_nested_clipped_layer_scores_another_candidate",
        file="src/perturbkit/blend/nested.py",
        original="prediction = predict_rows(members, candidates[chosen], held, ranges[k] if ranges else None)",
        replacement="prediction = predict_rows(members, candidates['simple_average'], held, ranges[k] if ranges else None)",
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
        name="blend_set_written_in_place",
        file="src/perturbkit/blend/files.py",
        original="    with atomic_dir(folder, replace=True, force=True) as staging:\n",
        replacement="    with __import__('contextlib').nullcontext(folder) as staging:\n",
        tests=("tests/test_blend.py::test_an_interrupted_blend_keeps_the_previous_set",
               "tests/test_recipe.py::test_an_interrupted_recipe_keeps_its_previous_set"),
        why="a blend set is written beside the previous one and replaces it whole: an interrupted write leaves the old set",
    ),
    Mutation(
        name="blend_set_swap_lets_signals_through",
        file="src/perturbkit/io.py",
        original="                with signals_deferred():\n",
        replacement="                with contextlib.nullcontext():\n",
        tests=("tests/test_blend.py::test_an_interrupted_blend_keeps_the_previous_set",),
        why="Ctrl-C or SIGTERM between a set swap's two renames waits until the new set is in place",
    ),
    Mutation(
        name="blend_set_leftovers_of_killed_writers_stay",
        file="src/perturbkit/blend/files.py",
        original="    return sorted(found)\n",
        replacement="    return []\n",
        tests=("tests/test_blend.py::test_an_interrupted_blend_keeps_the_previous_set",),
        why="a successful write removes the staging folders of writers that were killed",
    ),
    Mutation(
        name="blend_h5ad_written_without_room",
        file="src/perturbkit/submit/write.py",
        original="    check_free_space(path.parent, h5ad_size(ids, genes, matrix), path)\n",
        replacement="",
        tests=("tests/test_blend.py::test_a_full_disk_is_a_named_error_and_keeps_the_previous_set",),
        why="the h5ad is refused with a named error when the disk cannot hold it, before HDF5 (which crashed near a full disk) starts",
    ),
    Mutation(
        name="blend_overwrites_another_writers_set",
        file="src/perturbkit/blend/files.py",
        original="    if force or not folder.exists() and not folder.is_symlink():\n",
        replacement="    if True:\n",
        tests=("tests/test_blend.py::test_a_set_of_another_command_or_configuration_needs_force",
               "tests/test_recipe.py::test_recipe_refuses_a_set_another_configuration_wrote_before_any_cv"),
        why="no command replaces a set that another command or configuration wrote without --force",
    ),
    Mutation(
        name="blend_default_takes_tuning_trials",
        file="src/perturbkit/blend/members.py",
        original="        elif wanted is None and isinstance(trial, dict) and not include_tuning:\n",
        replacement="        elif False:\n",
        tests=("tests/test_blend.py::test_the_default_run_choice_is_the_best_cv_of_each_model_and_config_without_tuning_trials",
               "tests/test_recipe.py::test_after_the_recipe_and_tuning_trials_the_default_blend_is_no_worse_and_leaves_the_recipe_alone"),
        why="the default blend leaves tuning trials out (they took the recipe's place in issue 26)",
    ),
    Mutation(
        name="blend_name_allows_control_characters",
        file="src/perturbkit/blend/files.py",
        original="           or any(unicodedata.category(ch).startswith(\"C\") for ch in name) or len(name) > 100)\n",
        replacement="           or len(name) > 100)\n",
        tests=("tests/test_blend.py::test_cli_blend_errors_are_named",),
        why="a blend's name is one plain folder name: `--name $'a\\nb'` is refused",
    ),
    Mutation(
        name="score_takes_a_csv_its_blend_record_does_not_list",
        file="src/perturbkit/blend/record.py",
        original="    if path.name not in {Path(file).name for file in record.files.values()}:\n",
        replacement="    if False:\n",
        tests=("tests/test_blend.py::test_cli_blend_writes_its_set_and_scores",),
        why="submit and score check a file beside a blend record against the record",
    ),
)
