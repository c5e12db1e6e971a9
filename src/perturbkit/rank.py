"""Drug prioritisation: rank the test compounds by a gene's predicted change in one cell type.

Targets are signed -log10 p-values, so the most negative prediction is the strongest predicted
down-regulation. Predictions come from a blend (its submission CSV, with the members' test
predictions for the spread) or from stored runs (their mean, with their spread). Only the
test pairs (compound x B or Myeloid cells) have predictions.
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv

from perturbkit.cv.store import Run, load_runs
from perturbkit.errors import PerturbkitError


class RankError(PerturbkitError, ValueError):
    pass


def _check_gene(names, gene: str, where) -> None:
    if gene not in names:
        by_case = [name for name in names if name.casefold() == gene.casefold()]
        close = by_case or difflib.get_close_matches(gene, names, n=3)
        raise RankError(f"{where}: no predictions for gene {gene!r}" + (f"; did you mean {close}?" if close else ""))


def _gene_column(path: Path, gene: str) -> pd.Series:
    """One gene's predictions by id from a submission CSV."""
    _check_gene(pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows_after_names=10**9)).column_names, gene, path)
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=["id", gene]))
    return pd.Series(table.column(gene).to_numpy(), index=table.column("id").to_numpy(), dtype=np.float64)


def _run_gene(run: Run, gene: str) -> pd.Series:
    """One gene's test predictions by id from a verified run."""
    _check_gene(run.genes, gene, run.path)
    return pd.Series(run.test[:, run.genes.index(gene)], index=run.test_ids, dtype=np.float64)


def _id_map(data_dir: Path) -> pd.DataFrame:
    path = Path(data_dir) / "id_map.csv"
    if not path.is_file():
        raise RankError(f"{path}: file not found (pass --data with the directory the runs were fitted on)")
    return pd.read_csv(path, usecols=["id", "cell_type", "sm_name"])


def rank_compounds(
    *,
    gene: str,
    cell_type: str,
    data_dir: Path | str | None = None,
    blend: Path | str | None = None,
    runs=None,
    top: int | None = 20,
    up: bool = False,
    warn=warnings.warn,
) -> tuple[pd.DataFrame, str]:
    """Compounds ranked by predicted down- (or up-) regulation of ``gene`` in ``cell_type``.

    Give ``blend`` (a blend's JSON) or ``runs`` (run directories). Returns the table (rank,
    sm_name, id, predicted, spread = std over the models, min, max, models) and a title line.
    Runs (a blend's members too) are read through :func:`perturbkit.cv.store.load_runs`: a damaged one is left out,
    ``warn`` naming it; runs of different data are refused.
    """
    if (blend is None) == (not runs):
        raise RankError("rank needs a blend JSON or one or more run directories")
    predicted, columns, source, stored_data = _blend_columns(blend, gene, warn) if blend is not None else _run_columns(runs, gene, warn)
    data_dir = data_dir or stored_data
    if data_dir is None:
        raise RankError("cannot tell which data the predictions are for; pass --data")
    id_map = _id_map(Path(data_dir))
    known = sorted(id_map["cell_type"].unique())
    if cell_type not in known:
        raise RankError(f"no test predictions for cell type {cell_type!r}; the test pairs are in {known}")
    pairs = id_map[id_map["cell_type"] == cell_type]
    models = pd.DataFrame({name: col.reindex(pairs["id"]).to_numpy() for name, col in columns.items()}, index=pairs.index)
    if models.isna().any().any():
        raise RankError(f"predictions do not cover every test id of {data_dir}/id_map.csv; pass the matching --data")
    values = predicted.reindex(pairs["id"]).to_numpy() if predicted is not None else models.mean(axis=1).to_numpy()
    table = _ranked(pairs, values, models, up=up, top=top)
    direction = "up" if up else "down"
    title = f"{len(pairs)} compounds ranked by predicted {direction}-regulation of {gene} in {cell_type} ({source}); spread = std over models"
    if blend is not None:
        table, note = _marked_outside(table, blend)
        title += f"\n{note}" if note else ""
    return table, title


def _blend_columns(blend: Path | str, gene: str, warn):
    """The blend's own prediction of ``gene`` (its CSV), its used members' (by name), a source line and its data folder."""
    from perturbkit.blend.record import read_blend_record

    blend = Path(blend)
    record = read_blend_record(blend)
    csv = Path(record.files.get("csv", blend.with_suffix(".csv")))
    if not csv.is_file():
        csv = blend.with_suffix(".csv")
    predicted = _gene_column(csv, gene)
    # the spread is over the members with weight > 0 in some cell type
    used = record.used_members()
    runs = {run.path: run for run in load_runs([member.path for member in used], warn=warn)}
    columns = {member.name: _run_gene(runs[Path(member.path)], gene) for member in used if Path(member.path) in runs}
    source = f"blend {blend.name}, {len(columns)} of its {len(record.members)} members with weight > 0"
    return predicted, columns, source, record.details.get("data_source")


def _run_columns(runs, gene: str, warn):
    """No single prediction (the runs' mean is used), each run's prediction of ``gene``, a source line and their data folder."""
    columns = {}
    loaded = load_runs(runs, warn=warn)
    for run in loaded:
        label = run.meta["model"]
        columns[label if label not in columns else f"{label}:{run.path.name}"] = _run_gene(run, gene)
    if not columns:
        raise RankError("no run left to rank with: every run was damaged (named above)")
    return None, columns, f"mean of {len(columns)} run(s)", loaded[0].meta["data_source"]


def _marked_outside(table: pd.DataFrame, blend: Path | str) -> tuple[pd.DataFrame, str | None]:
    """``table`` with an ``outside`` column and a note line, when the blend predicts outside its members' range.

    A weighted mean of the members (weights >= 0, summing to 1) lies within their range: what leaves it is the
    blend's scale (or its clip to each gene's training range).
    """
    from perturbkit.blend.record import read_blend_record
    from perturbkit.report.scales import scale_parts

    tolerance = 1e-5 * (1 + table[["min", "max"]].abs().max(axis=1))  # the CSV's and the runs' float32 roundings
    above, below = table["predicted"] > table["max"] + tolerance, table["predicted"] < table["min"] - tolerance
    if not (above | below).any():
        return table, None
    record = read_blend_record(blend)
    part = scale_parts(record)
    why = (f"the blend multiplies its weighted mean of the members by its scale {part.formula()}" if part.applied != 1
           else "the blend clips each gene to its training range")
    table = table.assign(outside=np.where(above, "above max", np.where(below, "below min", "")))
    return table, (f"note: {int((above | below).sum())} of the {len(table)} predictions shown lie outside the members' range "
                   f"(min..max; column outside): {why} (perturbkit report shows where each factor comes from)")


def _ranked(pairs: pd.DataFrame, values: np.ndarray, models: pd.DataFrame, *, up: bool, top: int | None) -> pd.DataFrame:
    """The compounds sorted by predicted value (down-regulation first unless ``up``), with the spread over models."""
    table = pd.DataFrame(
        {
            "sm_name": pairs["sm_name"].to_numpy(),
            "id": pairs["id"].to_numpy(),
            "predicted": values,
            "spread": models.std(axis=1, ddof=0).to_numpy(),
            "min": models.min(axis=1).to_numpy(),
            "max": models.max(axis=1).to_numpy(),
            "models": models.shape[1],
        }
    )
    table = table.sort_values("predicted", ascending=not up, kind="stable", ignore_index=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    if top is not None:
        if top < 1:
            raise RankError(f"top must be at least 1, got {top}")
        table = table.head(top)
    return table
