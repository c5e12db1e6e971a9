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
