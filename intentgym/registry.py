"""One generic registry for pluggable components (reward models, probes, phases).

Modelled on lm-evaluation-harness's registry and inspect_ai's: registering a name twice raises,
entries may be lazy ``"module:attr"`` strings so that importing intentgym never imports heavy
backends, and every instance built through :meth:`Registry.build` remembers the arguments it was
built with (``instance.registry_info``) so runs can log exactly what they used.

External packages add components through a Python entry-point group (for reward models,
``intentgym.reward_models``)::

    [project.entry-points."intentgym.reward_models"]
    my_judge = "my_package.judges:MyJudge"

The group is read only when a name is not found among the built-ins (or when all names are
listed), and a plugin's module is imported only when it is used. Every plugin is also reachable
as ``dist/name`` (its distribution's normalised name), which is how two plugins that chose the
same name are told apart; a plugin never shadows a built-in's bare name.

Without installing anything, a config may also name a component by where it lives, like Hydra's
``_target_``: ``package.module:Class`` (importable) or ``path/to/file.py:Class`` (a file, relative
to the working directory). Such an entry's origin is ``local``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from intentgym.errors import IntentgymError, invalid_choice

log = logging.getLogger(__name__)

T = TypeVar("T")
BUILTIN = "built-in"
LOCAL = "local"


def _import(module: str) -> Any:
    """Import ``module`` by dotted name, or from a ``.py`` file path (relative to the cwd)."""
    if not module.endswith(".py"):
        return importlib.import_module(module)
    import sys
    from pathlib import Path

    path = Path(module).expanduser().resolve()
    if not path.is_file():
        raise ImportError(f"no such file: {path}")
    name = f"intentgym_local_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


@dataclass(frozen=True)
class RegistryInfo:
    """What a registry-built instance was built from: its name, origin and arguments."""

    kind: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: "built-in", or the distribution (pip package) that provides the plugin
    origin: str = BUILTIN

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "origin": self.origin, "kwargs": dict(self.kwargs)}


def _same(lazy: Any, factory: Any) -> bool:
    """True when a lazy ``"module:attr"`` entry names ``factory`` (its module registering it)."""
    if isinstance(factory, str) or not isinstance(lazy, str):
        return False
    return lazy == f"{factory.__module__}:{factory.__qualname__}"


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) or to lazy ``"module:attr"`` strings."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Callable[..., T] | str] = {}
        self._origins: dict[str, str] = {}
        self._ambiguous: dict[str, list[str]] = {}  # bare plugin name -> qualified names
        self._plugins_loaded = entry_point_group is None

    def register(self, name: str, factory: Callable[..., T] | str | None = None) -> Any:
        """Register ``factory`` under ``name``; without ``factory``, return a decorator."""
        if factory is None:

            def decorator(obj: Callable[..., T]) -> Callable[..., T]:
                self.register(name, obj)
                return obj

            return decorator
        if "/" in name:
            raise IntentgymError(f"{self.kind} name {name!r} must not contain '/'")
        existing = self._entries.get(name)
        if existing is not None and existing is not factory and not _same(existing, factory):
            raise IntentgymError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = factory
        self._origins[name] = BUILTIN
        return factory

    def register_lazy(self, entries: dict[str, str]) -> None:
        """Register built-ins by ``"module:attr"`` without importing them (name -> target)."""
        for name, target in entries.items():
            self.register(name, target)

    # -- plugins -------------------------------------------------------------------------------

    def _load_plugins(self) -> None:
        """Read the entry-point group (metadata only: no plugin module is imported here)."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        by_name: dict[str, list[tuple[str, str]]] = {}
        for ep in importlib.metadata.entry_points(group=self.entry_point_group or ""):
            if ":" not in ep.value:
                log.warning(
                    "ignoring %s plugin %r: entry point %r is not 'module:attr'",
                    self.kind,
                    ep.name,
                    ep.value,
                )
                continue
            dist = _dist_name(ep.dist.name) if ep.dist is not None else "unknown"
            qualified = f"{dist}/{ep.name}"
            self._entries[qualified] = ep.value
            self._origins[qualified] = dist
            by_name.setdefault(ep.name, []).append((qualified, ep.value))
        for name, providers in by_name.items():
            if name in self._entries:  # a built-in keeps its name; the plugin stays qualified
                log.warning(
                    "%s plugin %s shadows the built-in %r; use its qualified name",
                    self.kind,
                    providers[0][0],
                    name,
                )
            elif len(providers) > 1:
                self._ambiguous[name] = sorted(q for q, _ in providers)
            else:
                qualified, value = providers[0]
                self._entries[name] = value
                self._origins[name] = self._origins[qualified]

    # -- lookup --------------------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        if name not in self._entries and ":" in name:
            # a component named by location (module:attr or file.py:attr): registered on first use
            self._entries[name], self._origins[name] = name, LOCAL
            return name
        if name not in self._entries:
            self._load_plugins()
        if name in self._ambiguous:
            raise IntentgymError(
                f"{self.kind} {name!r} is provided by several plugins; choose one of: "
                + ", ".join(self._ambiguous[name])
            )
        if name not in self._entries:
            raise invalid_choice(self.kind, name, self.names())
        return name

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``, importing it first if it was registered lazily."""
        name = self._resolve(name)
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr = entry.rpartition(":")
            try:
                entry = getattr(_import(module_name), attr)
            except (ImportError, AttributeError, OSError) as e:
                raise IntentgymError(
                    f"{self.kind} {name!r} ({self._origins[name]}) cannot be loaded from "
                    f"{module_name}:{attr}: {e}"
                ) from e
            self._entries[name] = entry
        return entry

    def get_class(self, name: str, base: type) -> Any:
        """The class registered as ``name``, checked against the extension contract ``base``:
        a subclass of it with a ``config_class`` dataclass (one-line error otherwise)."""
        import dataclasses

        cls: Any = self.get(name)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise IntentgymError(
                f"{self.kind} {name!r} ({getattr(cls, '__qualname__', cls)}) does not derive "
                f"from {base.__module__}.{base.__qualname__}"
            )
        if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
            raise IntentgymError(f"{self.kind} {name!r} declares no config_class dataclass")
        return cls

    def origin(self, name: str) -> str:
        """``"built-in"`` or the distribution that provides ``name``."""
        return self._origins[self._resolve(name)]

    def check_kwargs(self, name: str, kwargs: dict[str, Any]) -> None:
        """Raise a one-line error if ``name``'s factory does not accept these keyword arguments."""
        factory = self.get(name)
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # a builtin without a signature: let the call decide
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        accepted = [
            p.name
            for p in params.values()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        for key in kwargs:
            if key not in accepted:
                valid = ", ".join(sorted(accepted)) or "(none)"
                raise IntentgymError(
                    f"unknown argument {key!r} for {self.kind} {name!r}; valid arguments: {valid}"
                )

    def build(self, name: str, **kwargs: Any) -> T:
        """Construct the component ``name`` and record how it was built on ``registry_info``."""
        self.check_kwargs(name, kwargs)
        instance = self.get(name)(**kwargs)
        # Objects with __slots__ cannot carry it; nothing else depends on it.
        with contextlib.suppress(AttributeError):
            instance.registry_info = RegistryInfo(  # type: ignore[attr-defined]
                self.kind, name, dict(kwargs), self.origin(name)
            )
        return instance

    def names(self) -> list[str]:
        """All names, plugins included (bare where unambiguous, and always ``dist/name``)."""
        self._load_plugins()
        return sorted(self._entries)

    def describe(self, name: str) -> str:
        """The first line of the factory's docstring (imports a lazy entry)."""
        try:
            doc = inspect.getdoc(self.get(name)) or ""
        except IntentgymError as e:
            return f"(cannot be loaded: {e})"
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
