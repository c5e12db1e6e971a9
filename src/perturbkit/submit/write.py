"""Write submissions: Kaggle's CSV (checked against sample_submission.csv) and openproblems' prediction.h5ad.

Each is written to a staging file beside it and renamed into place (:func:`perturbkit.io.atomic_file`),
so a reader sees the old file or the new one, never half of one; the h5ad only after checking that the
disk can hold it. Reading back with ``read_submission`` is the caller's step (``write_blend``, the kernel pipeline).
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from perturbkit.data.dataset import read_template
from perturbkit.data.wide import wide_table
from perturbkit.errors import DataValidationError
from perturbkit.io import OutputError, atomic_file

H5AD_LAYER = "prediction"


def _check_matrix(ids, genes, matrix) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.shape != (len(ids), len(genes)):
        raise DataValidationError(f"predictions of shape {matrix.shape} for {len(ids)} ids x {len(genes)} genes")
    if len(set(genes)) != len(genes):
        raise DataValidationError("duplicate gene names in the predictions")
    if pd.Index(ids).has_duplicates:
        raise DataValidationError(f"duplicate id {pd.Index(ids)[pd.Index(ids).duplicated()][0]} in the predictions")
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(f"non-finite prediction for id {ids[row]}, gene {genes[col]!r}")
    return matrix


def write_submission_csv(path: Path | str, ids, genes, matrix, *, template: Path | str | None = None) -> Path:
    """Kaggle's format: ``id`` then one column per gene; in the template's row and column order when given."""
    path = Path(path)
    ids = np.asarray(ids)
    genes = list(genes)
    matrix = _check_matrix(ids, genes, matrix)
    if template is not None:
        template_ids, template_genes = read_template(template)
        missing, extra = sorted(set(template_genes) - set(genes)), sorted(set(genes) - set(template_genes))
        if missing or extra:
            raise DataValidationError(f"{template}: gene columns differ from the predictions': missing {missing[:5]}, extra {extra[:5]}")
        missing_ids = sorted(set(template_ids.tolist()) - set(ids.tolist()))
        extra_ids = sorted(set(ids.tolist()) - set(template_ids.tolist()))
        if missing_ids or extra_ids:
            raise DataValidationError(f"{template}: ids differ from the predictions': missing {missing_ids[:5]}, extra {extra_ids[:5]}")
        rows = pd.Index(ids).get_indexer(template_ids)
        columns = pd.Index(genes).get_indexer(template_genes)
        ids, genes, matrix = template_ids, list(template_genes), matrix[np.ix_(rows, columns)]
    table = wide_table(pd.DataFrame({"id": np.asarray(ids)}), genes, matrix)
    names = ["id", *genes]
    if any(any(ch in name for ch in ',"\r\n') for name in names):
        raise DataValidationError("a gene name holds a comma, quote or line break; it cannot be a CSV header unquoted")
    with atomic_file(path) as tmp, pa.OSFile(str(tmp), "wb") as sink:  # an unquoted header, as in Kaggle's sample_submission.csv
        sink.write((",".join(names) + "\n").encode())
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return path


def write_prediction_h5ad(path: Path | str, ids, genes, matrix, *, dataset_id: str, method_id: str) -> Path:
    """openproblems' prediction format: ``layers['prediction']``, obs_names = ids (str), var_names = genes."""
    try:
        import anndata
    except ImportError as exc:
        raise DataValidationError("writing prediction.h5ad needs anndata: pip install 'perturbkit[h5ad]'") from exc
    path = Path(path)
    ids = np.asarray(ids)
    matrix = _check_matrix(ids, list(genes), matrix)
    adata = anndata.AnnData(
        obs=pd.DataFrame(index=pd.Index([str(i) for i in ids], name=None)),
        var=pd.DataFrame(index=pd.Index(list(map(str, genes)), name=None)),
        layers={H5AD_LAYER: matrix},
        uns={"dataset_id": str(dataset_id), "method_id": str(method_id)},
    )
    check_free_space(path.parent, h5ad_size(ids, genes, matrix), path)
    with atomic_file(path) as tmp, _finaliser_reports_dropped_on_failure():
        adata.write_h5ad(tmp)
    return path


def h5ad_size(ids, genes, matrix: np.ndarray) -> int:
    """An upper bound of the h5ad's bytes: the float32 layer, the names, and HDF5's own overhead."""
    names = sum(len(str(i)) + 16 for i in ids) + sum(len(str(g)) + 16 for g in genes)
    return int(1.1 * (matrix.nbytes + names)) + (1 << 20)


def check_free_space(folder: Path, needed: int, target: Path) -> None:
    """Refuse, before a native writer starts, a write the disk cannot hold: HDF5 near a full disk can crash the
    process (a segfault, leaving half a file) instead of raising."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OutputError(f"{target}: no space left on device for it ({free / 1e6:.1f} MB free, "
                          f"{needed / 1e6:.1f} MB needed); nothing of it was written")


@contextlib.contextmanager
def _finaliser_reports_dropped_on_failure():
    """h5py reports a failed write (a full disk) once more from its objects' finalisers, as tracebacks on stderr
    (through sys.excepthook and sys.unraisablehook). When the write raises, its error says it all: those reports
    are dropped. After a good write they are shown as usual."""
    caught, hooks = [], (sys.excepthook, sys.unraisablehook)
    sys.excepthook, sys.unraisablehook = (lambda *report: caught.append((0, report))), (lambda report: caught.append((1, (report,))))
    failed = False
    try:
        yield
    except BaseException as exc:
        failed = True
        traceback.clear_frames(exc.__traceback__)  # the failed write's objects are finalised now, while caught
        gc.collect()
        raise
    finally:
        sys.excepthook, sys.unraisablehook = hooks
        for which, report in caught if not failed else ():
            hooks[which](*report)


def write_json(path: Path | str, record: dict) -> Path:
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=jsonable) + "\n")
    return path


def jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
