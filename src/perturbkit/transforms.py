"""Signed -log10 p-values and the normal z scores they come from.

de_train holds limma's sign(t) x -log10(p): a heavy-tailed, nonlinear function of the test statistic.
The demo generator works in z and transforms; models may fit in z, where effects add and scale linearly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri_exp

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# Beyond this |t|, Phi(-|t|) is too small for float32 ndtr and log_ndtr takes over.
_FAR_TAIL = 10.0


def _log_normal_tail(magnitude: np.ndarray) -> np.ndarray:
    """log Phi(-magnitude): log(ndtr) is twice as fast as log_ndtr, which is kept for the far tail."""
    with np.errstate(divide="ignore"):  # ndtr underflows to 0 in the far tail, replaced below
        log_tail = np.log(ndtr(-magnitude))
    far = magnitude > _FAR_TAIL
    log_tail[far] = log_ndtr(-magnitude[far])
    return log_tail


def signed_log10_p(t: np.ndarray, log_tail: np.ndarray | None = None) -> np.ndarray:
    """sign(t) * -log10 of the two-sided normal p-value of t; finite and heavy-tailed for huge |t|."""
    if log_tail is None:
        log_tail = _log_normal_tail(np.abs(t))
    return np.copysign(-(log_tail + _LN2) / _LN10, t)


def signed_log10_p_and_slope(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    magnitude = np.abs(t)
    log_tail = _log_normal_tail(magnitude)
    # d/dt of -log10(2 Phi(-|t|)) is phi(t) / (Phi(-|t|) ln 10), formed in logs to stay finite.
    slope = np.exp(-0.5 * magnitude**2 - _LOG_SQRT_2PI - log_tail) / _LN10
    return signed_log10_p(t, log_tail), slope


def z_from_signed_log10_p(y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`signed_log10_p`: the normal z with the same two-sided p-value and sign."""
    return np.copysign(-ndtri_exp(-np.abs(y) * _LN10 - _LN2), y)
