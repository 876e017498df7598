"""Packaged data files and fixed held-out splits, shared by envs, probes and steering."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from intentgym.errors import IntentgymError, invalid_choice


def load_data_items(
    package: str, fields: dict[str, type], choices: dict[str, Sequence[str]] | None = None
) -> tuple[dict[str, Any], ...]:
    """Every row of the ``data/*.jsonl`` files packaged with an env (``package``, e.g.
    ``intentgym.envs.feedback``), in file order: each of ``fields`` checked for its type, each
    key of ``choices`` for an allowed value, ``id`` unique."""
    from importlib import resources

    items: list[dict[str, Any]] = []
    root = resources.files(package).joinpath("data")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".jsonl"):
            continue
        for lineno, line in enumerate(entry.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            for key, kind in fields.items():
                if not isinstance(row.get(key), kind):
                    raise IntentgymError(
                        f"{entry.name}:{lineno}: field {key!r} must be a {kind.__name__}"
                    )
            for key, valid in (choices or {}).items():
                if row[key] not in valid:
                    raise invalid_choice(f"{entry.name}:{lineno} {key}", row[key], valid)
            items.append(row)
    ids = [r["id"] for r in items]
    if len(set(ids)) != len(ids):
        raise IntentgymError(f"duplicate item ids in {package}'s data")
    return tuple(items)


def in_heldout(key: str, share: float) -> bool:
    """A fixed split: ``key`` is held out when its hash falls in the first ``share`` of the range."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share
