"""A blend's test-row scale taken apart: the factor fitted on the OOF rows and the public-leaderboard factor.

The record stores one scale for the test rows, the product of the two (``blend.core.with_leaderboard_scale``
multiplies the fitted scale by the leaderboard factor); the report and ``rank`` show each part and where it
came from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScaleParts:
    applied: float  # what multiplies the weighted members on the test rows
    oof: float  # fitted on the OOF rows (1 when none was fitted)
    leaderboard: float | None  # from the public-leaderboard probes (None: no factor)

    def formula(self) -> str:
        if self.leaderboard is None:
            return f"{self.applied:.3f} = OOF scale (no leaderboard factor)"
        return f"{self.applied:.3f} = OOF scale {self.oof:.3f} × leaderboard factor {self.leaderboard:.3f}"

    def text(self) -> str:
        return f"test rows: scale {self.formula()}"


def scale_parts(record) -> ScaleParts:
    """The test scale of ``record`` (a :class:`perturbkit.blend.record.BlendRecord`) as its two factors."""
    leaderboard = record.details.get("leaderboard") or None
    factor = None if leaderboard is None else float(leaderboard["factor"])
    scale = record.weights.scale
    return ScaleParts(scale, scale / factor if factor else scale, factor)


def _oof_origin(record) -> str:
    options = record.details.get("options") or {}
    chosen = (record.details.get("choice") or {}).get("chosen", "tuned")
    if not options.get("scale"):
        return "OOF scale: 1, none fitted (blend option scale = false)."
    if chosen != "tuned":
        return f"OOF scale: 1: the nested rule wrote the {chosen.replace('_', ' ')}, which has no scale."
    return (f"OOF scale: fitted by the blend on the OOF rows, the factor in [{options.get('scale_min', 0):g}, "
            f"{options.get('scale_max', 2):g}] that minimises the weighted OOF MRRMSE of the weighted members "
            "(blend option scale = true); the in-sample and nested CV scores include it.")


def _leaderboard_origin(record) -> str:
    leaderboard = record.details.get("leaderboard") or None
    if leaderboard is None:
        return "Leaderboard factor: none (the blend was not scaled by public-leaderboard probes)."
    probes = ", ".join(f"× {float(s):g}: {v:.4f}" for s, v in leaderboard["scores"].items())
    return (f"Leaderboard factor {float(leaderboard['factor']):.3f}: the minimum of the parabola through the squared public "
            f"MRRMSE of the test predictions multiplied by each probe scale ({probes}), scored on {leaderboard['source']}. "
            "It multiplies the test rows only: no CV score in this report includes it.")


def scale_lines(record) -> list[str]:
    """The scale as its two factors, then where each factor came from."""
    return [scale_parts(record).text(), _oof_origin(record), _leaderboard_origin(record)]
