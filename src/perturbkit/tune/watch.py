"""Watching a study: one line per finished trial, its value (or the fold it was pruned after) and the best so far.

Optuna's own INFO log says a trial's parameters but not a pruned trial's best, and cannot be throttled for a log file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


def trial_line(study, trial) -> str:
    """``trial 7: 0.8123 in 12 s; best 0.8011 (trial 3)``, or ``pruned after fold 2 at 0.9104``, or ``failed``."""
    import optuna

    state = trial.state
    if state == optuna.trial.TrialState.COMPLETE:
        outcome = f"{trial.value:.4f}"
    elif state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
        fold = max(trial.intermediate_values)
        outcome = f"pruned after fold {fold} at {trial.intermediate_values[fold]:.4f}"
    else:
        outcome = state.name.lower()
    seconds = f" in {trial.duration.total_seconds():.0f} s" if trial.duration else ""
    try:
        best = study.best_trial
        best_text = f"best {best.value:.4f} (trial {best.number})"
    except ValueError:  # no complete trial yet
        best_text = "no complete trial yet"
    return f"trial {trial.number}: {outcome}{seconds}; {best_text}"


@dataclass
class TrialLines:
    """An ``optimize`` callback saying one line per finished trial; with ``every`` seconds (a log file, not a terminal)
    at most one line per ``every`` seconds, but always a new best and the worker's last trial."""

    say: object = print
    every: float = 0.0
    trials: int | None = None  # the worker's share, to always say its last
    done: int = 0
    said_at: float = float("-inf")

    def __call__(self, study, trial) -> None:
        import optuna

        self.done += 1
        now = time.monotonic()
        new_best = trial.state == optuna.trial.TrialState.COMPLETE and study.best_trial.number == trial.number
        if now - self.said_at >= self.every or new_best or self.done == self.trials:
            self.said_at = now
            self.say(trial_line(study, trial))
