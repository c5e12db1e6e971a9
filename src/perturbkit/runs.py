"""``perturbkit runs``: the run store as a table that tells runs apart, callable from a notebook.

Each run shows its data (folder name and genes), its config overrides against the model's shipped
config, its tuning trial, and whether ``blend`` takes it by default
(:func:`perturbkit.cv.store.default_blend_runs`). ``data`` keeps one world's runs; damaged runs are
named and counted, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perturbkit.config import without_tune
from perturbkit.cv.store import clean_staging, default_blend_runs, list_runs, read_meta, with_cell_type_scores
from perturbkit.labels import MISSING, flatten, shipped_config

HIDDEN = ["path", "created", "data_hash", "config_hash", "folds_hash"]


def config_overrides(config: dict, shipped: dict) -> list[str]:
    """``key=value`` for each setting of ``config`` that differs from ``shipped`` (the scheme aside: it has its own column)."""
    ours, theirs = flatten(without_tune(config)), flatten(shipped)
    return [f"{key}={json.dumps(value)}" for key, value in sorted(ours.items())
            if key != "cv.scheme" and theirs.get(key, MISSING) != value]


def _overrides_column(paths, configs_dir: Path) -> list[str]:
    shipped: dict[str, dict | None] = {}
    column = []
    for path in paths:
        config = read_meta(path)["config"]
        model = config["model"]
        if model not in shipped:  # None: a model or config no longer shipped, nothing to compare against
            shipped[model] = shipped_config(model, configs_dir)
        column.append("?" if shipped[model] is None else " ".join(config_overrides(config, shipped[model])) or "-")
    return column


@dataclass
class RunsView:
    """What ``perturbkit runs`` shows: the table, the test scorecards (with ``truth``) and what was skipped or removed."""

    oof: Path
    table: pd.DataFrame
    skipped: list[str]  # damaged runs, one message each
    removed: list[Path] = field(default_factory=list)  # stale staging folders removed (``clean``)
    cards: list = field(default_factory=list)
    truth: Path | None = None
    study: str | None = None

    def records(self) -> list[dict]:
        from perturbkit.scorecard import runs_records

        shown = self.table.drop(columns=HIDDEN)
        return runs_records(shown.astype(object).where(shown.notna(), None), self.cards)  # a missing trial is null

    def render(self, as_json: bool = False) -> str:
        """The text ``perturbkit runs`` prints (``as_json``: the records, for scripts)."""
        return json.dumps(self.records(), indent=2, default=str) if as_json and not self.table.empty else self.text()

    def text(self) -> str:
        lines = [f"removed stale staging folder {path}" for path in self.removed]
        if self.table.empty:
            lines.append(f"no complete runs under {self.oof}" + (f" of study {self.study!r}" if self.study is not None else ""))
            return "\n".join(lines)
        lines.append(self.table.drop(columns=HIDDEN).to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
        if (self.table["blend"] == "yes").any():
            lines.append("blend: yes = taken by `perturbkit blend` by default (best CV of each model and config on its data and "
                         "folds, tuning trials left out)")
        if self.cards:
            from perturbkit.scorecard import runs_table

            lines.append(f"\ntest scores against {self.truth} (all rows; value [interval]):")
            lines.extend(self.cards[0].describe())
            lines.append(runs_table(self.table, self.cards).to_string(index=False))
        return "\n".join(lines)


def runs_view(oof: Path | str, *, data=None, demo_genes: int | None = None, study: str | None = None, per_cell_type: bool = False,
              truth=None, settings=None, clean: bool = False, configs_dir: Path | str = Path("configs"), warn=print) -> RunsView:
    """The stored runs under ``oof`` (newest first) that tell runs apart; ``data`` (a folder or ``demo:NAME``) keeps the
    runs of that world, ``study`` the kept trials of one tuning study, ``truth`` scores each run's test predictions.
    ``warn`` names each damaged run skipped, and their count."""
    oof = Path(oof)
    removed = clean_staging(oof) if clean else []
    runs = list_runs(oof)
    skipped = runs.attrs["damaged"]
    for message in skipped:
        warn(f"skipped damaged run: {message}")
    if skipped:
        warn(f"{len(skipped)} damaged run(s) skipped")
    runs = runs.assign(blend=["yes" if taken else "" for taken in runs.index.isin(default_blend_runs(runs).index)])
    if data is not None:
        from perturbkit.data import load

        runs = runs[runs["data_hash"] == load(data, demo_genes=demo_genes).data_hash].reset_index(drop=True)
    if study is not None:
        from perturbkit.tune import filter_study_runs

        runs = filter_study_runs(runs, study)
    view = RunsView(oof=oof, table=runs, skipped=skipped, removed=removed, study=study)
    if runs.empty:
        return view
    runs.insert(runs.columns.get_loc("trial") + 1, "overrides", _overrides_column(runs["path"], Path(configs_dir)))
    if per_cell_type:
        runs = with_cell_type_scores(runs)
    if truth is not None:
        from perturbkit.data import resolve_truth
        from perturbkit.scorecard import ScoreSettings
        from perturbkit.submit import with_test_scores

        view.truth = resolve_truth(truth, demo_genes=demo_genes)
        runs, view.cards = with_test_scores(runs, view.truth, settings or ScoreSettings(), warn=warn)
    view.table = runs
    return view
