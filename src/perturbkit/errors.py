"""Errors a user can act on: the CLI prints their message alone, without a traceback."""

import re

# scheme://user:password@host -> scheme://user:***@host (Optuna storage URLs, database URLs)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*:)[^@\s'\"]+@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it masked."""
    return _URL_PASSWORD.sub(r"\1***@", text)


class PerturbkitError(Exception):
    pass


class DataValidationError(PerturbkitError, ValueError):
    """Bad input data; the message names the file and the column or row."""


class ConfigError(PerturbkitError, ValueError):
    """A bad config file, ``--set`` override, model parameter or scheme."""


class UnknownModelError(PerturbkitError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class InvalidParameterError(ConfigError):
    """An estimator parameter outside its constraints; ``param`` names it, so a config maps it to its key."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param
