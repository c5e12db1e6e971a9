"""Every registered model's cost at full scale (614 x 18,211 demo): 4-fold CV wall time and peak RSS with its shipped
config under the default scheme (test_like), each in a fresh process, on all the machine's cores."""

from __future__ import annotations

import os

from common import CV, measure

from perturbkit.models import list_models


def run(repeats: int) -> str:
    lines = [
        f"## Every model's cost (full-size demo, 614 x 18,211, 4-fold test_like, shipped config, {os.cpu_count()} cores)",
        "",
        "Wall time of `run_cv` (features, fits and predictions of every fold; the data already loaded), its CPU time",
        "(user + system, all threads: on a busy machine the wall time grows, the CPU time much less) and the process's",
        "peak RSS (loading included). The 1-minute load average at the end of the run says how busy the machine was.",
        "",
        "| model | per fold | 4-fold CV | CPU time | peak RSS | CV / zeros | load average |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in list_models():
        result = measure(CV.format(model=model, overrides=[]), repeats)
        lines.append(f"| `{model}` | {result['fold_seconds']:.1f} s | {result['cv_seconds']:.1f} s | {result['cpu_seconds']:.1f} s | {result['peak_rss_mib']:.0f} MiB | "
                     f"{result['relative_to_zeros']:.3f} | {result['load_average']:.1f} |")
    lines.append("")
    return "\n".join(lines)
