"""A pushed kernel's run: its status, followed until it ends."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from perturbkit.errors import PerturbkitError
from perturbkit.kaggle.auth import api_errors, kaggle_api

FINAL_STATUSES = ("COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED")


class KernelRunError(PerturbkitError):
    """The kernel's run ended in error or was cancelled, or did not end in time."""


@dataclass(frozen=True)
class Status:
    kernel: str
    status: str
    failure_message: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def kernel_status(kernel: str, *, api=None) -> Status:
    api = api or kaggle_api()
    with api_errors(f"getting the status of kernel {kernel}"):
        response = api.kernels_status(kernel)
    status = getattr(response.status, "name", str(response.status))
    return Status(kernel=kernel, status=status, failure_message=response.failure_message or "")


def follow_status(
    kernel: str, *, interval: float = 30.0, timeout: float = 12 * 3600, api=None, stream=None, sleep=time.sleep
) -> Status:
    """Poll until the run ends, showing status and elapsed time (one rewritten line on a terminal)."""
    api = api or kaggle_api()
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    started, last = time.monotonic(), None
    spinner = "|/-\\"
    polls = 0
    while True:
        status = kernel_status(kernel, api=api)
        elapsed = time.monotonic() - started
        line = f"{kernel}: {status.status.lower()}  {int(elapsed) // 60:d}:{int(elapsed) % 60:02d} elapsed"
        if tty:
            stream.write(f"\r{spinner[polls % 4]} {line}\033[K" + ("\n" if status.final else ""))
        elif status.status != last or status.final:
            stream.write(line + "\n")
        stream.flush()
        last, polls = status.status, polls + 1
        if status.final:
            return status
        if elapsed + interval > timeout:
            raise KernelRunError(f"{kernel}: still {status.status.lower()} after {elapsed:.0f} s; follow it again with perturbkit kernel status {kernel} --follow")
        sleep(interval)


def check_finished(status: Status) -> None:
    if status.status != "COMPLETE":
        detail = f": {status.failure_message}" if status.failure_message else ""
        raise KernelRunError(f"{status.kernel} ended {status.status.lower()}{detail}; see its log with perturbkit kernel logs {status.kernel}")
