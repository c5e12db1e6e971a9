"""Loading de_train and pca_ridge CV at full scale (614 x 18,211) on the demo world."""

from __future__ import annotations

from common import measure

LOAD = """
import time
from perturbkit.data import load, resolve_data_dir
directory = resolve_data_dir("demo")
start = time.perf_counter()
dataset = load(directory)
result = {"load_seconds": time.perf_counter() - start}
"""

CV = """
import tempfile, time
from perturbkit.config import load_config
from perturbkit.cv import run_cv
from perturbkit.data import load
dataset = load("demo")
config = load_config("pca_ridge")
start = time.perf_counter()
with tempfile.TemporaryDirectory() as root:
    meta = run_cv(dataset, config, oof_root=root, progress=False).meta
result = {"cv_seconds": time.perf_counter() - start, "mrrmse": meta["scores"]["overall"]}
"""


def run(repeats: int) -> str:
    load = measure(LOAD, repeats)
    cv = measure(CV, repeats)
    return "\n".join(
        [
            "## Data and pca_ridge CV (full-size demo, 614 x 18,211)",
            "",
            "| what | median | peak RSS |",
            "|---|---|---|",
            f"| load de_train.parquet + id_map.csv, validate | {load['load_seconds']:.3f} s | {load['peak_rss_mib']:.0f} MiB |",
            f"| `pca_ridge` 4-fold lymphoid_holdout CV, run written | {cv['cv_seconds']:.1f} s | {cv['peak_rss_mib']:.0f} MiB |",
            "",
        ]
    )
