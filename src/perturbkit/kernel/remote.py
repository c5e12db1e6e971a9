"""Push a built kernel, follow its run, fetch its output, submit a file: the real Kaggle client, checked first."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from perturbkit.data.kaggle import KaggleApiError, api_errors, kaggle_api
from perturbkit.data.layout import COMPETITION
from perturbkit.errors import PerturbkitError
from perturbkit.kernel.metadata import check_no_credentials, read_metadata

FINAL_STATUSES = ("COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED")


class KernelRunError(PerturbkitError):
    """The kernel's run ended in error or was cancelled, or did not end in time."""


@dataclass(frozen=True)
class Pushed:
    kernel: str  # owner/slug
    version: int | None
    url: str


@dataclass(frozen=True)
class Status:
    kernel: str
    status: str
    failure_message: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def push_kernel(folder: Path | str, *, api=None) -> Pushed:
    """Validate the folder's metadata, refuse credentials in it, then ``kaggle kernels push -p <folder>``."""
    folder = Path(folder)
    metadata = read_metadata(folder)
    check_no_credentials(folder)
    api = api or kaggle_api()
    with api_errors(f"pushing kernel {metadata['id']}"):
        response = api.kernels_push(str(folder))
    if response is None or response.error:
        raise KaggleApiError(f"pushing kernel {metadata['id']}: {getattr(response, 'error', None) or 'no response'}")
    for label, invalid in (
        ("dataset", response.invalid_dataset_sources),
        ("competition", response.invalid_competition_sources),
        ("kernel", response.invalid_kernel_sources),
    ):
        if invalid:
            raise KaggleApiError(f"pushing kernel {metadata['id']}: Kaggle rejected the {label} source(s) {list(invalid)}")
    return Pushed(kernel=metadata["id"], version=response.version_number or None, url=response.url)


def kernel_id(kernel: str | None = None, folder: Path | str | None = None) -> str:
    if kernel:
        if kernel.count("/") != 1:
            raise KaggleApiError(f"kernel {kernel!r}: expected <username>/<kernel-slug>")
        return kernel
    if folder is None:
        raise KaggleApiError("name the kernel (<username>/<kernel-slug>) or its folder (--dir kernels/<slug>)")
    return read_metadata(folder)["id"]


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
        raise KernelRunError(f"{status.kernel} ended {status.status.lower()}{detail}; see its log with perturbkit kernel output {status.kernel}")


def download_output(kernel: str, out_dir: Path | str, *, api=None) -> list[Path]:
    """``kaggle kernels output <kernel> -p <out_dir> --force``: every output file plus the run's log."""
    api = api or kaggle_api()
    out_dir = Path(out_dir)
    with api_errors(f"downloading the output of kernel {kernel}"):
        files, _ = api.kernels_output(kernel, str(out_dir), force=True, quiet=True)
    return [Path(f) for f in files]


def check_submission_file(path: Path | str, template: Path | str | None = None) -> None:
    """The file has exactly the template's (default: the real competition's) ids and genes, all finite."""
    from perturbkit.data.layout import gene_names, test_layout
    from perturbkit.submit import read_submission

    if template is not None:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(template)
        genes, ids = [c for c in table.column_names if c != "id"], table.column("id").to_numpy()
    else:
        genes, ids = list(gene_names()), test_layout()["id"].to_numpy()
    read_submission(path, genes=genes, ids=ids)


def submit_file(path: Path | str, message: str, *, competition: str = COMPETITION, api=None) -> str:
    """``kaggle competitions submit -c <competition> -f <path> -m <message>``; returns Kaggle's reply."""
    path = Path(path)
    if not path.is_file():
        raise KaggleApiError(f"{path}: file not found")
    if not message.strip():
        raise KaggleApiError("a submission needs a message (-m)")
    api = api or kaggle_api()
    with api_errors(f"submitting {path} to {competition}"):
        response = api.competition_submit(str(path), message, competition, quiet=True)
    reply = getattr(response, "message", "") or ""
    if reply == getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", None):
        raise KaggleApiError(f"submitting {path}: the upload failed ({reply})")
    return reply
