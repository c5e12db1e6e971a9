"""Optuna's relational storage: a SQLite file on one machine, PostgreSQL (any SQLAlchemy URL) across many.

Workers send a heartbeat while a trial runs; a trial whose worker died (killed, machine lost) has
no heartbeat after ``grace_period`` seconds and is marked FAIL by the next worker that starts a
trial, so the study goes on without it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from perturbkit.errors import ConfigError, redact

HEARTBEAT_INTERVAL = 30  # seconds between a running trial's heartbeats
GRACE_FACTOR = 4  # a trial silent for this many intervals belongs to a dead worker


def _mask_password(text: str, url: str) -> str:
    """``text`` without the URL's password anywhere in it (a driver may quote it outside the URL)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    return text.replace(str(password), "***") if password else text


def open_storage(url: str, *, heartbeat_interval: int = HEARTBEAT_INTERVAL):
    """An ``optuna.storages.RDBStorage`` on ``url`` (a SQLite file's folder is created); a named error if it cannot open."""
    import optuna

    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Several local workers write one file: wait for SQLite's lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna's terms, and what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=heartbeat_interval * GRACE_FACTOR,
            )
    except Exception as exc:  # SQLAlchemy raises many types (bad URL, missing driver, refused connection, bad password)
        reason = redact(_mask_password(f"{type(exc).__name__}: {exc}".splitlines()[0], url))
        raise ConfigError(f"--storage {redact(url)}: cannot open the Optuna storage ({reason})") from None
