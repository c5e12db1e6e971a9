"""Atomic outputs: every file or folder perturbkit writes appears complete or not at all.

One naming and crash rule for all writers (run store, kernel build, download, submissions):
content is written into a private staging path beside the target, ``.<name>.<pid>-<random>.partial``
(plus the target's suffix for files, so writers that look at it still see it), and renamed into
place only when complete. An exception removes the staging path; a killed process leaves it
behind under that recognisable name, which no reader ever opens; the next successful write of the
same target deletes it (:func:`remove_orphans`), and :func:`remove_stale` any left after a day.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import secrets
import shutil
import signal
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from perturbkit.errors import PerturbkitError

PARTIAL = ".partial"
MARKER = ".perturbkit-owned"  # in folders perturbkit rebuilds as a whole (kernel build, download)
STALE_AFTER_S = 24 * 3600.0


class OutputError(PerturbkitError, OSError):
    """An output location that cannot be written, or a target that is taken."""


class InputError(PerturbkitError, OSError):
    """An input file that cannot be read (no permission, a folder, gone)."""


def _staging_name(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL}"


def _is_disk_full(exc: BaseException) -> bool:
    # pyarrow and h5py raise OSError without errno set, the reason only in the message
    return isinstance(exc, OSError) and (exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)
                                         or "errno = 28" in str(exc))


@contextlib.contextmanager
def _disk_full_named(target: Path) -> Iterator[None]:
    """A full disk while writing ``target`` becomes an :class:`OutputError` naming it (its staging is removed by the caller)."""
    try:
        yield
    except Exception as exc:
        if not _is_disk_full(exc):
            raise
        raise OutputError(f"{target}: no space left on device while writing it; nothing of it was kept") from None


@contextlib.contextmanager
def atomic_file(target: Path | str) -> Iterator[Path]:
    """Yield a staging path to write; on success it replaces ``target`` in one rename."""
    target = Path(target)
    staging = target.with_name(_staging_name(target) + target.suffix)
    try:
        with _disk_full_named(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            yield staging
            os.replace(staging, target)
        remove_orphans(target)
    finally:
        staging.unlink(missing_ok=True)


@contextlib.contextmanager
def signals_deferred(signals=(signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold ``signals`` back (in the main thread) until the block is done; then each acts as it would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            os.kill(os.getpid(), signum)


@contextlib.contextmanager
def atomic_dir(target: Path | str, *, replace: bool = False, force: bool = False) -> Iterator[Path]:
    """Yield a new private staging folder; on success it becomes ``target``.

    Without ``replace`` the target's name is claimed exclusively (``mkdir`` fails when it exists,
    even if another process claimed it a moment ago) and :class:`FileExistsError` is raised.
    With ``replace`` the folder is perturbkit's (a :data:`MARKER` file says so): an existing target
    is swapped for the new content and then removed, but only if it holds the marker or ``force``
    is set; that is checked before anything is written.
    """
    target = Path(target)
    if replace and target.exists() and not force and not (target / MARKER).is_file():
        what = "a folder" if target.is_dir() else "a file"
        raise OutputError(f"{target}: {what} perturbkit did not create (no {MARKER} in it); refusing to replace it. "
                          "Move it away, choose another output, or pass --force")
    staging = target.with_name(_staging_name(target))
    try:
        with _disk_full_named(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            if replace:
                (staging / MARKER).write_text("written by perturbkit; it replaces this folder as a whole when rebuilding it\n")
            yield staging
            if replace and target.exists():
                old = target.with_name(_staging_name(target))
                # Between the renames no target exists: Ctrl-C or SIGTERM waits until the swap and its cleanup are done.
                with signals_deferred():
                    os.replace(target, old)
                    try:
                        os.replace(staging, target)
                    except BaseException:
                        os.replace(old, target)
                        raise
                    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
            else:
                os.mkdir(target)  # the exclusive claim of the name: a second writer fails here
                os.replace(staging, target)  # a directory may replace the empty one it claimed
        remove_orphans(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def orphans(target: Path | str) -> list[Path]:
    """The staging leftovers of ``target`` whose writing process is gone (killed mid-write): ``.<name>.<pid>-<hex>.partial``
    (and ``.<name>.<suffix>.<pid>-<hex>.partial...``, a file staged under an older flat layout); a live writer's staging,
    this process's included, is not one (a reused pid keeps one too, until :func:`remove_stale`)."""
    target = Path(target)
    own = re.compile(rf"\.{re.escape(target.name)}\.(?:[^.]+\.)?(\d+)-[0-9a-f]{{8}}{re.escape(PARTIAL)}")
    found = (own.match(path.name) for path in sorted(target.parent.glob(f".{glob.escape(target.name)}.*{PARTIAL}*")))
    return [target.parent / match.string for match in found if match is not None and not _alive(int(match[1]))]


def remove_orphans(target: Path | str) -> list[Path]:
    """Delete the :func:`orphans` of ``target``."""
    removed = []
    for path in orphans(target):
        try:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:  # gone already (another cleaner), or not ours to remove: left for remove_stale
            continue
        removed.append(path)
    return removed


def remove_stale(folder: Path | str, *, older_than: float = STALE_AFTER_S, patterns=(f".*{PARTIAL}*",)) -> list[Path]:
    """Delete staging leftovers in ``folder`` last modified more than ``older_than`` seconds ago."""
    now, removed = time.time(), []
    for pattern in patterns:
        for path in sorted(Path(folder).glob(pattern)):
            try:
                if now - path.lstat().st_mtime < older_than:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:  # another cleaner or its owner got there first
                continue
            removed.append(path)
    return removed


def is_plain_name(name: str) -> bool:
    """Whether ``name`` can become one file or folder inside a chosen folder and nowhere else: no path separator, not
    ``.``/``..`` nor a leading dot (staging names use one), no control character, at most 100 characters."""
    return not (not name or name.startswith(".") or os.path.isabs(name)
                or any(sep in name for sep in ("/", "\\", os.sep, os.altsep or "/"))
                or any(unicodedata.category(ch).startswith("C") for ch in name) or len(name) > 100)


def check_writable(folder: Path | str, what: str) -> Path:
    """Fail before any work when ``folder`` (or the nearest existing parent it would be created in) is not writable."""
    folder = Path(folder)
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{what} {folder}: {existing} is a file, not a folder")
    try:  # a real write: access() says yes to root on read-only mounts
        probe = existing / _staging_name(folder)
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        reason = "read-only" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else exc.strerror
        raise OutputError(f"{what} {folder}: cannot write there ({reason}); nothing was computed") from None
    return folder


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return digest.hexdigest()
