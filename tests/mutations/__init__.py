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
        original="    seeds: Seeds = []\n",
        replacement="    seeds: list[int] = []\n",
        tests=("tests/test_config.py",),
        why="`--set 'cv.seeds=[-1,2]'` is refused before any work, like `--seeds -1,2`",
    ),
    Mutation(
        name="constraint_error_loses_its_parameter",
        file="src/perturbkit/constraints.py",
        original="            raise InvalidParameterError(param, str(exc)) from None\n",
        replacement="            raise InvalidParameterError(\"?\", str(exc)) from None\n",
        tests=("tests/test_config.py",),
        why="a bad estimator parameter is named by its config key (InvalidParameterError.param), without parsing messages",
    ),
    Mutation(
        name="list_constraint_accepts_an_empty_list",
        file="src/perturbkit/constraints.py",
        original="isinstance(val, (list, tuple)) and len(val) >= self.min_length",
        replacement="isinstance(val, (list, tuple)) and len(val) >= 0",
        tests=("tests/test_config.py",),
        why="transfer_ridge `params.alphas=[]` is refused while the config loads, not at the first fit",
    ),
    Mutation(
        name="estimator_own_check_not_run",
        file="src/perturbkit/constraints.py",
        original="    if callable(check):\n        check()\n",
        replacement="",
        tests=("tests/test_config.py",),
        why="an estimator's _check_params (lowrank's memory bound) runs with the per-parameter checks",
    ),
    Mutation(
        name="retired_keys_not_checked",
        file="src/perturbkit/config.py",
        original="    check_retired(str(config.get(\"model\")), config, source)\n",
        replacement="",
        tests=("tests/test_config.py",),
        why="a retired or renamed config key gets its named error (features.chemistry -> features.blocks)",
    ),
    Mutation(
        name="missing_configs_dir_runs_with_defaults",
        file="src/perturbkit/config.py",
        original="    if not Path(configs_dir).is_dir():",
        replacement="    if False:",
        tests=("tests/test_config.py",),
        why="`--configs-dir /nonexistent` is an error, not a run with the class defaults",
    ),
    Mutation(
        name="component_counts_clamped_silently",
        file="src/perturbkit/features/pca.py",
        original="    if n_components > min(shape):\n",
        replacement="    if False:\n",
        tests=("tests/test_config.py",),
        why="a component count beyond the fold's rows is a named error, never a clamp the run would not record",
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
        name="cv_per_fold_scores_unweighted",
        file="src/perturbkit/cv/__init__.py",
        original='"mrrmse": float(np.average(g["rmse"], weights=g["weight"]))',
        replacement='"mrrmse": float(g["rmse"].mean())',
        tests=("tests/test_score.py::test_cv_per_fold_scores_weigh_rows_as_the_overall_score_does",
               "tests/test_report.py::test_the_reports_per_fold_numbers_are_the_ones_cv_printed"),
        why="cv's per-fold MRRMSE weighs rows as its overall score does, and the blend report's per-fold numbers are cv's",
    ),
    Mutation(
        name="report_labels_members_by_run_id",
        file="src/perturbkit/report/build.py",
        original="    labels = member_labels([(m.model or m.config.get(\"model\"), m.config) for m in record.members])\n",
        replacement="    labels = list(names)\n",
        tests=("tests/test_report.py::test_no_member_label_is_a_run_id",),
        why="a blend report labels members by model and config differences; run ids stay in the table",
    ),
    Mutation(
        name="report_scale_hides_the_leaderboard_factor",
        file="src/perturbkit/report/scales.py",
        original="scale / factor if factor else scale, factor)",
        replacement="scale, factor)",
        tests=("tests/test_report.py::test_scale_lines_give_the_oof_scale_and_the_leaderboard_factor_apart",),
        why="the report and rank show the OOF scale and the leaderboard factor apart, their product as the applied scale",
    ),
    Mutation(
        name="rank_silent_on_predictions_outside_the_members_range",
        file="src/perturbkit/rank.py",
        original="    if not (above | below).any():\n        return table, None\n",
        replacement="    return table, None\n",
        tests=("tests/test_report.py::test_rank_says_when_the_scale_puts_predictions_outside_the_members_range",),
        why="rank says when the blend's scale puts its predictions outside every member's range",
    ),
    Mutation(
        name="tune_workers_outlive_their_parent",
        file="src/perturbkit/tune/study.py",
        original="    os.kill(os.getpid(), signal.SIGTERM)\n",
        replacement="    return\n",
        tests=("tests/test_tune.py::test_killing_the_tune_parent_stops_its_workers_and_the_study_stops_growing",),
        why="a killed tune's workers stop within seconds instead of running out their trials",
    ),
    Mutation(
        name="tune_stopped_worker_leaves_its_trial_running",
        file="src/perturbkit/tune/study.py",
        original="            trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)\n",
        replacement="",
        tests=("tests/test_tune.py::test_killing_the_tune_parent_stops_its_workers_and_the_study_stops_growing",),
        why="a worker stopped mid-trial fails that trial itself, so no trial waits RUNNING for the heartbeat's grace period",
    ),
    Mutation(
        name="tune_workers_not_capped_at_the_trials",
        file="src/perturbkit/tune/study.py",
        original="    return min(settings.workers, settings.trials or settings.workers, _cores())\n",
        replacement="    return min(settings.workers, _cores())\n",
        tests=("tests/test_tune.py::test_workers_are_capped_at_the_trials_and_the_cores",),
        why="`tune --workers 10000 --trials 1` starts no process for workers that would get no trial",
    ),
    Mutation(
        name="tune_study_name_unchecked",
        file="src/perturbkit/tune/study.py",
        original="        check_study_name(self.study_name)\n",
        replacement="        pass\n",
        tests=("tests/test_tune.py::test_a_study_name_that_is_no_plain_name_is_refused_before_any_trial",),
        why="a study name becomes a folder under --reports: a path (../.., absolute) is refused before any trial",
    ),
    Mutation(
        name="tune_outputs_checked_after_the_trials",
        file="src/perturbkit/tune/cli.py",
        original="    check_outputs(out, reports)\n",
        replacement="",
        tests=("tests/test_tune.py::test_an_out_that_is_a_folder_is_refused_before_any_trial",),
        why="an --out that is a folder is a named error before any trial runs, not a traceback after all of them",
    ),
    Mutation(
        name="tune_trial_lines_unthrottled_in_a_log",
        file="src/perturbkit/tune/watch.py",
        original="        if now - self.said_at >= self.every or new_best or self.done == self.trials:\n",
        replacement="        if True:\n",
        tests=("tests/test_tune.py::test_a_pruned_trial_line_says_so_and_a_log_file_gets_only_bests_and_the_last_trial_within_the_interval",),
        why="a log file gets at most one trial line per interval (new bests and the last trial aside); a terminal gets every one",
    ),
    Mutation(
        name="typed_meta_reader_accepts_a_run_without_file_hashes",
        file="src/perturbkit/cv/store.py",
        original="        missing = [name for name in REQUIRED_FILES if name not in self.files]\n",
        replacement="        missing = []\n",
        tests=("tests/test_store.py::test_a_tampered_meta_is_named_and_skipped_by_the_store",),
        why="a meta.json with `files = {}` would turn off every hash check: the typed reader refuses it",
    ),
    Mutation(
        name="meta_reader_reads_a_device",
        file="src/perturbkit/cv/store.py",
        original="    if not stat.S_ISREG(info.st_mode):\n",
        replacement="    if False:\n",
        tests=("tests/test_store.py::test_a_meta_json_linked_to_dev_zero_or_huge_is_not_read",),
        why="a meta.json linked to /dev/zero is refused before a byte is read",
    ),
    Mutation(
        name="list_runs_follows_a_run_linked_from_outside",
        file="src/perturbkit/cv/store.py",
        original="            check_inside(run_dir, root)\n",
        replacement="",
        tests=("tests/test_store.py::test_a_run_folder_linked_from_outside_the_store_is_refused",),
        why="a run folder symlinked to outside the store root is named and skipped",
    ),
    Mutation(
        name="load_run_ignores_the_scheme_against_the_data",
        file="src/perturbkit/cv/store.py",
        original="    if scheme_folds_hash(dataset, cv) != run.meta[\"folds_hash\"]:\n",
        replacement="    if False:\n",
        tests=("tests/test_store.py::test_a_run_whose_scheme_disagrees_with_its_folds_is_refused_with_the_data",),
        why="a run whose scheme does not give its folds on the data is refused by every reader that has the data",
    ),
    Mutation(
        name="cv_stores_a_diverged_fit",
        file="src/perturbkit/cv/__init__.py",
        original="truth=y[valid_idx])",
        replacement="truth=None)",
        tests=("tests/test_store.py::test_a_diverged_fit_is_refused_before_it_is_stored_naming_model_and_fold",),
        why="a fold more than 1e6 x worse than predicting zeros stops the run, naming model and fold, before it is stored",
    ),
    Mutation(
        name="default_blend_runs_takes_tuning_trials",
        file="src/perturbkit/cv/store.py",
        original='    candidates = runs[runs["trial"].isna()]\n',
        replacement="    candidates = runs\n",
        tests=("tests/test_store.py::test_default_blend_runs_takes_the_best_run_per_model_and_config_without_trials",),
        why="blend's default takes the best run of each (model, config) and no tuning trial",
    ),
)
