"""``make bench``: run every benchmark section at full scale and write BENCHMARKS.md.

Each section is a module in this folder with ``run(repeats: int) -> str`` returning markdown that
starts with its ``## `` heading; times are medians over ``repeats`` runs, peak memory is the child
process's max RSS. With ``--only``, the named sections replace theirs in an existing output (a
section is known by its heading) and the others stay as they were.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SECTIONS = ["bench_first", "bench_core", "bench_models", "bench_blend", "bench_torch", "bench_transfer_net", "bench_recipe", "bench_tune"]


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
    sections = []
    for name in args.only or SECTIONS:
        print(f"benchmark {name} ...", flush=True)
        sections.append(importlib.import_module(name).run(args.repeats))
    if args.only and args.output.is_file():
        text = replace_sections(args.output.read_text(), sections)
    else:
        text = "\n".join([*parts, *sections]) + "\n"
    args.output.write_text(text)
    print(f"wrote {args.output}")


def replace_sections(text: str, sections: list[str]) -> str:
    """``text`` with each of ``sections`` in place of the section of the same first (``## ``) line, or appended."""
    chunks = re.split(r"(?m)^(?=## )", text)
    for section in sections:
        heading = section.splitlines()[0]
        body = section.rstrip("\n") + "\n\n"
        matches = [i for i, chunk in enumerate(chunks) if chunk.splitlines()[:1] == [heading]]
        if matches:
            chunks[matches[0]] = body
        else:
            chunks[-1] = chunks[-1].rstrip("\n") + "\n\n"
            chunks.append(body)
    return "".join(chunks).rstrip("\n") + "\n"


if __name__ == "__main__":
    main()
