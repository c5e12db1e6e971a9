"""``kaggle kernels logs``: the log of a kernel's latest (or a given version's) run, as text."""

from __future__ import annotations

import json

from perturbkit.kaggle.auth import api_errors, kaggle_api


def kernel_logs(kernel: str, *, api=None) -> str:
    """The run's log: Kaggle's JSON list of ``{stream_name, time, data}`` entries joined into text."""
    api = api or kaggle_api()
    with api_errors(f"getting the log of kernel {kernel}"):
        raw = api.kernels_logs(kernel)
    try:
        entries = json.loads(raw)
    except (TypeError, ValueError):
        return raw or ""
    if not isinstance(entries, list):
        return raw
    return "".join(str(entry.get("data", "")) if isinstance(entry, dict) else str(entry) for entry in entries)
