"""Errors a user can act on: the CLI prints their message alone, without a traceback."""


class PerturbkitError(Exception):
    pass


class DataValidationError(PerturbkitError, ValueError):
    """Bad input data; the message names the file and the column or row."""


class ConfigError(PerturbkitError, ValueError):
    """A bad config file, ``--set`` override, model parameter or scheme."""


class UnknownModelError(PerturbkitError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])
