"""Apply each mutation of ``tests/mutations`` to a temporary copy of the tree and run its tests.

Usage: ``python tests/mutations/run.py [NAME ...]`` (``make mutate``). Prints ``caught`` or
``missed`` per mutation and exits 1 if any is missed (2 if a record no longer applies). The working
tree is never modified: each mutation is written into a fresh copy (``git ls-files``: tracked and
untracked, not ignored), whose ``src`` is put first on ``PYTHONPATH``; the copy is removed even on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from mutations import MUTATIONS, Mutation  # noqa: E402


class StaleMutationError(Exception):
    """A record whose original text no longer occurs exactly once in its file."""


def occurrences(mutation: Mutation, root: Path = ROOT) -> int:
    return (root / mutation.file).read_text().count(mutation.original)


def _copy_tree(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def apply(mutation: Mutation, root: Path) -> None:
    path = root / mutation.file
    text = path.read_text()
    if text.count(mutation.original) != 1:
        raise StaleMutationError(f"{mutation.name}: {mutation.file} holds its original text {text.count(mutation.original)} times, not once")
    path.write_text(text.replace(mutation.original, mutation.replacement))


def run_one(mutation: Mutation, pytest_args: list[str]) -> tuple[bool, float, str]:
    """(caught, seconds, the last lines of pytest's output) for one mutation on a fresh copy."""
    with tempfile.TemporaryDirectory(prefix="perturbkit-mutant-") as folder:
        copy = Path(folder)
        _copy_tree(copy)
        apply(mutation, copy)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        check = subprocess.run([sys.executable, "-c", "import perturbkit; print(perturbkit.__file__)"], cwd=copy, env=env,
                               capture_output=True, text=True, check=True)
        if not Path(check.stdout.strip()).is_relative_to(copy):
            raise RuntimeError(f"the mutant copy imports perturbkit from {check.stdout.strip()}, not from {copy}")
        started = time.perf_counter()
        tests = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *pytest_args, *mutation.tests],
                               cwd=copy, env=env, capture_output=True, text=True)
        tail = "\n".join((tests.stdout + tests.stderr).strip().splitlines()[-3:])
        # Exit 1: tests failed (caught). 0: all passed (missed). Anything else: pytest could not run them.
        if tests.returncode not in (0, 1):
            raise RuntimeError(f"{mutation.name}: pytest exited {tests.returncode}:\n{tail}")
        return tests.returncode == 1, time.perf_counter() - started, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--all-tests", action="store_true", help="run the slow tests too (default: -m 'not slow')")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTATIONS}
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        print(f"unknown mutation(s) {unknown}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[name] for name in args.names] or list(MUTATIONS)
    stale = [m for m in chosen if occurrences(m) != 1]
    if stale:
        for m in stale:
            print(f"stale: {m.name}: {m.file} holds its original text {occurrences(m)} times, not once", file=sys.stderr)
        return 2
    pytest_args = [] if args.all_tests else ["-m", "not slow"]
    missed = []
    try:
        for mutation in chosen:
            caught, seconds, tail = run_one(mutation, pytest_args)
            print(f"{'caught' if caught else 'MISSED'}  {mutation.name}  ({', '.join(mutation.tests)}, {seconds:.0f} s)", flush=True)
            if not caught:
                missed.append(mutation.name)
                print(f"    guarantee: {mutation.why}\n    {tail}", flush=True)
    except KeyboardInterrupt:
        print("interrupted; the working tree was never changed", file=sys.stderr)
        return 130
    print(f"{len(chosen) - len(missed)} of {len(chosen)} mutations caught" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
