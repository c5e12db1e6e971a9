"""One registry type for every extension point: CV schemes, blend methods, feature blocks (and models)."""

from __future__ import annotations

from collections.abc import Callable

from perturbkit.errors import ConfigError


class Registry:
    """Named components with a one-line help each; an unknown name lists the known ones."""

    def __init__(self, kind: str, error: type[Exception] = ConfigError):
        self.kind = kind
        self.error = error
        self._items: dict[str, object] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable:
        def decorator(component):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name], self._help[name] = component, help
            return component

        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str):
        try:
            return self._items[name]
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}; known: {self.names()}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def help(self) -> dict[str, str]:
        return dict(self._help)
