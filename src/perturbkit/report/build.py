"""``perturbkit report``: PNG plots and an index.html / index.md page for a blend (or plain runs).

From a blend's JSON: MRRMSE per fold and per cell type of each member, the simple average and
the blend (in-sample and nested), the blend weights, the members' residual correlation, the
weight search's progress and the loss curves of neural members (``history`` in their meta).
From runs alone: their per-fold and per-cell-type scores and loss curves.

A report lists the files it wrote in ``report-files.json``; the next report into the same folder
removes those it does not write again (a member's loss curves, say), and nothing else.
"""

from __future__ import annotations

import html
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from perturbkit.cv.store import load_runs
from perturbkit.errors import PerturbkitError
from perturbkit.io import atomic_file
from perturbkit.labels import member_labels
from perturbkit.report.scales import scale_lines


OWNED_FILES = "report-files.json"  # the files the last report into a folder wrote


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class ReportError(PerturbkitError, ValueError):
    pass


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    # staged and renamed: a full disk is a named error and never leaves a truncated PNG
    try:
        with atomic_file(path) as staging:
            fig.savefig(staging, dpi=110, format=path.suffix.lstrip("."))
    finally:
        _pyplot().close(fig)
    return path


def _write_text(path: Path, text: str) -> None:
    with atomic_file(path) as staging:
        staging.write_text(text)


def _text_width(labels, fontsize: float = 8.0) -> float:
    """Inches the longest of ``labels`` takes at ``fontsize`` (an average glyph is ~0.6 em wide)."""
    return max((len(str(label)) for label in labels), default=0) * fontsize * 0.6 / 72


# Figures use matplotlib's constrained layout, sized from the number of members and the length of their labels,
# so that nothing overlaps or is cut at any member count.
def plot_grouped_bars(table: pd.DataFrame, path: Path, *, title: str, xlabel: str) -> Path:
    """Bars of MRRMSE: one group per row of ``table`` (fold, cell type), one bar per column (model); legend below."""
    plt = _pyplot()
    n_groups, n_series = table.shape
    width_in = min(12.0, max(7.0, 1.5 + n_groups * (0.22 * n_series + 0.5)))  # wider than a page helps no one: thinner bars
    column_width = _text_width(table.columns) + 0.6
    ncol = max(1, min(n_series, int(width_in // column_width)))
    legend_rows = -(-n_series // ncol)
    fig, ax = plt.subplots(figsize=(width_in, 3.8 + 0.22 * legend_rows), layout="constrained")
    width = 0.8 / max(n_series, 1)
    x = np.arange(n_groups)
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(n_series, 2)))
    for i, column in enumerate(table.columns):
        hatch = "//" if column.startswith("tuned blend") else None
        ax.bar(x + (i - (n_series - 1) / 2) * width, table[column].to_numpy(dtype=float), width, label=column,
               color=colors[i], hatch=hatch, edgecolor="black" if hatch else None, linewidth=0.4)
    ax.set_xticks(x, [str(i) for i in table.index])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("MRRMSE (lower is better)")
    values = table.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size:
        low, high = finite.min(), finite.max()
        ax.set_ylim(max(0.0, low - 0.15 * (high - low + 1e-9)), high + 0.05 * (high - low + 1e-9))
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
    return _save(fig, path)


def plot_weights(weights: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of the blend weights, one panel per column of ``weights``."""
    plt = _pyplot()
    panels = weights
    n = len(panels)
    fig, axes = plt.subplots(1, panels.shape[1], sharey=True, squeeze=False, layout="constrained",
                             figsize=(_text_width(panels.index, 9) + 0.6 + 3.4 * panels.shape[1], 0.4 * n + 1.2))
    y = np.arange(n)[::-1]  # the first member on top
    top = max(0.05, float(np.nanmax(panels.to_numpy(dtype=float), initial=0.0)))
    for ax, column in zip(axes[0], panels.columns):
        values = panels[column].to_numpy(dtype=float)
        ax.barh(y, values, color="tab:blue")
        ax.set_xlim(0, top * 1.2)  # room for the value printed right of each bar
        ax.set_xlabel("weight")
        ax.set_title("blend weights (every test row)", fontsize=10)
        for row, value in zip(y, values):
            ax.text(value + 0.01 * top, row, f"{value:.3f}", va="center", fontsize=8)
    axes[0][0].set_yticks(y, list(panels.index), fontsize=9)
    return _save(fig, path)


def plot_correlation(names, matrix, path: Path) -> Path:
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    n = len(names)
    label = _text_width(names, 8)
    cells = 0.55 * n + 0.6
    # Rotated x labels take ~0.7 of their length in height; the colour bar and its label ~1.2 in of width.
    fig, ax = plt.subplots(figsize=(label + cells + 1.4, 0.7 * label + cells + 0.6), layout="constrained")
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(matrix[i, j]) > 0.75 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="correlation of OOF residuals")
    ax.set_title("member residual correlation")
    return _save(fig, path)


def plot_search(search: dict, path: Path) -> Path | None:
    """The weight search's best objective so far, one panel per weight set (their row weights differ, so do their scales)."""
    plt = _pyplot()
    histories = {key: s.get("history") or [] for key, s in search.items()}
    if not any(len(h) > 1 for h in histories.values()):
        return None
    fig, axes = plt.subplots(1, len(histories), squeeze=False, figsize=(1.2 + 4.2 * len(histories), 3.4), layout="constrained")
    for ax, (key, history) in zip(axes[0], histories.items()):
        ax.plot(np.arange(1, len(history) + 1), history)
        ax.set_xlabel("trial / step")
        if len(histories) > 1:  # records written before per-cell-type weight sets were retired hold several
            ax.set_title(f"weight set {key}", fontsize=10)
    axes[0][0].set_ylabel("best so far: mean of row weight × RMSE")
    fig.suptitle("weight search (in-sample objective)")
    return _save(fig, path)


def _histories(meta: dict) -> list[dict]:
    return [fold["history"] for fold in meta.get("folds", []) if isinstance(fold.get("history"), dict)]


def loss_curve_images(metas: dict[str, dict], out_dir: Path) -> list[str]:
    """PNG file names of the neural runs' loss curves: one per run and fold (``cv.artifacts.loss_curve_png``)."""
    from perturbkit.cv.artifacts import loss_curve_png

    names = []
    for name, meta in metas.items():
        for fold, history in enumerate(_histories(meta)):
            file_name = "loss_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) + f"_fold{fold}.png"
            (out_dir / file_name).write_bytes(loss_curve_png(history, title=f"{name}, fold {fold}"))
            names.append(file_name)
    return names


def _html_table(frame: pd.DataFrame, float_format="{:.4f}") -> str:
    return frame.to_html(float_format=lambda v: float_format.format(v), border=0, classes="scores", na_rep="-")


def _md_table(frame: pd.DataFrame, float_format="{:.4f}") -> str:
    frame = frame.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = [float_format.format(v) if isinstance(v, (float, np.floating)) and np.isfinite(v) else ("-" if isinstance(v, float) else str(v)) for v in row]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def _write_pages(out_dir: Path, title: str, sections: list[tuple]) -> None:
    """``sections``: (heading, image file name or list of them or None, table or None, paragraph or list of them or None)."""
    css = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table.scores{border-collapse:collapse}" \
          "table.scores td,table.scores th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}img{max-width:100%}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{css}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    md = [f"# {title}", ""]
    for heading, image, table, text in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        md += [f"## {heading}", ""]
        for paragraph in [text] if isinstance(text, str) else (text or []):
            parts.append(f"<p>{html.escape(paragraph)}</p>")
            md += [paragraph, ""]
        if table is not None:
            parts.append(_html_table(table))
            md += [_md_table(table), ""]
        for one in [image] if isinstance(image, str) else (image or []):
            parts.append(f"<img src='{html.escape(one)}' alt='{html.escape(heading)}'>")
            md += [f"![{heading}]({one})", ""]
    parts.append(f"<p><small>written {time.strftime('%Y-%m-%d %H:%M')} by perturbkit report</small></p></body></html>")
    _write_text(out_dir / "index.html", "\n".join(parts) + "\n")
    _write_text(out_dir / "index.md", "\n".join(md) + "\n")
    images = [one for _, image, _, _ in sections for one in ([image] if isinstance(image, str) else image or [])]
    _remove_stale_files(out_dir, {"index.html", "index.md", *images})


def _remove_stale_files(out_dir: Path, written: set[str]) -> None:
    """Delete what the previous report into ``out_dir`` wrote and this one did not; record this one's files."""
    manifest = out_dir / OWNED_FILES
    try:
        previous = json.loads(manifest.read_text()) if manifest.is_file() else []
    except (UnicodeDecodeError, json.JSONDecodeError):
        previous = []  # an unreadable list owns nothing
    for name in previous if isinstance(previous, list) else []:
        if isinstance(name, str) and name not in written and Path(name).name == name:  # plain names only: never outside out_dir
            (out_dir / name).unlink(missing_ok=True)
    _write_text(manifest, json.dumps(sorted(written), indent=1) + "\n")


LAYER_COLUMNS = ("CV × zeros", "CV 95 % interval", "clipped CV × zeros", "clipped 95 % interval")
CLIPPED_IN_SAMPLE = "clipped in-sample × zeros"  # a blend report's: the tuned blend's weights scored on the rows they were fitted on


def _layer_ratios(meta: dict) -> list:
    """A run's CV MRRMSE over zeros' on the unclipped values and on openproblems' clipped layer (±4), each with
    its bootstrap interval over compounds (runs written before the clipped layer was scored: blanks)."""
    cells = []
    for layer in (meta.get("scores", {}), meta.get("scores", {}).get("clipped") or {}):
        interval = layer.get("relative_to_zeros_interval")
        cells += [layer.get("relative_to_zeros", np.nan), f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "-"]
    return cells


SERIES = {"simple_average": "simple average", "blend": "tuned blend (in-sample)", "blend_unclipped": "tuned blend, unclipped (in-sample)",
          "blend_nested": "tuned blend (nested)"}


def _weighting(metas: dict[str, dict]) -> str:
    """The runs' row weighting in words (runs written before it was recorded: a note saying so)."""
    texts = {m["scores"]["weighting"] for m in metas.values() if "weighting" in m.get("scores", {})}
    if len(texts) == 1:
        return texts.pop()
    return "rows weighted as the runs' scheme weighs them (weights.parquet)"


def build_blend_report(blend_json: Path | str, out_dir: Path | str, *, warn=_to_stderr) -> Path:
    """``out_dir`` with the plots and pages of the blend recorded in ``blend_json``."""
    from perturbkit.blend.record import read_blend_record
    record = read_blend_record(blend_json)  # refuses a record whose files changed since (an interrupted blend)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    details = record.details
    scores = details["scores"]
    names = record.names
    labels = member_labels([(m.model or m.config.get("model"), m.config) for m in record.members])
    label_of = dict(zip(names, labels)) | SERIES
    per_fold = pd.DataFrame(scores["per_fold"]).T.rename(columns=label_of)
    per_fold.index.name = "fold"
    per_cell_type = pd.DataFrame(scores["per_cell_type"]).T.rename(columns=label_of)
    per_cell_type.index.name = "cell type"

    # The weights of every test row (the blend's test predictions are made with these).
    weights = pd.DataFrame({"weight": record.weights.weights}, index=pd.Index(labels, name="member"))
    summary = pd.DataFrame(
        {
            "weight": [*weights["weight"], np.nan, np.nan],
            "in-sample": [scores["members"][n] for n in names] + [scores["simple_average"], scores["in_sample"]],
            "nested": [scores["members"][n] for n in names] + [scores["simple_average"], scores.get("nested") or np.nan],
        },
        index=pd.Index([*labels, "simple average", "tuned blend"], name="model"),
    )
    loaded = {run.path: run for run in load_runs([m.path for m in record.members], warn=warn)}
    metas = {label: loaded[Path(m.path)].meta for label, m in zip(labels, record.members) if Path(m.path) in loaded}
    # The tuned blend's CV is its nested score; it has no bootstrap interval (blends written before a layer's zeros: blanks).
    def blend_ratio(layer: dict, name: str) -> float:
        value = layer.get(f"{name}_relative_to_zeros")
        return np.nan if value is None else value

    clipped = scores.get("clipped") or {}
    layers = pd.DataFrame([*(_layer_ratios(metas.get(label, {})) for label in labels), [np.nan, "-", np.nan, "-"],
                           [blend_ratio(scores, "nested"), "-", blend_ratio(clipped, "nested"), "-"]],
                          index=summary.index, columns=list(LAYER_COLUMNS))
    # Members have no fitted parameters: their in-sample ratio is their CV ratio, as in the in-sample column.
    layers[CLIPPED_IN_SAMPLE] = [*layers["clipped CV × zeros"].iloc[:len(names)], np.nan, blend_ratio(clipped, "in_sample")]
    summary = summary.join(layers)
    summary["run"] = [*(m.run_id or "-" for m in record.members), "-", "-"]
    weighting = _weighting(metas)
    sections = [
        ("Scores", None, summary,
         f"method {record.method}, scheme {details['scheme']}, {scores['rows']} OOF rows, {details['n_genes']} genes. "
         "Members are labelled by model and how their config differs from the model's shipped one; 'run' is the run id. "
         "Members and the simple average have no fitted parameters; the tuned blend's in-sample score is fitted and scored "
         "on the same rows, its nested score fits on K-1 folds and scores the held-out one. Each member's CV is also given as "
         "a ratio to zeros on the unclipped values and on openproblems' clipped layer (±4), with 95 % bootstrap intervals over compounds; "
         f"the tuned blend's on the clipped layer, nested (its CV) and in-sample, without intervals. Every MRRMSE: {weighting}."),
        ("MRRMSE per fold", plot_grouped_bars(per_fold, out_dir / "per_fold.png", title="MRRMSE per fold", xlabel="fold").name, per_fold,
         f"Each fold's MRRMSE weighs its rows as the overall score does: {weighting}. A member's numbers here are the ones "
         "`perturbkit cv` printed for its run."),
        ("MRRMSE per cell type", plot_grouped_bars(per_cell_type, out_dir / "per_cell_type.png", title="MRRMSE per cell type",
                                                  xlabel="cell type").name, per_cell_type, None),
        ("Blend weights", plot_weights(weights, out_dir / "weights.png").name, weights,
         f"clip: {record.clip}. A test row's prediction is the scale times the weighted sum of the members (next section)."),
        ("Scale of the test predictions", None, None, scale_lines(record)),
    ]
    if len(names) > 1:
        correlation = details["correlation"]
        sections.append(("Member residual correlation",
                         plot_correlation([label_of[n] for n in correlation["names"]], correlation["matrix"], out_dir / "correlation.png").name,
                         None, "Correlation of the members' OOF residuals pooled over rows; low correlation is what a blend feeds on."))
    search_png = plot_search(details["search"], out_dir / "search.png")
    if search_png:
        sections.append(("Weight search", search_png.name, None, None))
    loss_images = loss_curve_images(metas, out_dir)
    if loss_images:
        sections.append(("Loss curves of neural runs", loss_images, None, None))
    files = pd.DataFrame({"file": list(record.files.values())}, index=pd.Index(list(record.files), name="kind"))
    sections.append(("Files", None, files, f"data hash {record.data_hash}, folds hash {record.folds_hash}"))
    _write_pages(out_dir, f"{record.method} blend of {len(names)} runs ({Path(blend_json).name})", sections)
    return out_dir


def build_runs_report(run_dirs, out_dir: Path | str, title: str = "Runs", *, warn=_to_stderr) -> Path:
    """Per-fold / per-cell-type scores (from each run's meta) and loss curves, for runs without a blend; ``warn`` names a skipped run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # verified as blend verifies them; damaged ones named and skipped
    runs = [(run.path, run.meta) for run in load_runs(run_dirs, warn=warn)]
    if not runs:
        raise ReportError("no runs to report")

    labels = member_labels([(meta.get("model", run.parent.name), meta.get("config")) for run, meta in runs])
    metas = dict(zip(labels, (meta for _, meta in runs)))

    def table(key: str) -> pd.DataFrame:
        return pd.DataFrame({n: {k: v["mrrmse"] for k, v in m["scores"][key].items()} for n, m in metas.items()})

    per_fold, per_cell_type = table("per_fold"), table("per_cell_type")
    per_fold.index.name, per_cell_type.index.name = "fold", "cell type"
    summary = pd.DataFrame({"MRRMSE": [m["scores"]["overall"] for m in metas.values()],
                            **dict(zip(LAYER_COLUMNS, zip(*(_layer_ratios(m) for m in metas.values())))),
                            "scheme": [m.get("scheme") for m in metas.values()],
                            "run": [run.name for run, _ in runs]}, index=pd.Index(labels, name="model"))
    unweighted = [label for label, m in metas.items() if "weighting" not in m["scores"]]
    per_fold_text = (f"Each fold's MRRMSE weighs its rows as the overall score does, as `perturbkit cv` prints them: {_weighting(metas)}."
                     + (f" Written before per-fold scores were weighted, so unweighted here: {', '.join(unweighted)}." if unweighted else ""))
    sections = [
        ("Scores", None, summary, "CV MRRMSE, and as a ratio to zeros on the unclipped values and on openproblems' clipped "
                                  "layer (±4), with 95 % bootstrap intervals over compounds."),
        ("MRRMSE per fold", plot_grouped_bars(per_fold, out_dir / "per_fold.png", title="MRRMSE per fold", xlabel="fold").name, per_fold,
         per_fold_text),
        ("MRRMSE per cell type", plot_grouped_bars(per_cell_type, out_dir / "per_cell_type.png", title="MRRMSE per cell type",
                                                  xlabel="cell type").name, per_cell_type, None),
    ]
    loss_images = loss_curve_images(metas, out_dir)
    if loss_images:
        sections.append(("Loss curves of neural runs", loss_images, None, None))
    _write_pages(out_dir, title, sections)
    return out_dir
