"""Config values as TOML text: ``--set`` override literals and the tuned config file (tomllib only reads)."""

from __future__ import annotations

import json
import math
import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_literal(value) -> str:
    """The TOML literal of a config value; ``perturbkit.config.parse_override`` reads it back as the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # always has a '.' or an exponent, so it reads back as a float
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"{value!r}: no TOML literal for {type(value).__name__}")


def dumps(config: dict, header: str = "") -> str:
    """A config dict as a TOML document: top-level values, then one ``[table]`` per nested dict."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]

    def table(prefix: str, node: dict) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in node.items() if isinstance(v, dict)}
        if prefix:
            lines.extend(["", f"[{prefix}]"])
        lines.extend(f"{toml_key(k)} = {toml_literal(v)}" for k, v in scalars.items())
        for key, value in tables.items():
            table(f"{prefix}.{toml_key(key)}" if prefix else toml_key(key), value)

    table("", config)
    return "\n".join(lines).lstrip("\n") + "\n"
