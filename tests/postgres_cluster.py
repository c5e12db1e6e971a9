"""A throw-away PostgreSQL cluster for the tuning tests: initdb in a folder, a free local port, pg_ctl.

``python tests/postgres_cluster.py start DIR`` prints the SQLAlchemy URL (``.ci/run`` exports it as
PERTURBKIT_TEST_POSTGRES_URL); ``stop DIR`` stops the server and removes DIR. PostgreSQL refuses
to run as root, so as root the cluster belongs to the ``postgres`` user (``nobody`` without one).
Standard library only: ``.ci/run`` calls it before the virtual environment exists.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

USER = "perturbkit"
DATABASE = "postgres"


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise Unavailable("no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return Path(candidates[-1]).parent


def _owner() -> pwd.struct_passwd | None:
    """The unprivileged user that runs the server when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise Unavailable("running as root, and neither a 'postgres' nor a 'nobody' user exists to own the cluster")


def _run(command: list[str], owner) -> subprocess.CompletedProcess:
    if owner is not None:
        command = ["runuser", "-u", owner.pw_name, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(folder: Path | str) -> str:
    """Start a cluster in ``folder`` (created); returns its URL for SQLAlchemy with psycopg 3."""
    folder = Path(folder)
    bin_dir, owner = _bin_dir(), _owner()
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(12)
    (folder / "pwfile").write_text(password + "\n")
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        os.chown(folder / "pwfile", owner.pw_uid, owner.pw_gid)
    data = folder / "data"
    init = _run([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(folder / "pwfile"),
                 "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"], owner)
    if init.returncode != 0:
        raise Unavailable(f"initdb failed: {(init.stderr or init.stdout).strip()[-500:]}")
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    started = _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "-t", "60", "start"], owner)
    if started.returncode != 0:
        log = (folder / "server.log").read_text()[-500:] if (folder / "server.log").is_file() else ""
        raise Unavailable(f"pg_ctl start failed: {(started.stderr or started.stdout).strip()[-300:]} {log}")
    (folder / "port").write_text(str(port))
    return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"


def stop(folder: Path | str) -> None:
    folder = Path(folder)
    if (folder / "data" / "postmaster.pid").is_file():
        _run([str(_bin_dir() / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"], _owner())
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    action, target = sys.argv[1], sys.argv[2]
    if action == "start":
        try:
            print(start(target))
        except Unavailable as exc:
            print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
            sys.exit(1)
    elif action == "stop":
        stop(target)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop DIR")
