"""The Kaggle client, one module per API use: the rest of perturbkit talks to Kaggle only through here.

- :mod:`~perturbkit.kaggle.auth`: where credentials are found (names only), an authenticated client, error messages.
- :mod:`~perturbkit.kaggle.download`: the competition files, validated before they land.
- :mod:`~perturbkit.kaggle.push`: push a kernel folder; :mod:`~perturbkit.kaggle.status`: follow its run;
  :mod:`~perturbkit.kaggle.output` / :mod:`~perturbkit.kaggle.logs`: its files and log.
- :mod:`~perturbkit.kaggle.submit`: submit a file to the competition.

Every call goes through the real ``kaggle`` package (2.x), which tests point at a local fake API.
"""

from perturbkit.kaggle.auth import (
    CREDENTIALS_HELP,
    KaggleApiError,
    KaggleCredentialsError,
    api_errors,
    credential_sources,
    credential_values,
    kaggle_api,
    kaggle_username,
)
from perturbkit.kaggle.download import Download, describe_download, download_competition
from perturbkit.kaggle.logs import kernel_logs
from perturbkit.kaggle.output import download_output
from perturbkit.kaggle.push import Pushed, kernel_ref, push_folder
from perturbkit.kaggle.status import KernelRunError, Status, check_finished, follow_status, kernel_status
from perturbkit.kaggle.submit import submit_file

__all__ = [
    "CREDENTIALS_HELP",
    "kaggle_username",
    "Download",
    "KaggleApiError",
    "KaggleCredentialsError",
    "KernelRunError",
    "Pushed",
    "Status",
    "api_errors",
    "check_finished",
    "credential_sources",
    "credential_values",
    "describe_download",
    "download_competition",
    "download_output",
    "follow_status",
    "kaggle_api",
    "kernel_logs",
    "kernel_ref",
    "kernel_status",
    "push_folder",
    "submit_file",
]
