"""transfer_net at full scale (614 x 18,211 demo): 4-fold test_like CV wall time and peak RSS of the shipped config
(target: at most 60 s on 2 cores), beside transfer_ridge, whose table it builds on."""

from __future__ import annotations

from common import CV, measure


SETTINGS = (("transfer_ridge", []), ("transfer_net", []))


def run(repeats: int) -> str:
    lines = [
        "## transfer_net (full-size demo, 614 x 18,211, 4-fold test_like, shipped config)",
        "",
        "Target: a 4-fold CV of the shipped transfer_net config within 60 s on 2 cores.",
        "",
        "| model | overrides | per fold | 4-fold CV | peak RSS | CV / zeros |",
        "|---|---|---|---|---|---|",
    ]
    for model, overrides in SETTINGS:
        result = measure(CV.format(model=model, overrides=overrides), repeats)
        lines.append(f"| `{model}` | {' '.join(overrides) or 'shipped'} | {result['fold_seconds']:.1f} s | {result['cv_seconds']:.1f} s | "
                     f"{result['peak_rss_mib']:.0f} MiB | {result['relative_to_zeros']:.3f} |")
    lines.append("")
    return "\n".join(lines)
