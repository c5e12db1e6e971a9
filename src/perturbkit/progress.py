"""Progress inside a CV fold: a torch model's epochs (with its inner score), a booster's components.

The CV harness turns these bars on while it fits (``run_cv(progress=True)``, the CLI's default),
labelled with the fold; everywhere else -- tests, the tuner's trials, the agreement study, a model
fitted directly -- they stay off. On a terminal a bar redraws in place and vanishes when its fit
ends; without one (a pipe, a log file, a Kaggle kernel's log) it writes a line when it starts, at
most one every ``QUIET_INTERVAL`` seconds, and its last state, so a log shows progress without a
flood of redraws.
"""

from __future__ import annotations

import contextvars
import sys
from contextlib import contextmanager

from tqdm.auto import tqdm

__all__ = ["QUIET_INTERVAL", "fit_progress", "progress_bar"]

QUIET_INTERVAL = 30.0  # seconds between a bar's lines when stderr is no terminal
_label: contextvars.ContextVar[str | None] = contextvars.ContextVar("perturbkit_fit_progress", default=None)


@contextmanager
def fit_progress(label: str | None):
    """Show the bars of fits inside, prefixed with ``label`` (e.g. ``"fold 2"``); ``None``: show none."""
    token = _label.set(label)
    try:
        yield
    finally:
        _label.reset(token)


def progress_bar(total: int, what: str, unit: str, *, leave: bool = False) -> tqdm:
    """A bar of ``total`` steps, shown only inside ``fit_progress(label)``; use it as a context manager."""
    label = _label.get()
    stream = sys.stderr
    terminal = stream.isatty()
    return tqdm(total=total, desc=f"{label} {what}" if label else what, unit=unit, file=stream, disable=label is None,
                leave=leave or not terminal, dynamic_ncols=terminal, mininterval=0.1 if terminal else QUIET_INTERVAL,
                position=None if terminal else 0)  # no cursor moves in a log
