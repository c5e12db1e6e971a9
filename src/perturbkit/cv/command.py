"""``perturbkit cv`` as a function: check, load, cross-validate, store."""

from __future__ import annotations

from pathlib import Path

from perturbkit.config import load_config
from perturbkit.cv import CVResult, run_cv, save_run
from perturbkit.data import load
from perturbkit.io import check_writable
from perturbkit.models import feature_requirements


def cv_and_store(model: str, *, oof: Path, data: str = "demo", demo_genes: int | None = None, layer: str = "sign_log10_pval",
                 config_path: Path | None = None, configs_dir: Path = Path("configs"), overrides=(), cv: dict | None = None,
                 progress: bool = True) -> tuple[CVResult, Path]:
    """``perturbkit cv``: the whole config (``cv`` settings included) validated and the run's folder checked writable before
    data is loaded or anything fitted; then the model cross-validated and its run stored under ``oof``."""
    config = load_config(model, config_path=config_path, configs_dir=configs_dir, overrides=overrides, cv=cv)
    check_writable(oof, "--oof")
    check_writable(oof / config["model"], "--oof")  # the folder the run goes into, not only the root
    dataset = load(data, demo_genes=demo_genes, layer=layer, require_smiles=feature_requirements(config)[0])
    result = run_cv(dataset, config, progress=progress)
    return result, save_run(result, oof)
