"""Send the leaderboard probe files to Kaggle and read their public scores back into ``probes.json``.

Each probe is submitted with a message naming its scale and its blend's digest
(``perturbkit probe x0.5 blend <digest>``), so ``fetch`` finds the scores of exactly these files
among the account's submissions, however many others it made.
"""

from __future__ import annotations

from pathlib import Path

from perturbkit.blend.leaderboard import PROBES_FILE, load_probe_request
from perturbkit.data.layout import COMPETITION
from perturbkit.kaggle.auth import KaggleApiError, api_errors, kaggle_api
from perturbkit.kaggle.submit import submit_file


def probe_message(scale: float, digest: str) -> str:
    return f"perturbkit probe x{scale:g} blend {digest}"


def submit_probes(submissions: Path | str, *, competition: str = COMPETITION, api=None) -> list[str]:
    """Submit every probe file of ``<submissions>/probes.json`` that has no score yet; Kaggle's replies."""
    request = load_probe_request(Path(submissions) / PROBES_FILE)
    api = api or kaggle_api()
    replies = []
    for scale, score in request["scores"].items():
        if score is not None:
            continue
        path = request["files"].get(f"{scale:g}")
        if path is None:
            raise KaggleApiError(f"{Path(submissions) / PROBES_FILE}: no probe file listed for scale {scale:g}")
        replies.append(submit_file(path, probe_message(scale, request["blend_digest"]), competition=competition, api=api))
    return replies


def _public_score(submission) -> float | None:
    status = getattr(submission, "status", "")
    if not str(getattr(status, "name", status)).lower().endswith("complete"):
        return None
    score = getattr(submission, "public_score", None)
    score = getattr(submission, "publicScore", None) if score in (None, "") else score
    return None if score in (None, "") else float(score)


def fetch_probe_scores(submissions: Path | str, *, competition: str = COMPETITION, api=None) -> dict[float, float | None]:
    """Write the public score of each scored probe submission into ``probes.json``; the scores, None where pending."""
    from perturbkit.submit.write import write_json

    path = Path(submissions) / PROBES_FILE
    request = load_probe_request(path)
    api = api or kaggle_api()
    with api_errors(f"listing the submissions to {competition}"):
        listed = api.competition_submissions(competition)
    scored = {str(getattr(s, "description", "")): _public_score(s) for s in listed}
    by_message = {message: score for message, score in scored.items() if score is not None}
    scores = {
        scale: score if score is not None else by_message.get(probe_message(scale, request["blend_digest"]))
        for scale, score in request["scores"].items()
    }
    write_json(path, {**request, "scores": {f"{s:g}": v for s, v in scores.items()}})
    return scores
