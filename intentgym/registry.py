"""One generic registry for pluggable components (reward models, probes, phases).

Modelled on lm-evaluation-harness's registry and inspect_ai's: registering a name twice raises,
entries may be lazy ``"module:attr"`` strings so that importing intentgym never imports heavy
backends, and every instance built through :meth:`Registry.build` remembers the arguments it was
built with (``instance.registry_info``) so runs can log exactly what they used.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from intentgym.errors import IntentgymError, invalid_choice

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryInfo:
    """What a registry-built instance was built from: its registered name and its arguments."""

    kind: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) or to lazy ``"module:attr"`` strings."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T] | str] = {}

    def register(self, name: str, factory: Callable[..., T] | str | None = None) -> Any:
        """Register ``factory`` under ``name``; without ``factory``, return a decorator."""
        if factory is None:

            def decorator(obj: Callable[..., T]) -> Callable[..., T]:
                self.register(name, obj)
                return obj

            return decorator
        if name in self._entries and self._entries[name] is not factory:
            raise IntentgymError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = factory
        return factory

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``, importing it first if it was registered lazily."""
        if name not in self._entries:
            raise invalid_choice(self.kind, name, self._entries)
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = entry
        return entry

    def build(self, name: str, **kwargs: Any) -> T:
        """Construct the component ``name`` and record how it was built on ``registry_info``."""
        instance = self.get(name)(**kwargs)
        # Objects with __slots__ cannot carry it; nothing else depends on it.
        with contextlib.suppress(AttributeError):
            instance.registry_info = RegistryInfo(self.kind, name, dict(kwargs))  # type: ignore[attr-defined]
        return instance

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
