"""A newcomer's first result: `make cv MODEL=transfer_ridge GENES=500` after `make install`, from an empty demo cache.

Each run is the real make command in a fresh process, with its own empty demo cache and run store,
so it pays for generating the 500-gene world, importing, the 4-fold CV and writing the run; a
second call on the now cached world shows what the CV costs alone.
"""

from __future__ import annotations

from common import measure

COMMAND = ["make", "--no-print-directory", "cv", "MODEL=transfer_ridge", "GENES=500"]
TARGET_SECONDS = 60

FIRST = f"""
import json, os, resource, subprocess, tempfile, time
from pathlib import Path
command = {COMMAND!r}
with tempfile.TemporaryDirectory() as root:
    environment = {{**os.environ, "PERTURBKIT_DEMO_ROOT": root + "/demo"}}
    timings = []
    for _ in range(2):  # first: the world is generated; second: it is cached
        start = time.perf_counter()
        subprocess.run([*command, "OOF=" + root + "/oof"], env=environment, check=True, capture_output=True)
        timings.append(time.perf_counter() - start)
    meta = json.loads(next(Path(root, "oof").glob("*/*/meta.json")).read_text())
result = {{"first_seconds": timings[0], "cached_seconds": timings[1], "relative_to_zeros": meta["scores"]["relative_to_zeros"],
          "children_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}
"""


def run(repeats: int) -> str:
    timing = measure(FIRST, repeats)
    first = timing["first_seconds"]
    verdict = "under" if first < TARGET_SECONDS else "over"
    return "\n".join([
        "## First result (`make cv MODEL=transfer_ridge GENES=500` after `make install`, empty demo cache)",
        "",
        "| what | median | |",
        "|---|---|---|",
        f"| **the whole command**: generate the 500-gene world, 4-fold CV, run written, summary printed | **{first:.1f} s** | "
        f"{verdict} the {TARGET_SECONDS} s target; CV relative to zeros {timing['relative_to_zeros']:.3f} |",
        f"| the same command again, the world cached | {timing['cached_seconds']:.1f} s | "
        f"so generating the world took about {first - timing['cached_seconds']:.1f} s |",
        f"| peak RSS of the `perturbkit cv` process | {timing['children_peak_rss_mib']:.0f} MiB | |",
        "",
    ])
