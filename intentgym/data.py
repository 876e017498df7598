"""Packaged data files and fixed held-out splits, shared by envs, probes and steering."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from intentgym.errors import IntentgymError, invalid_choice
from intentgym.files import read_jsonl_numbered


def load_data_items(
    package: str, fields: dict[str, type], choices: dict[str, Sequence[str]] | None = None
) -> tuple[dict[str, Any], ...]:
    """Every row of the ``data/*.jsonl`` files packaged with an env (``package``, e.g.
    ``intentgym.envs.feedback``), in file order: each of ``fields`` checked for its type, each
    key of ``choices`` for an allowed value, ``id`` unique."""
    from importlib import resources

    text_fields = [key for key, kind in fields.items() if kind is str]
    items: list[dict[str, Any]] = []
    first_seen: dict[Any, str] = {}
    root = resources.files(package).joinpath("data")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".jsonl"):
            continue
        what = f"{package} data file"
        for lineno, row in read_jsonl_numbered(entry, what, fields, text_fields=text_fields):
            where = f"{what} {str(entry)!r} line {lineno}"
            for key, valid in (choices or {}).items():
                if key not in row:
                    raise IntentgymError(f"{where}: missing field {key!r}")
                if row[key] not in valid:
                    raise invalid_choice(f"{entry.name}:{lineno} {key}", row[key], valid)
            if "id" not in row:
                raise IntentgymError(f"{where}: missing field 'id'")
            try:
                earlier = first_seen.setdefault(row["id"], where)
            except TypeError:  # an id that is a list or an object
                raise IntentgymError(f"{where}: field 'id' must be a string") from None
            if earlier != where:
                raise IntentgymError(f"{where}: duplicate id {row['id']!r} (first in {earlier})")
            items.append(row)
    return tuple(items)


def in_heldout(key: str, share: float) -> bool:
    """A fixed split: ``key`` is held out when its hash falls in the first ``share`` of the range."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share
