"""A test-strength factor for the blend, read off the public leaderboard with three probe submissions.

No CV built from training rows sees how strong the test rows are. On the real test the B/Myeloid
rows of a typical compound are far weaker than the 17-compound panel the maps learn from (the
per-cell-type mean scores 1.59 x zeros), and where test wells lost cells (demo ``fewcells``) every
member, and the blend's CV-fitted scale, overshoots them. The public leaderboard does see the
test: Kaggle scores every submission on its public rows. Submitting the blend multiplied by
``PROBE_SCALES`` (0 is the zeros submission, 1 the blend itself) gives three points of the public
MRRMSE as a function of a global factor s. Each row's squared RMSE is a quadratic in s, so the
squared MRRMSE nearly is one too; the parabola through the three squared scores gives the factor,
which multiplies the blend's test predictions. Only public rows inform it: the private rows, which
rank the competition, stay unseen (the demo worlds judge on them alone).

Where the probe scores come from:

Kaggle's public leaderboard scores the 100 test rows of the 50 public compounds of its split
(:func:`perturbkit.data.layout.leaderboard_split`); the 155 rows of the other 79 rank the
competition. The dataset says where the probe scores come from (``Dataset.leaderboard_source``):

* a demo world (``PUBLIC_ROWS``): the same 100 rows of its ``test_truth.parquet`` (``public_test.csv``)
  play Kaggle's public leaderboard, read by :mod:`perturbkit.data.hidden`;
* real data (``PROBES``): ``<submissions>/probes.json``. The first run writes ``probe_<s>.csv`` for each probe
  scale and ``probes.json`` with empty scores; ``perturbkit probes submit`` sends the files to
  Kaggle and ``perturbkit probes fetch`` writes their public scores into ``probes.json``
  (:mod:`perturbkit.kaggle.probes`; or enter them by hand), then rerun: the stored runs are reused,
  the blend is the same, and the factor is applied. ``probes.json`` carries the digest of the blend
  it was made for, so scores of another blend are refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perturbkit.data.dataset import PUBLIC_ROWS
from perturbkit.data.hidden import PUBLIC_FILE, read_hidden_test
from perturbkit.errors import PerturbkitError
from perturbkit.metrics import rowwise_rmse

PROBE_SCALES = (0.0, 0.5, 1.0)
PROBES_FILE = "probes.json"
PUBLIC_BOARD = "Kaggle's public leaderboard: the 100 test rows of the 50 public compounds"
FACTOR_RANGE = (0.0, 2.0)


class LeaderboardError(PerturbkitError, ValueError):
    """Probe scores that cannot give a factor: missing, for another blend, or not from a convex curve."""


@dataclass(frozen=True)
class LeaderboardScale:
    factor: float
    scores: dict[float, float]  # probe scale -> public MRRMSE
    source: str

    def to_json(self) -> dict:
        return {"factor": self.factor, "scores": {str(s): v for s, v in self.scores.items()}, "source": self.source}


def factor_from_scores(scores: dict[float, float], *, source: str = "probe scores") -> float:
    """The factor minimising the parabola fitted (least squares) to the squared public scores, within FACTOR_RANGE."""
    if len(scores) < 3:
        raise LeaderboardError(f"{source}: need scores of at least 3 different probe scales, got {sorted(scores)}")
    scales = np.array(sorted(scores), dtype=np.float64)
    squared = np.array([scores[s] for s in scales], dtype=np.float64) ** 2
    if not np.isfinite(squared).all() or (squared < 0).any():
        raise LeaderboardError(f"{source}: scores must be finite and non-negative: {scores}")
    curvature, slope, _ = np.polyfit(scales, squared, 2)
    if curvature <= 0:
        raise LeaderboardError(f"{source}: the scores {scores} do not lie on a convex curve of the scale; were they "
                               "entered for the right files?")
    return float(np.clip(-slope / (2 * curvature), *FACTOR_RANGE))


def blend_digest(test_predictions: np.ndarray) -> str:
    """Ties probe scores to the blend they were made from (same data, members and weights: same digest)."""
    return hashlib.sha256(np.ascontiguousarray(test_predictions, dtype=np.float32).tobytes()).hexdigest()[:16]


def demo_public_scores(world: Path | str, test_ids, test_predictions: np.ndarray, genes) -> dict[float, float]:
    """A demo world's public-leaderboard MRRMSE of each probe (its ``public_test.csv`` rows)."""
    world = Path(world)
    truth, public = read_hidden_test(world, test_ids, genes)
    if not public.any():
        raise LeaderboardError(f"{world}: {PUBLIC_FILE} lists none of the blend's test rows")
    truth = truth[public].astype(np.float64)
    predictions = np.asarray(test_predictions, dtype=np.float64)[public]
    return {s: float(rowwise_rmse(truth, s * predictions).mean()) for s in PROBE_SCALES}


def load_probe_request(path: Path | str) -> dict:
    """``probes.json``: ``blend_digest``, ``scores`` (scale -> public score or null) and the probe ``files``."""
    path = Path(path)
    if not path.is_file():
        raise LeaderboardError(f"{path}: not found; the recipe writes it on real data when its recipe says leaderboard = true")
    try:
        record = json.loads(path.read_text())
        record["scores"] = {float(s): (None if v is None else float(v)) for s, v in record["scores"].items()}
        record["blend_digest"], record["files"] = str(record["blend_digest"]), dict(record.get("files", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise LeaderboardError(f"{path}: expected {{\"blend_digest\": ..., \"scores\": {{scale: public score or null}}}} "
                               f"({type(err).__name__}: {err})") from err
    return record


def read_probes(path: Path | str, digest: str) -> dict[float, float] | None:
    """The scores entered in ``probes.json`` for the blend with this digest; None while any is missing."""
    record = load_probe_request(path)
    if record["blend_digest"] != digest:
        raise LeaderboardError(f"{path}: the scores are for blend {record['blend_digest']}, this blend is {digest} (members, "
                               f"weights or data changed); delete the file to write new probe files")
    scores = record["scores"]
    return None if any(v is None for v in scores.values()) else scores


def write_probe_requests(submissions: Path | str, digest: str, test_ids, genes, test_predictions: np.ndarray,
                         template: Path | None) -> list[Path]:
    """``probe_<s>.csv`` for each probe scale and ``probes.json`` with empty scores to fill in."""
    from perturbkit.submit.write import write_json, write_submission_csv

    submissions = Path(submissions)
    files = [write_submission_csv(submissions / f"probe_{s:g}.csv", test_ids, genes, s * np.asarray(test_predictions),
                                  template=template) for s in PROBE_SCALES]
    write_json(submissions / PROBES_FILE, {
        "blend_digest": digest,
        "scores": {f"{s:g}": None for s in PROBE_SCALES},
        "files": {f"{s:g}": str(path) for s, path in zip(PROBE_SCALES, files)},
        "how": "submit each probe file, enter its public score under its scale, rerun the recipe",
        "public_rows": PUBLIC_BOARD,
    })
    return files


def leaderboard_scale(blend, dataset, submissions: Path | str) -> tuple[LeaderboardScale | None, str]:
    """The factor for this blend (:class:`perturbkit.blend.BlendResult`) and a line saying where it came from.

    None while the real-data probes await their scores; then the probe files are (re)written.
    """
    members = blend.members
    if dataset.leaderboard_source == PUBLIC_ROWS:
        scores = demo_public_scores(dataset.source, members.test_ids, blend.test, members.genes)
        origin = Path(dataset.source) / PUBLIC_FILE
        source = f"the public rows of {Path(dataset.source).name}, as on {PUBLIC_BOARD}"
    else:
        digest = blend_digest(blend.test)
        path = Path(submissions) / PROBES_FILE
        scores = read_probes(path, digest) if path.is_file() else None
        if scores is None:
            template = Path(dataset.source) / "sample_submission.csv"
            files = write_probe_requests(submissions, digest, members.test_ids, members.genes, blend.test,
                                         template if template.is_file() else None)
            return None, (f"leaderboard: submit {', '.join(p.name for p in files)}, enter their public scores in {path} "
                          "and rerun; the blend written now is not rescaled")
        origin, source = path, f"{path}, scores from {PUBLIC_BOARD}"
    factor = factor_from_scores(scores, source=str(origin))
    return LeaderboardScale(factor=factor, scores=scores, source=source), f"leaderboard: test rows x {factor:.3f} ({source})"
