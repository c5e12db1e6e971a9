"""`perturbkit tune` at full scale (614 x 18,211 default demo, scheme test_like, median pruner): trials per minute
for `pca_ridge` and `mlp` with one worker process and with two on the same SQLite study."""

from __future__ import annotations

from common import measure

TUNE = """
import statistics, tempfile
from pathlib import Path
from perturbkit.tune.study import TuneSettings, run_tune
with tempfile.TemporaryDirectory() as root:
    settings = TuneSettings(model="{model}", trials={trials}, workers={workers}, oof=Path(root))
    outcome = run_tune(settings, say=lambda message: None)
    trials = outcome.trials()
    counts = outcome.counts()
    done = counts["COMPLETE"] + counts["PRUNED"]
    result = {{
        "wall_seconds": outcome.seconds,
        "trials_per_minute": done / (outcome.seconds / 60),
        "trial_seconds": statistics.median(t.duration.total_seconds() for t in trials if t.duration),
        "complete": counts["COMPLETE"], "pruned": counts["PRUNED"], "failed": counts["FAIL"],
        "cv_saved_by_pruning": outcome.pruning_saving()[2],
        "best": outcome.study.best_value,
    }}
"""

# Trials per setting: enough for the median pruner to act (it waits for 5 trials) within minutes on 2 cores.
SETTINGS = (("pca_ridge", 16), ("mlp", 6))


def run(repeats: int) -> str:
    # One study per measurement: its trial count is the sample, so each setting runs once.
    lines = [
        "## Tuning (`perturbkit tune`, full-size default demo, 614 x 18,211, scheme test_like, median pruner, SQLite)",
        "",
        "One worker uses every core; two workers split them (one BLAS/torch thread each) and share one study.",
        "Trials per minute count completed and pruned trials over the study's wall time.",
        "",
        "| model | workers | trials | wall | trials/min | median trial | complete / pruned / failed | CV time saved by pruning | best CV | peak RSS (parent) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, trials in SETTINGS:
        for workers in (1, 2):
            timing = measure(TUNE.format(model=model, trials=trials, workers=workers), 1)
            lines.append(
                f"| `{model}` | {workers} | {trials} | {timing['wall_seconds'] / 60:.2f} min | {timing['trials_per_minute']:.2f} | "
                f"{timing['trial_seconds']:.1f} s | {timing['complete']:.0f} / {timing['pruned']:.0f} / {timing['failed']:.0f} | "
                f"{timing['cv_saved_by_pruning']:.0%} | {timing['best']:.4f} | {timing['peak_rss_mib']:.0f} MiB |"
            )
    lines.append("")
    return "\n".join(lines)
