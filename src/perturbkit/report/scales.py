"""A blend's test-row scale taken apart: the factor fitted on the OOF rows and the public-leaderboard factor.

The record stores one scale per test cell type, the product of the two (``blend.core.with_leaderboard_scale``
multiplies the fitted scale by the leaderboard factor); the report and ``rank`` show each part and where it
came from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScaleParts:
    cell_types: tuple[str, ...]  # the test cell types with this scale
    applied: float  # what multiplies the weighted members on the test rows
    oof: float  # fitted on the OOF rows (1 when none was fitted)
    leaderboard: float | None  # from the public-leaderboard probes (None: no factor)

    def formula(self) -> str:
        if self.leaderboard is None:
            return f"{self.applied:.3f} = OOF scale (no leaderboard factor)"
        return f"{self.applied:.3f} = OOF scale {self.oof:.3f} × leaderboard factor {self.leaderboard:.3f}"

    def text(self) -> str:
        return f"{', '.join(self.cell_types)}: scale {self.formula()}"


def scale_parts(record) -> list[ScaleParts]:
    """One entry per distinct test scale of ``record`` (a :class:`perturbkit.blend.record.BlendRecord`)."""
    leaderboard = record.details.get("leaderboard") or None
    factor = None if leaderboard is None else float(leaderboard["factor"])
    by_scale: dict[float, list[str]] = {}
    for cell_type in record.cell_types:
        by_scale.setdefault(record.weights.of(cell_type).scale, []).append(cell_type)
    return [ScaleParts(tuple(cts), scale, scale / factor if factor else scale, factor) for scale, cts in by_scale.items()]


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
    """Each distinct scale as its two factors, then where each factor came from."""
    return [*(part.text() for part in scale_parts(record)), _oof_origin(record), _leaderboard_origin(record)]
