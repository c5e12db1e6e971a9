"""A study's plots through Optuna's matplotlib visualisation, written as PNGs to ``reports/tune/<study>/``."""

from __future__ import annotations

import warnings
from pathlib import Path


def write_study_plots(study, out_dir: Path | str) -> dict[str, Path | str]:
    """history.png, intermediate.png (each fold's running score, pruned trials included) and
    importances.png (fANOVA, seeded); a plot that cannot be drawn yet maps to the reason."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as optuna_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = {name for name in {k for t in complete for k in t.params} if len({repr(t.params.get(name)) for t in complete}) > 1}
    plots = {
        "history.png": (lambda: optuna_plots.plot_optimization_history(study, target_name="CV MRRMSE"), None if complete else "no complete trial"),
        "intermediate.png": (lambda: optuna_plots.plot_intermediate_values(study), None if study.trials else "no trial"),
        "importances.png": (
            lambda: optuna_plots.plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0), target_name="CV MRRMSE"),
            None if len(complete) >= 2 and varied else "needs two complete trials that differ in a parameter",
        ),
    }
    written: dict[str, Path | str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, (draw, missing) in plots.items():
            if missing:
                written[name] = missing
                continue
            axes = draw()
            figure = axes.figure
            figure.set_size_inches(8, 4.5)
            figure.savefig(out_dir / name, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written[name] = out_dir / name
    return written
