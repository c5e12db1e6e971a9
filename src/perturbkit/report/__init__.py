"""Reports: PNG plots and an index.html / index.md page per blend (``perturbkit report``)."""

from __future__ import annotations

__all__ = ["build_blend_report", "build_runs_report"]


def __getattr__(name):  # lazy: matplotlib is imported only when a report is built
    if name in __all__:
        from perturbkit.report import build

        return getattr(build, name)
    raise AttributeError(name)
