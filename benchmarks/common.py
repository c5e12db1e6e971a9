"""Shared benchmark helpers: run a snippet in a fresh process and read its time and peak memory."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap

# One model's 4-fold CV under the default scheme (configs/cv.toml: test_like) on the full-size demo, its shipped
# config with ``{overrides}`` (a list of ``--set`` strings); format with ``model`` and ``overrides``.
CV = """
import os, resource, statistics, time
from perturbkit.config import load_config
from perturbkit.cv import run_cv
from perturbkit.data import load
dataset = load("demo")
config = load_config("{model}", overrides={overrides!r})
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # user + system seconds, all threads
start, cpu_start = time.perf_counter(), cpu()
meta = run_cv(dataset, config, progress=False).meta
result = {{"cv_seconds": time.perf_counter() - start,
           "cpu_seconds": cpu() - cpu_start,
           "fold_seconds": statistics.median(f["seconds"] for f in meta["folds"]),
           "folds": len(meta["folds"]),
           "relative_to_zeros": meta["scores"]["relative_to_zeros"],
           "load_average": os.getloadavg()[0]}}
"""


def measure(snippet: str, repeats: int) -> dict:
    """Run ``snippet`` (which sets ``result = {...}`` of timings) ``repeats`` times in fresh processes.

    Returns the median of each timing and of peak RSS in MiB.
    """
    program = textwrap.dedent(snippet) + textwrap.dedent(
        """
        import json, resource
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("BENCH" + json.dumps(result))
        """
    )
    samples = []
    for _ in range(repeats):
        output = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
        samples.append(json.loads(next(line[5:] for line in output.splitlines() if line.startswith("BENCH"))))
    return {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}
