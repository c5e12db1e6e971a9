"""Shared benchmark helpers: run a snippet in a fresh process and read its time and peak memory."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap


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
