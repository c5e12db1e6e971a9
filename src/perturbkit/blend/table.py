"""The printed table of a blend: members, simple average and the written blend, in-sample and nested, with the weights."""

from __future__ import annotations

from perturbkit.blend.result import BlendResult
from perturbkit.labels import member_labels


def blend_table(result: BlendResult) -> str:
    scores = result.scores
    options, names = result.options, result.names
    labels = member_labels([(run.meta["model"], run.meta["config"]) for run in result.members.runs])
    folds = result.row_scores["fold"].nunique()
    head = (
        f"blend of {len(names)} runs on {scores['rows']} OOF rows (scheme {result.members.scheme}, {folds} folds), "
        f"method {options.method}"
        + (f", {options.setting('trials')} trials" if options.method == "optuna" else "")
        + f", search {result.fit.search.seconds:.1f} s"
    )
    width = max(28, *(len(label) + 2 for label in labels))
    lines = [head, f"{'':<{width}}{'weight':>16}{'in-sample':>11}{'nested':>9}"]
    nested_available = scores["nested"] is not None
    for m, (name, label) in enumerate(zip(names, labels)):
        value = scores["members"][name]
        lines.append(f"{label:<{width}}{result.fit.weights[m]:>16.3f}{value:>11.4f}{value:>9.4f}")
    blank = " " * 16
    average = scores["simple_average"]
    lines.append(f"{'simple average':<{width}}{blank}{average:>11.4f}{average:>9.4f}")
    if options.scale:
        lines.append(f"{'  scale':<{width}}{result.fit.scale:>16.3f}")
    if result.leaderboard is not None:
        probes = ", ".join(f"x{s:g} {v:.4f}" for s, v in result.leaderboard.scores.items())
        lines.append(f"test rows x {result.leaderboard.factor:.3f} from public-leaderboard probes ({probes}; "
                     f"{result.leaderboard.source}); the recorded scale includes it")
    if "in_sample_unclipped" in scores:
        lines.append(f"{'tuned blend, unclipped':<{width}}{blank}{scores['in_sample_unclipped']:>11.4f}{'':>9}")
    nested = f"{scores['nested']:>9.4f}" if nested_available else f"{'-':>9}"
    label = "tuned blend" + (", clipped" if options.clip else "")
    lines.append(f"{label:<{width}}{blank}{scores['in_sample']:>11.4f}{nested}")
    clipped = scores["clipped"]
    clipped_nested = f"{'-':>9}" if clipped["nested"] is None else f"{clipped['nested']:>9.4f}"
    ratios = ", ".join(f"{name.replace('_', '-')} {clipped[f'{name}_relative_to_zeros']:.3f}" for name in ("in_sample", "nested")
                       if clipped[f"{name}_relative_to_zeros"] is not None)
    lines.append(f"{'tuned blend, ±4 layer':<{width}}{blank}{clipped['in_sample']:>11.4f}{clipped_nested}  (x zeros: {ratios})")
    best = min(scores["members"].values())
    lines.append(
        f"in-sample: weights fitted and scored on the same rows; nested: fitted on {folds - 1} folds, scored on the held-out one"
        + (f" (nested minus best member {scores['nested'] - best:+.4f}, minus simple average {scores['nested'] - average:+.4f})"
           if nested_available else "")
    )
    choice = result.choice
    if choice["nested"]:
        nested_scores = ", ".join(f"{k} {v:.4f}" for k, v in choice["nested"].items())
        lines.append(f"written: {choice['chosen']} (nested: {nested_scores}); {choice['reason']}")
    which = result.fit.search.chosen
    if choice["chosen"] == "tuned" and which != "search":  # the tuned fit's search fell back on a reference in-sample
        label = "the simple average" if which == "simple_average" else labels[int(which.split(":")[1])]
        lines.append(f"note: the search did not beat {label} in-sample, which is used instead")
    if result.members.dropped_rows and any(result.members.dropped_rows.values()):
        lines.append(f"note: rows not validated in every run were left out: {result.members.dropped_rows}")
    return "\n".join(lines)
