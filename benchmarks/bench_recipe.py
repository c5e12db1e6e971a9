"""The recipe at full scale (614 x 18,211 default demo): `make recipe` from an empty run store, per member and in all."""

from __future__ import annotations

from common import measure

RECIPE = """
import tempfile, time
from perturbkit.data import load
from perturbkit.recipe import load_recipe, run_recipe
dataset = load("demo")
recipe = load_recipe("configs/recipe.toml")
start = time.perf_counter()
with tempfile.TemporaryDirectory() as root:
    outcome = run_recipe(dataset, recipe, oof_root=root + "/oof", submissions=root + "/sub", dataset_id="bench", say=lambda m: None)
result = {"total_seconds": time.perf_counter() - start, "nested": outcome.blend.scores["nested"],
          "zeros": outcome.members[0].meta["scores"]["zeros"], "factor": outcome.blend.leaderboard.factor}
for position, member in enumerate(outcome.members, 1):
    label = f"{position}. {member.label}"
    result["seconds " + label] = member.seconds
    result["cv " + label] = member.meta["scores"]["relative_to_zeros"]
"""


def run(repeats: int) -> str:
    timing = measure(RECIPE, repeats)
    members = [key.removeprefix("seconds ") for key in timing if key.startswith("seconds ")]
    lines = [
        "## The recipe (`make recipe`, configs/recipe.toml, full-size default demo, empty run store)",
        "",
        "| step | median | CV relative to zeros |",
        "|---|---|---|",
    ]
    for member in members:
        lines.append(f"| {member} CV (4 folds, run written) | {timing['seconds ' + member]:.1f} s | {timing['cv ' + member]:.3f} |")
    lines.append(f"| **whole recipe** (members, blend with nested choice, leaderboard probes, submission files) | "
                 f"**{timing['total_seconds']:.1f} s** | blend nested {timing['nested'] / timing['zeros']:.3f}, "
                 f"leaderboard factor {timing['factor']:.3f} |")
    lines.append(f"| peak RSS of the process | {timing['peak_rss_mib']:.0f} MiB | |")
    lines.append("")
    return "\n".join(lines)
