"""Config keys that were measured and not shipped, and keys that were renamed.

A config naming one gets a :class:`ConfigError` that says what happened to it and why; the numbers
behind each retirement are in ``docs/experiments.md``.
"""

from __future__ import annotations

from perturbkit.errors import ConfigError

# (owner, dotted key) -> why it was retired. The owner is a model name, or "blend" for a blend config.
RETIRED: dict[tuple[str, str], str] = {
    ("blend", "per_celltype"): "separate lymphoid / myeloid weight sets were never shown to beat one weight set "
    "(no measurement behind them), and the shipped recipe fits one",


    # transfer_net: the MLP over source profiles with the shared gate ships, as TransferNet()'s defaults
    ("transfer_net", "params.architecture"): "always the MLP over the source profiles: the transformer over source tokens "
                                             "measured worse (0.889 vs 0.873 on nonlinear) at ~10x the time per step",
    ("transfer_net", "params.n_heads"): "the transformer architecture it set was retired (measured worse and ~10x slower)",
    ("transfer_net", "params.n_layers"): "the transformer architecture it set was retired (measured worse and ~10x slower)",
    ("transfer_net", "params.feedforward"): "the transformer architecture it set was retired (measured worse and ~10x slower)",
    ("transfer_net", "params.token_dropout"): "always 0: dropping 30 % of the source tokens measured within 0.001 on "
                                              "four demo variants and worse on fewcells (0.893 vs 0.876)",
    ("transfer_net", "params.n_seeds"): "always one network: the median of 3 seeds measured no gain at 3x the time",
    ("transfer_net", "params.target_space"): "always the values: z-score targets measured worse (0.882 vs 0.873 on nonlinear)",
    ("transfer_net", "params.residual"): "always the profile itself: gated, the residual network measured at the ridge, "
                                         "give or take (fewcells 0.928 vs the shipped 0.861)",
    ("transfer_net", "params.gate"): "always one shared gate: per-type gates measured worse on fewcells and divergent (about "
                                     "one B/Myeloid row held out per fold), no gate worse than the ridge on most variants",
    ("transfer_net", "params.selection"): "always the inner split's rows: selecting on the rare types' rows measured worse "
                                          "than the shipped inner split on all five demo variants",
    ("transfer_net", "params.balance_types"): "never balanced: repeating the rare types' examples measured worse on fewcells "
                                              "(0.940 vs 0.893) and nonlinear",
    ("transfer_net", "params.inner_splits"): "always one inner split: 3 splits measured worse on divergent at every seed, at "
                                             "twice the networks",
}
# (owner or "*" for every model, old dotted key) -> the new dotted key
RENAMED: dict[tuple[str, str], str] = {
    ("*", "features.chemistry"): "features.blocks",  # it also lists transfer_profiles, built from targets, not chemistry
}


def dotted_keys(table: dict, prefix: str = "") -> list[str]:
    """Every key of a nested table, tables included, as ``a.b.c``."""
    keys = []
    for key, value in table.items():
        keys.append(prefix + str(key))
        if isinstance(value, dict):
            keys.extend(dotted_keys(value, f"{prefix}{key}."))
    return keys


def check_retired(owner: str, table: dict, source: str) -> None:
    """Refuse a retired or renamed key of ``table`` (a config of ``owner``), naming it and saying why."""
    for key in dotted_keys(table):
        if (owner, key) in RETIRED:
            raise ConfigError(
                f"{source}: {key} was retired: {RETIRED[owner, key]} (measurements: docs/experiments.md); remove it from the config"
            )
        renamed = RENAMED.get((owner, key)) or RENAMED.get(("*", key))
        if renamed is not None:
            raise ConfigError(f"{source}: {key} was renamed to {renamed}; use {renamed} instead")
