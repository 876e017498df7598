"""Typed config helpers: build dataclasses from (Hydra) dicts, failing clearly on typos and types."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from intentgym.errors import IntentgymError
from intentgym.files import kind_name, read_yaml, value_kind

D = TypeVar("D")


def build_dataclass(cls: type[D], values: Mapping[str, Any], where: str) -> D:
    """``cls(**values)``, but an unknown key or a value of the wrong type is a one-line error."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise IntentgymError(
            f"unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    checked = {k: _check(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in checked:
            check_range(checked[f.name], f.metadata, f"{where}.{f.name}")
    return cls(**checked)


#: field metadata keys that bound a number: value >= min, > gt, <= max, < lt
BOUNDS = {"min": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
          "max": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}  # fmt: skip


def check_range(value: Any, metadata: Mapping[str, Any], where: str) -> None:
    """A one-line error when a number is outside the bounds its field declares, e.g.
    ``field(default=1.0, metadata={"gt": 0, "help": ...})``; None passes (an unset option)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    for key, (_sign, ok) in BOUNDS.items():
        if key in metadata and not ok(value, metadata[key]):
            bounds = ", ".join(f"{BOUNDS[k][0]} {metadata[k]}" for k in BOUNDS if k in metadata)
            raise IntentgymError(f"{where} must be {bounds}, got {value!r}")


def _check(value: Any, annotation: Any, where: str) -> Any:
    """``value`` if it fits ``annotation`` (ints are accepted as floats), else an error."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _check(value, option, where)
            except IntentgymError:
                continue
        raise _type_error(where, " or ".join(_name(o) for o in options), value)
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is str and isinstance(value, str):
        return value
    if origin is list and isinstance(value, list | tuple):
        return (
            [_check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
            if args
            else list(value)
        )
    if origin is dict and isinstance(value, dict):
        return value
    raise _type_error(where, _name(annotation), value)


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def _type_error(where: str, expected: str, value: Any) -> IntentgymError:
    return IntentgymError(f"{where} must be {expected}, got {value!r}")


def load_yaml(
    path: str | Path | None,
    what: str,
    default: tuple[str, str],
    *,
    expect: type | None = None,
) -> tuple[Any, str]:
    """A YAML file's data and a name for it in errors: ``path``, or when it is None the packaged
    ``default`` = (package, relative path). A missing, undecodable or unparsable file, or (with
    ``expect``) one whose top level is not of that type, is a one-line error naming the file."""
    if path is None:
        package, relative = default
        data = read_yaml(resources.files(package).joinpath(relative), f"the default {what}")
        source = f"the default {what}"
    else:
        file = Path(path).expanduser()
        data, source = read_yaml(file, f"{what} file"), str(file)
    if expect is not None and not isinstance(data, expect):
        shape = "a YAML mapping (key: value lines)" if expect is dict else kind_name(expect)
        raise IntentgymError(
            f"{what} {source} must be {shape} at the top level, got {value_kind(data)}"
        )
    return data, source
