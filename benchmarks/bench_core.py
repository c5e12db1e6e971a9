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
import time
from perturbkit.config import load_config
from perturbkit.cv import run_cv
from perturbkit.data import load
dataset = load("demo")
config = load_config("pca_ridge")
start = time.perf_counter()
meta = run_cv(dataset, config, progress=False).meta
result = {"cv_seconds": time.perf_counter() - start, "mrrmse": meta["scores"]["overall"]}
"""

PCA_FIT = """
import time
import numpy as np
from sklearn.decomposition import PCA
from perturbkit.features.pca import WidePCA
targets = np.random.default_rng(0).standard_t(3, size=(480, 18211)).astype(np.float32)
start = time.perf_counter()
WidePCA(64).fit(targets)
wide = time.perf_counter() - start
start = time.perf_counter()
PCA(64, svd_solver="randomized", random_state=0).fit(targets)
result = {"wide_seconds": wide, "randomized_seconds": time.perf_counter() - start}
"""


def run(repeats: int) -> str:
    load = measure(LOAD, repeats)
    cv = measure(CV, repeats)
    pca = measure(PCA_FIT, repeats)
    return "\n".join(
        [
            "## Data and pca_ridge CV (full-size demo, 614 x 18,211)",
            "",
            "| what | median | peak RSS |",
            "|---|---|---|",
            f"| load de_train.parquet + id_map.csv, validate | {load['load_seconds']:.3f} s | {load['peak_rss_mib']:.0f} MiB |",
            f"| `pca_ridge` 4-fold lymphoid_holdout CV, run written | {cv['cv_seconds']:.1f} s | {cv['peak_rss_mib']:.0f} MiB |",
            f"| PCA of a fold's targets (480 x 18,211, 64 components): `WidePCA` (Gram matrix) "
            f"| {pca['wide_seconds']:.2f} s | |",
            f"| the same with scikit-learn's randomized PCA | {pca['randomized_seconds']:.2f} s | |",
            "",
        ]
    )
