"""``make bench``: run every benchmark section at full scale and write BENCHMARKS.md.

Each section is a module in this folder with ``run(repeats: int) -> str`` returning markdown;
times are medians over ``repeats`` runs, peak memory is the child process's max RSS.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SECTIONS = ["bench_core", "bench_blend", "bench_torch", "bench_transfer_net", "bench_recipe", "bench_tune"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="section modules to run (default: all)")
    args = parser.parse_args()
    parts = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {time.strftime('%Y-%m-%d')}: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}. Times are medians of {args.repeats} runs; memory is peak RSS.",
        "",
    ]
    for name in args.only or SECTIONS:
        print(f"benchmark {name} ...", flush=True)
        parts.append(importlib.import_module(name).run(args.repeats))
    args.output.write_text("\n".join(parts) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
