"""Estimator parameter constraints: scikit-learn's declaration vocabulary, checked one parameter at a time.

An estimator declares ``_parameter_constraints = {param: [constraint, ...]}`` with scikit-learn's
vocabulary (:class:`Interval`, :class:`StrOptions`, :class:`Options`, :class:`HasMethods`,
``"boolean"``, ``"array-like"``, ``"random_state"``, a type, ``None``), plus :class:`ListOf` for
list parameters. A parameter is valid when one of its constraints holds. :func:`validate_params`
checks each parameter on its own, so the failing one is known without reading the message
(:class:`~perturbkit.errors.InvalidParameterError` ``.param``), then calls the estimator's
``_check_params()`` where it defines one (checks across parameters, or against the machine: memory,
devices). Config validation and each estimator's ``fit`` call it; this is the only module that
reaches into scikit-learn's private validation.
"""

from __future__ import annotations

import os

from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions, make_constraint
from sklearn.utils._param_validation import InvalidParameterError as _SklearnInvalidParameterError
from sklearn.utils._param_validation import validate_parameter_constraints

from perturbkit.errors import InvalidParameterError

__all__ = ["HasMethods", "Interval", "InvalidParameterError", "ListOf", "Options", "StrOptions", "available_cpus", "available_memory", "check_values",
           "validate_params"]


class ListOf(Options):
    """A list or tuple of at least ``min_length`` items, each satisfying ``item`` (any constraint above; never a bool
    where a number is asked for).

    An :class:`Options` only because scikit-learn's validator accepts its own constraint classes alone.
    """

    def __init__(self, item, *, min_length: int = 1):
        super().__init__(list, set())
        self.item = make_constraint(item)
        self.min_length = min_length

    def is_satisfied_by(self, val) -> bool:
        return (isinstance(val, (list, tuple)) and len(val) >= self.min_length
                and all(not isinstance(v, bool) and self.item.is_satisfied_by(v) for v in val))

    def __str__(self) -> str:
        return f"a list of at least {self.min_length} item(s), each {self.item}"


def validate_params(estimator) -> None:
    """Each declared parameter of ``estimator`` against its constraints, then its ``_check_params()``.

    Raises :class:`InvalidParameterError` naming the first parameter that fails.
    """
    check_values(getattr(type(estimator), "_parameter_constraints", None) or {}, estimator.get_params(deep=False),
                 type(estimator).__name__)
    check = getattr(estimator, "_check_params", None)
    if callable(check):
        check()


def check_values(constraints: dict, values: dict, caller: str) -> None:
    """``values`` (parameter -> value) against ``constraints`` in the same vocabulary, one at a time: for a factory's own
    arguments that no estimator parameter holds as given (``pca_ridge``'s ``alpha``)."""
    for param, value in values.items():
        if param not in constraints:
            continue
        try:
            validate_parameter_constraints({param: constraints[param]}, {param: value}, caller_name=caller)
        except _SklearnInvalidParameterError as exc:
            raise InvalidParameterError(param, str(exc)) from None


def available_memory() -> int:
    """Bytes of memory this machine can give an allocation now (what a size check compares it with): the kernel's
    MemAvailable (free memory plus reclaimable caches), else the free pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_cpus() -> int:
    """The CPUs this process may run on (what thread and worker counts are capped at)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
