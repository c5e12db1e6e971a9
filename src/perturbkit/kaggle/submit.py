"""``kaggle competitions submit``: send a file (checked beforehand by :mod:`perturbkit.submit`) with a message."""

from __future__ import annotations

from pathlib import Path

from perturbkit.data.layout import COMPETITION
from perturbkit.kaggle.auth import KaggleApiError, api_errors, kaggle_api


def submit_file(path: Path | str, message: str, *, competition: str = COMPETITION, api=None) -> str:
    """``kaggle competitions submit -c <competition> -f <path> -m <message>``; returns Kaggle's reply."""
    path = Path(path)
    if not path.is_file():
        raise KaggleApiError(f"{path}: file not found")
    if not message.strip():
        raise KaggleApiError("a submission needs a message (-m)")
    api = api or kaggle_api()
    with api_errors(f"submitting {path} to {competition}"):
        response = api.competition_submit(str(path), message, competition, quiet=True)
    reply = getattr(response, "message", "") or ""
    if reply == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", None):
        raise KaggleApiError(f"submitting {path}: the upload failed ({reply})")
    return reply
