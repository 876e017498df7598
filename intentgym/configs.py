"""Typed config helpers: build dataclasses from (Hydra) dicts, failing clearly on typos."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from intentgym.errors import IntentgymError

D = TypeVar("D")


def build_dataclass(cls: type[D], values: Mapping[str, Any], where: str) -> D:
    """``cls(**values)``, but an unknown key is an error listing the valid keys of ``where``."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise IntentgymError(
            f"unknown key {unknown[0]!r} in {where}; valid keys: {', '.join(sorted(names))}"
        )
    return cls(**values)


def field_help(cls: type) -> dict[str, str]:
    """Each field's help text (TRL-style ``metadata={"help": ...}``)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
