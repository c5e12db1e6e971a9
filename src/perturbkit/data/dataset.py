"""Load and validate de_train (Kaggle parquet or openproblems h5ad) and id_map.csv.

Everything is checked before anything is returned, so a caller that writes only after loading
never writes anything for bad input. Each error names the file and the column or row at fault.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from perturbkit.errors import DataValidationError
from perturbkit.data.hidden import PUBLIC_FILE, TRUTH_FILE, is_demo_world
from perturbkit.data.wide import printable, utf8_bytes
from perturbkit.data.layout import CELL_TYPES, KEY_COLUMNS, OBS_COLUMNS, compounds

DEFAULT_H5AD_LAYER = "sign_log10_pval"
# -log10 of the smallest positive double is 323.3: a value beyond this is no signed -log10 p-value (nor a fold change)
# but a broken file, and one such value dominates every score (a 1e20 gave compound_mean an MRRMSE of 1e16).
MAX_ABS_VALUE = 1e3
ID_MAP_COLUMNS = ("id", "cell_type", "sm_name")
# Where a blend's leaderboard factor gets its public scores (perturbkit.blend.leaderboard).
PUBLIC_ROWS = "public_rows"  # a demo world's public_test.csv rows of its hidden test_truth.parquet
PROBES = "probes"  # Kaggle's public leaderboard, through probes.json


@dataclass(frozen=True)
class Dataset:
    """One competition dataset: training pairs with targets, and the test pairs to predict.

    ``obs`` and ``test`` carry ``cell_type`` and ``sm_name`` as categoricals over the union of
    train and test keys, so encoders fitted on a fold's rows still know every category.
    """

    obs: pd.DataFrame  # cell_type, sm_name, sm_lincs_id, SMILES, control; one row per target row
    targets: np.ndarray  # float32, rows x genes
    genes: tuple[str, ...]
    test: pd.DataFrame  # id, cell_type, sm_name, SMILES
    data_hash: str
    source: str
    layer: str | None = None  # h5ad layer the targets came from
    leaderboard_source: str = PROBES  # PUBLIC_ROWS for a demo world (it holds world.json), else PROBES

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    def keys(self) -> pd.DataFrame:
        return self.obs[list(KEY_COLUMNS)]


def _fail(path: Path, message: str) -> DataValidationError:
    return DataValidationError(f"{path}: {message}")


def _row_label(df: pd.DataFrame, position: int) -> str:
    row = df.iloc[position]
    return f"row {position} ({row['cell_type']!r}, {row['sm_name']!r})"


def _read_train_parquet(path: Path) -> tuple[pd.DataFrame, np.ndarray, tuple[str, ...]]:
    # polars reads an 18,216-column parquet about three times faster than pyarrow's reader
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise _fail(path, f"cannot be read as parquet ({exc})") from exc
    missing = [c for c in OBS_COLUMNS if c not in frame.columns]
    if missing:
        raise _fail(path, f"missing required column(s) {missing}")
    gene_frame = frame.drop(OBS_COLUMNS)
    genes = tuple(gene_frame.columns)
    if not genes:
        raise _fail(path, "has no gene columns after the metadata columns")
    for gene, dtype in zip(genes, gene_frame.dtypes):
        if not dtype.is_numeric():
            raise _fail(path, f"gene column {gene!r} is not numeric (type {dtype})")
    null_counts = gene_frame.null_count().row(0)
    if any(null_counts):
        gene = genes[next(j for j, count in enumerate(null_counts) if count)]
        row = int(gene_frame.get_column(gene).is_null().arg_max())
        raise _fail(path, f"gene column {gene!r} has a missing value at row {row}")
    obs = frame.select(OBS_COLUMNS).to_pandas()
    # row-major, since every consumer slices rows
    targets = np.ascontiguousarray(gene_frame.to_numpy(), dtype=np.float32)
    return obs, targets, genes


def _read_train_h5ad(path: Path, layer: str) -> tuple[pd.DataFrame, np.ndarray, tuple[str, ...]]:
    try:
        import anndata
    except ImportError as exc:
        raise ImportError(f"{path}: reading .h5ad needs anndata: pip install 'perturbkit[h5ad]'") from exc
    try:
        adata = anndata.read_h5ad(path)
    except Exception as exc:  # h5py/anndata raise many types for a truncated or foreign file
        raise _fail(path, f"cannot be read as h5ad ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    missing = [c for c in OBS_COLUMNS if c not in adata.obs.columns]
    if missing:
        raise _fail(path, f"obs is missing required column(s) {missing}")
    if layer not in adata.layers:
        raise _fail(path, f"has no layer {layer!r}; layers: {sorted(adata.layers)}")
    matrix = adata.layers[layer]
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    if not np.issubdtype(matrix.dtype, np.number):
        raise _fail(path, f"layer {layer!r} is not numeric (dtype {matrix.dtype})")
    obs = adata.obs[list(OBS_COLUMNS)].reset_index(drop=True)
    for column in ("cell_type", "sm_name", "sm_lincs_id", "SMILES"):
        obs[column] = obs[column].astype(str)
    return obs, matrix.astype(np.float32), tuple(map(str, adata.var_names))


def _validate_train(path: Path, obs: pd.DataFrame, targets: np.ndarray, genes: tuple[str, ...]) -> None:
    if len(obs) == 0:
        raise _fail(path, "has no training rows")
    if len(set(genes)) != len(genes):
        duplicated = pd.Index(genes)[pd.Index(genes).duplicated()].unique().tolist()
        raise _fail(path, f"duplicate gene column(s) {duplicated[:5]}")
    for column in KEY_COLUMNS:
        if obs[column].isna().any():
            position = int(np.flatnonzero(obs[column].isna().to_numpy())[0])
            raise _fail(path, f"column {column!r} is empty at row {position}")
    unknown = ~obs["cell_type"].isin(CELL_TYPES)
    if unknown.any():
        position = int(np.flatnonzero(unknown.to_numpy())[0])
        raise _fail(
            path,
            f"unknown cell type {obs['cell_type'].iloc[position]!r} at row {position}; known: {list(CELL_TYPES)}",
        )
    duplicated = obs.duplicated(list(KEY_COLUMNS), keep="first").to_numpy()
    if duplicated.any():
        position = int(np.flatnonzero(duplicated)[0])
        raise _fail(path, f"duplicate (cell_type, sm_name) pair at {_row_label(obs, position)}")
    finite = np.isfinite(targets)
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        raise _fail(
            path, f"gene column {genes[col]!r} has a non-finite value ({targets[row, col]}) at {_row_label(obs, row)}"
        )
    huge = np.abs(targets) > MAX_ABS_VALUE
    if huge.any():
        row, col = map(int, np.argwhere(huge)[0])
        raise _fail(path, f"gene column {genes[col]!r} holds {targets[row, col]:g} at {_row_label(obs, row)}: "
                          f"beyond ±{MAX_ABS_VALUE:g}, no signed -log10 p-value can be that large")


def _read_id_map(path: Path) -> pd.DataFrame:
    try:
        table = pacsv.read_csv(pa.BufferReader(utf8_bytes(path)))
    except (OSError, pa.ArrowException) as exc:
        raise _fail(path, f"cannot be read as CSV ({printable(str(exc))})") from exc
    missing = [c for c in ID_MAP_COLUMNS if c not in table.column_names]
    if missing:
        raise _fail(path, f"missing required column(s) {missing}")
    test = table.select(list(ID_MAP_COLUMNS)).to_pandas()
    if not pd.api.types.is_integer_dtype(test["id"]):
        raise _fail(path, "column 'id' must hold integers")
    duplicated = test["id"].duplicated().to_numpy()
    if duplicated.any():
        raise _fail(path, f"duplicate id {int(test['id'].iloc[np.flatnonzero(duplicated)[0]])}")
    unknown = ~test["cell_type"].isin(CELL_TYPES)
    if unknown.any():
        position = int(np.flatnonzero(unknown.to_numpy())[0])
        raise _fail(path, f"unknown cell type {test['cell_type'].iloc[position]!r} at row {position} (id {test['id'].iloc[position]})")
    duplicated = test.duplicated(list(KEY_COLUMNS)).to_numpy()
    if duplicated.any():
        position = int(np.flatnonzero(duplicated)[0])
        raise _fail(path, f"duplicate (cell_type, sm_name) pair at row {position} (id {test['id'].iloc[position]})")
    return test


def _attach_test_smiles(id_map_path: Path, test: pd.DataFrame, obs: pd.DataFrame) -> pd.DataFrame:
    """Test compounds take their SMILES from training rows, else from the shipped compound table."""
    known = obs.drop_duplicates("sm_name").set_index("sm_name")["SMILES"]
    shipped = compounds().drop_duplicates("sm_name").set_index("sm_name")["SMILES"]
    smiles = test["sm_name"].map(known).fillna(test["sm_name"].map(shipped))
    if smiles.isna().any():
        position = int(np.flatnonzero(smiles.isna().to_numpy())[0])
        raise _fail(
            id_map_path,
            f"test compound {test['sm_name'].iloc[position]!r} (row {position}, id {test['id'].iloc[position]}) "
            "has no SMILES in the training data nor in perturbkit's compound table",
        )
    return test.assign(SMILES=smiles.to_numpy())


def _check_no_overlap(id_map_path: Path, test: pd.DataFrame, obs: pd.DataFrame) -> None:
    train_pairs = pd.MultiIndex.from_frame(obs[list(KEY_COLUMNS)])
    test_pairs = pd.MultiIndex.from_frame(test[list(KEY_COLUMNS)])
    overlap = np.flatnonzero(test_pairs.isin(train_pairs))
    if overlap.size:
        position = int(overlap[0])
        raise _fail(
            id_map_path,
            f"row {position} (id {test['id'].iloc[position]}) pair ({test['cell_type'].iloc[position]!r}, "
            f"{test['sm_name'].iloc[position]!r}) is also in the training data",
        )


def read_template(path: Path | str) -> tuple[np.ndarray, list[str]]:
    """ids and gene columns (in order) of Kaggle's sample_submission.csv; an unreadable or malformed one is named."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "submission template is not a file")
    try:
        # one thread: a process that exits right after a threaded parse (this error) may abort in pyarrow's pool
        table = pacsv.read_csv(pa.BufferReader(utf8_bytes(path)), read_options=pacsv.ReadOptions(use_threads=False))
    except (OSError, pa.ArrowException) as exc:  # a truncated file: "Expected 301 columns, got 7"
        raise _fail(path, f"submission template cannot be read as CSV ({printable(str(exc))})") from None
    header = table.column_names
    if not header or header[0] != "id":
        raise _fail(path, "the first column of a submission template must be 'id'")
    ids = table.column("id")
    if not pa.types.is_integer(ids.type) or ids.null_count:
        raise _fail(path, f"submission template's 'id' column must hold whole numbers (it reads as {ids.type})")
    return ids.to_numpy(), header[1:]


def _check_template(path: Path, genes: tuple[str, ...], test: pd.DataFrame) -> None:
    """The template has the training data's genes in their order and exactly id_map's ids: a submission written in its
    layout then holds every test row."""
    template_ids, template_genes = read_template(path)
    if tuple(template_genes) != genes:
        missing = sorted(set(template_genes) - set(genes))
        extra = sorted(set(genes) - set(template_genes))
        detail = f"missing from training: {missing[:5]}, not in template: {extra[:5]}" if missing or extra else "same genes, different order"
        raise _fail(path, f"gene columns differ from the training data's ({detail})")
    wanted, given = set(test["id"].tolist()), set(template_ids.tolist())
    if len(template_ids) != len(given) or wanted != given:
        duplicated = pd.Index(template_ids)[pd.Index(template_ids).duplicated()].unique().tolist()
        raise _fail(path, f"{len(template_ids)} rows but id_map.csv has {len(test)} test ids: ids missing from the template "
                          f"{sorted(wanted - given)[:5]}, not in id_map.csv {sorted(given - wanted)[:5]}, duplicated {duplicated[:5]}")


def check_smiles(source: Path | str, obs: pd.DataFrame, test: pd.DataFrame, *, require: bool) -> None:
    """Warn about SMILES RDKit cannot parse; raise instead when the configured features need them."""
    try:
        from perturbkit.chem import invalid_smiles
    except ImportError as exc:
        if require:
            raise ImportError(f"{source}: the configured chemistry features need RDKit: pip install rdkit") from exc
        return  # without RDKit no chemistry feature is computed, so an unparseable SMILES cannot matter

    smiles = pd.concat([obs[["sm_name", "SMILES"]], test[["sm_name", "SMILES"]]]).drop_duplicates("sm_name")
    text = smiles["SMILES"].fillna("").astype(str)  # an empty cell reads as None or NaN: named like any other bad SMILES
    bad = set(invalid_smiles(text.tolist()))
    if not bad:
        return
    names = smiles.loc[text.isin(bad).to_numpy(), "sm_name"].astype(str).tolist()
    message = f"{source}: column 'SMILES' is empty or cannot be parsed by RDKit for compound(s) {names}"
    if require:
        raise DataValidationError(message + "; the configured features need SMILES")
    warnings.warn(message + "; chemistry features will be zero for them", stacklevel=2)


def content_hash(obs: pd.DataFrame, targets: np.ndarray, genes: tuple[str, ...]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(obs[list(KEY_COLUMNS)].to_csv(index=False).encode())
    digest.update("\n".join(genes).encode())
    digest.update(memoryview(np.ascontiguousarray(targets, dtype=np.float32)))
    return digest.hexdigest()


def find_train_file(directory: Path) -> Path:
    for name in ("de_train.parquet", "de_train.h5ad"):
        if (directory / name).is_file():
            return directory / name
    raise DataValidationError(f"{directory}: no de_train.parquet or de_train.h5ad (the Kaggle download layout)")


def load_dataset(
    directory: Path | str,
    *,
    layer: str = DEFAULT_H5AD_LAYER,
    require_smiles: bool = False,
) -> Dataset:
    """Load and validate ``de_train.parquet|h5ad`` + ``id_map.csv`` (+ ``sample_submission.csv`` if present)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataValidationError(f"{directory}: data directory does not exist")
    train_path = find_train_file(directory)
    if train_path.suffix == ".h5ad":
        obs, targets, genes = _read_train_h5ad(train_path, layer)
    else:
        obs, targets, genes = _read_train_parquet(train_path)
        layer = None
    _validate_train(train_path, obs, targets, genes)

    id_map_path = directory / "id_map.csv"
    if not id_map_path.is_file():
        raise DataValidationError(f"{id_map_path}: file not found (needed to know the test pairs)")
    test = _read_id_map(id_map_path)
    _check_no_overlap(id_map_path, test, obs)
    test = _attach_test_smiles(id_map_path, test, obs)
    template = directory / "sample_submission.csv"
    if template.exists():
        _check_template(template, genes, test)
    check_smiles(train_path, obs, test, require=require_smiles)
    leaderboard_source = _leaderboard_source(directory)

    obs["control"] = obs["control"].astype(bool)
    for column in KEY_COLUMNS:
        categories = pd.Index(pd.concat([obs[column], test[column]]).unique()).sort_values()
        obs[column] = pd.Categorical(obs[column], categories=categories)
        test[column] = pd.Categorical(test[column], categories=categories)
    return Dataset(
        obs=obs,
        targets=targets,
        genes=genes,
        test=test.reset_index(drop=True),
        data_hash=content_hash(obs, targets, genes),
        source=str(directory),
        layer=layer,
        leaderboard_source=leaderboard_source,
    )


def _leaderboard_source(directory: Path) -> str:
    """PUBLIC_ROWS for a folder that declares itself a demo world (its hidden files must then be there), else PROBES."""
    if not is_demo_world(directory):
        return PROBES
    for name in (TRUTH_FILE, PUBLIC_FILE):
        if not (directory / name).is_file():
            raise _fail(directory / name, "file not found: a demo world (it holds world.json) keeps its hidden test here")
    return PUBLIC_ROWS
