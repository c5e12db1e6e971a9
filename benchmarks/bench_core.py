"""Loading de_train, pca_ridge CV and scoring a submission at full scale (614 / 255 x 18,211) on the demo world."""

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

SCORE = """
import tempfile, time
from pathlib import Path
import numpy as np
from perturbkit.data import resolve_data_dir
from perturbkit.metrics import ROWWISE_METRICS, rowwise_discrimination, rowwise_top_k
from perturbkit.submit import read_truth, read_truth_layers, score_against
from perturbkit.submit.write import write_submission_csv
truth_path = resolve_data_dir("demo") / "test_truth.parquet"
keys, genes, values = read_truth(truth_path)
prediction = 0.5 * values + np.random.default_rng(0).normal(size=values.shape).astype(np.float32)
with tempfile.TemporaryDirectory() as tmp:
    path = write_submission_csv(Path(tmp) / "s.csv", keys["id"], genes, prediction)
    start = time.perf_counter()
    truth = read_truth_layers(truth_path)
    read = time.perf_counter() - start
    start = time.perf_counter()
    score_against(truth, path)
    total = time.perf_counter() - start
parts = {}
for name, metric in [*ROWWISE_METRICS.items(), ("top_k", rowwise_top_k)]:
    start = time.perf_counter()
    metric(values, prediction)
    parts[name] = time.perf_counter() - start
start = time.perf_counter()
rowwise_discrimination(values, prediction, keys["cell_type"])
parts["discrimination"] = time.perf_counter() - start
result = {"truth_seconds": read, "score_seconds": total, **{f"{k}_seconds": v for k, v in parts.items()}}
"""


def run(repeats: int) -> str:
    load = measure(LOAD, repeats)
    cv = measure(CV, repeats)
    pca = measure(PCA_FIT, repeats)
    score = measure(SCORE, repeats)
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
            f"| read test_truth.parquet (255 x 18,211) | {score['truth_seconds']:.2f} s | |",
            f"| `perturbkit score`'s work: read the CSV, every score on both layers, DE metrics, 1,000 bootstrap resamples "
            f"| {score['score_seconds']:.2f} s | {score['peak_rss_mib']:.0f} MiB |",
            "| of which, per metric on 255 x 18,211: "
            + ", ".join(f"{name} {score[name + '_seconds']:.2f} s" for name in ("mrrmse", "mae", "pearson", "spearman", "cosine", "top_k", "discrimination"))
            + " | | |",
            "",
        ]
    )
