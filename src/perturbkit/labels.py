"""Short, distinct labels for a blend's members or a set of runs: the model and how its config differs.

A member's label is its model followed by ``key=value`` for each config value that differs from the
model's shipped config (``configs/<model>.toml``; without one, from the first member of that model),
e.g. ``transfer_ridge n_components=64``. Values every member has alike (the CV scheme the recipe
sets, say) tell no member apart and are left out. A key is shortened to its last part unless two
different keys would then read alike. Members whose configs are the same get ``#2``, ``#3``: the
run id belongs in a table, not on an axis.
"""

from __future__ import annotations

import json
from pathlib import Path

from perturbkit.errors import PerturbkitError


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """``{"params": {"alpha": 3}}`` -> ``{"params.alpha": 3}``; lists stay values."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def shipped_config(model: str, configs_dir: Path | str = Path("configs")) -> dict | None:
    """The config ``model`` gets with no overrides, or None when it cannot be built here."""
    from perturbkit.config import load_config, without_tune

    try:
        return without_tune(load_config(model, configs_dir=Path(configs_dir)))
    except PerturbkitError:
        return None


MISSING = object()


def member_labels(members, *, reference=shipped_config) -> list[str]:
    """One label per ``(model, config)`` pair of ``members``, in order (see the module's docstring).

    ``reference(model)`` gives the config a member is compared with (None: the first member of that model's).
    """
    members = [(str(model), flatten(config or {})) for model, config in members]
    references = {}
    for model, config in members:
        if model not in references:
            shipped = reference(model)
            references[model] = flatten(shipped) if shipped is not None else config
    # A value every member has alike tells none apart (the CV scheme the recipe sets, say).
    shared = set() if len(members) < 2 else {key for key in set.intersection(*(set(c) for _, c in members))
                                               if len({_text(c[key]) for _, c in members}) == 1}
    differences = [{key: value for key, value in config.items()
                    if key != "model" and key not in shared and references[model].get(key, MISSING) != value}
                   for model, config in members]
    keys = {key for d in differences for key in d}
    short = {key: key.rsplit(".", 1)[-1] for key in keys}
    clashes = {name for name in short.values() if sum(1 for other in short.values() if other == name) > 1}
    labels = [" ".join([model, *(f"{short[k] if short[k] not in clashes else k}={_text(v)}" for k, v in d.items())])
              for (model, _), d in zip(members, differences)]
    seen: dict[str, int] = {}
    distinct = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        distinct.append(label if labels.count(label) == 1 else f"{label} #{seen[label]}")
    return distinct
