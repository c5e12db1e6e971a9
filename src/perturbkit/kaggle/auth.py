"""Credentials and an authenticated client: the real ``kaggle`` package (2.x, on ``kagglesdk``).

Credentials are looked for where the client looks; their values are never printed, logged or
copied. Without any, :func:`kaggle_api` raises :class:`KaggleCredentialsError` *before* importing
the client (importing it already tries to authenticate and creates ``~/.kaggle``), so a failed
``make data`` writes nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

from perturbkit.data.layout import COMPETITION
from perturbkit.errors import PerturbkitError

DATA_PAGE = f"https://www.kaggle.com/competitions/{COMPETITION}/data"

WHERE_CREDENTIALS_GO = f"""\
The Kaggle client looks for credentials, in this order, in:
  - the KAGGLE_API_TOKEN environment variable (an API token, or the path of a file holding one)
  - ~/.kaggle/access_token (a file holding an API token)
  - ~/.kaggle/kaggle.json (legacy {{"username": ..., "key": ...}}; KAGGLE_CONFIG_DIR moves ~/.kaggle),
    or the KAGGLE_USERNAME and KAGGLE_KEY environment variables
  - ~/.kaggle/credentials.json (written by `kaggle auth login`)
Create a token at https://www.kaggle.com/settings/api ("Generate New Token"), then e.g.
  export KAGGLE_API_TOKEN=<your token>      (or save it in ~/.kaggle/access_token, chmod 600)
and accept the competition rules at https://www.kaggle.com/competitions/{COMPETITION}/rules.
Or download de_train.parquet, id_map.csv and sample_submission.csv by hand from
  {DATA_PAGE}
into a directory and pass it to perturbkit: make cv DATA=<dir>   (or --data <dir>)"""
CREDENTIALS_HELP = f"no Kaggle credentials found. {WHERE_CREDENTIALS_GO}"


class KaggleCredentialsError(PerturbkitError):
    """No Kaggle credentials, or the server rejected them."""


class KaggleApiError(PerturbkitError):
    """A Kaggle API call failed; the message says which and why (never with a credential)."""


def _config_dir() -> Path:
    """Where the client reads kaggle.json: KAGGLE_CONFIG_DIR, ~/.kaggle, else ~/.config/kaggle on Linux."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    home = Path.home() / ".kaggle"
    if not home.exists():
        xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
        if xdg.exists():
            return xdg
    return home


def _nonempty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def credential_sources() -> list[str]:
    """The names (never the values) of the credential sources the Kaggle client would find."""
    found = []
    if os.environ.get("KAGGLE_API_TOKEN"):
        found.append("KAGGLE_API_TOKEN")
    for name in ("access_token", "access_token.txt"):
        if _nonempty(Path.home() / ".kaggle" / name):
            found.append(f"~/.kaggle/{name}")
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        found.append("KAGGLE_USERNAME/KAGGLE_KEY")
    if _nonempty(_config_dir() / "kaggle.json"):
        found.append(str(_config_dir() / "kaggle.json"))
    if _nonempty(Path.home() / ".kaggle" / "credentials.json"):
        found.append("~/.kaggle/credentials.json")
    return found


def credential_values() -> list[str]:
    """Secret values currently configured, for leak checks only: callers must never print them."""
    values = [os.environ.get("KAGGLE_API_TOKEN", ""), os.environ.get("KAGGLE_KEY", "")]
    for path in (Path.home() / ".kaggle" / "access_token", Path.home() / ".kaggle" / "access_token.txt"):
        if _nonempty(path):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                values.append(path.read_text().strip())
    token_env = os.environ.get("KAGGLE_API_TOKEN", "")
    if token_env and len(token_env) < 4096:
        with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
            if Path(token_env).is_file():
                values.append(Path(token_env).read_text().strip())
    for path in (_config_dir() / "kaggle.json", Path.home() / ".kaggle" / "credentials.json"):
        if _nonempty(path):
            with contextlib.suppress(OSError, UnicodeDecodeError, ValueError, AttributeError):
                data = json.loads(path.read_text())
                values += [str(data.get(k, "")) for k in ("key", "refresh_token", "access_token")]
    return [v for v in values if len(v) >= 12]


def require_credentials() -> list[str]:
    sources = credential_sources()
    if not sources:
        raise KaggleCredentialsError(CREDENTIALS_HELP)
    return sources


def kaggle_api():
    """An authenticated ``kaggle.api.kaggle_api_extended.KaggleApi``.

    Raises :class:`KaggleCredentialsError` (with :data:`CREDENTIALS_HELP`) when no credentials
    are configured or the server does not accept them.
    """
    require_credentials()
    # Importing the package authenticates once at import time and prints help when that fails;
    # keep that out of our output, we authenticate again below and report failures ourselves.
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi
    api = KaggleApi()
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            api.authenticate()
    except SystemExit:
        raise KaggleCredentialsError(
            f"the Kaggle credentials found ({', '.join(credential_sources())}) were not accepted "
            f"(expired or revoked token?).\n{WHERE_CREDENTIALS_GO}"
        ) from None
    except Exception as exc:  # the client raises requests errors and plain Exceptions
        raise KaggleApiError(f"cannot reach the Kaggle API to authenticate: {_describe(exc)}") from None
    return api


def _describe(exc: BaseException) -> str:
    """An error's message and the server's own reason, without request headers (which carry the credential)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = f"{text} (HTTP {status})" if status and str(status) not in text else text
    with contextlib.suppress(Exception):  # Kaggle says why in a JSON body: {"code": 400, "message": "..."}
        reason = response.json().get("message")
        if reason:
            text = f"{text}: {reason}"
    return text


@contextlib.contextmanager
def api_errors(action: str):
    """Turn the client's exceptions into :class:`KaggleApiError` naming the action."""
    try:
        yield
    except PerturbkitError:
        raise
    except SystemExit as exc:
        raise KaggleApiError(f"{action}: the Kaggle client exited ({exc.code})") from None
    except Exception as exc:
        raise KaggleApiError(f"{action}: {_describe(exc)}") from None


def kaggle_username(user: str | None = None) -> str:
    """``user``, else ``$KAGGLE_USERNAME``; a :class:`ConfigError` saying how to name it when neither is set."""
    from perturbkit.errors import ConfigError

    user = user or os.environ.get("KAGGLE_USERNAME")
    if not user:
        raise ConfigError("name your Kaggle username: --user <name> (make: KAGGLE_USER=<name>) or KAGGLE_USERNAME")
    return user
