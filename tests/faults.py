"""Faults injected at each step of writing a blend set, in a forked child: Ctrl-C (SIGINT) or SIGTERM right after the
step, deterministically, through a patched writer; the parent then inspects what the child left on disk."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

# After each: the csv, the h5ad, the read-back checks, the record written; "swap": the previous set renamed away.
WRITE_STEPS = ("csv", "h5ad", "read_back", "json", "swap")
SET_FILES = ("blend.csv", "blend.h5ad", "blend.json")
_WRITERS = {"csv": "write_submission_csv", "h5ad": "write_prediction_h5ad", "read_back": "read_submission", "json": "write_json"}


def _inject(step: str, folder: Path, signum: int) -> None:
    import perturbkit.blend.files as files

    def hit() -> None:
        os.kill(os.getpid(), signum)

    if step == "swap":
        original = os.replace

        def replace(src, dst):
            original(src, dst)
            if Path(src) == folder:  # the previous set was just renamed away; the new one is not in place yet
                hit()

        os.replace = replace
        return
    original_writer = getattr(files, _WRITERS[step])

    def writer(*args, **kwargs):
        out = original_writer(*args, **kwargs)
        hit()
        return out

    setattr(files, _WRITERS[step], writer)


def hit_after(step: str, signum: int, folder: Path, write) -> str:
    """Run ``write()`` in a forked child that gets ``signum`` right after ``step`` of writing ``folder``; how it ended:
    ``interrupted`` (KeyboardInterrupt), ``killed by SIGTERM``, ``finished`` or ``failed``."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test runner
        code = 4
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _inject(step, Path(folder), signum)
            write()
            code = 0
        except KeyboardInterrupt:
            code = 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the writer hit after {step} hung")
        time.sleep(0.05)
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return {0: "finished", 3: "interrupted"}.get(os.WEXITSTATUS(status), "failed")


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Each file of the set: its inode (replaced or not) and its bytes."""
    return {name: ((folder / name).stat().st_ino, (folder / name).read_bytes()) for name in SET_FILES if (folder / name).exists()}


def staging_left(submissions: Path) -> list[str]:
    return sorted(p.name for p in Path(submissions).rglob("*") if ".partial" in p.name)
