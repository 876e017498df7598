"""Safety specifications: a written spec of rule ids per request category (deliberative alignment).

The spec is a YAML file (``reward_models/data/safety_spec.v1.yaml``, ours; any other by path):
``style`` rules and ``categories``, each with ``id``, ``description`` and ``rules`` whose ``kind``
is ``disallowed``, ``allowed`` or ``safe_completion``. The ``spec_sft`` phase reasons over it and
the ``spec_judge`` reward model grades answers by it; both read it through :func:`load_spec`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from intentgym.configs import load_yaml
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.files import check_lengths, value_kind

RULE_KINDS = ("disallowed", "allowed", "safe_completion")


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    text: str


@dataclass(frozen=True)
class Category:
    id: str
    description: str
    rules: tuple[Rule, ...]

    def of_kind(self, kind: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.kind == kind)


@dataclass(frozen=True)
class Spec:
    name: str
    style: tuple[Rule, ...]
    categories: dict[str, Category]

    @property
    def rule_ids(self) -> frozenset[str]:
        ids = {r.id for r in self.style}
        return frozenset(ids | {r.id for c in self.categories.values() for r in c.rules})

    def render(self) -> str:
        """The spec as plain text, for a model's context."""
        lines = [f"Safety specification ({self.name})", "", "General rules:"]
        lines += [f"- {r.id}: {r.text}" for r in self.style]
        for c in self.categories.values():
            lines += ["", f"Category {c.id}: {c.description}"]
            lines += [f"- {r.id} ({r.kind.replace('_', ' ')}): {r.text}" for r in c.rules]
        return "\n".join(lines)


def cited_rules(text: str, spec: Spec) -> list[str]:
    """The spec's rule ids that ``text`` names (e.g. "CYB-1"), in order of first mention."""
    found = re.findall(r"\b[A-Z]{1,4}-\d+\b", text)
    return list(dict.fromkeys(r for r in found if r in spec.rule_ids))


@cache
def _load_cached(path: str | None) -> Spec:
    data, source = load_yaml(
        path, "spec", ("intentgym.reward_models", "data/safety_spec.v1.yaml"), expect=dict
    )
    if not isinstance(data.get("categories"), list):
        raise IntentgymError(f"spec {source} needs 'categories:' (a list) and 'style:' rules")
    first_seen: dict[str, str] = {}

    def rules(rows: Any, where: str) -> tuple[Rule, ...]:
        if rows is not None and not isinstance(rows, list):
            raise IntentgymError(
                f"spec {source}, {where} rules must be a list, got {value_kind(rows)}"
            )
        out = []
        for k, row in enumerate(rows or []):
            if not isinstance(row, dict) or not all(
                isinstance(row.get(key), str) for key in ("id", "text")
            ):
                raise IntentgymError(f"spec {source}, {where} rule {k}: needs 'id' and 'text'")
            kind = row.get("kind", "style")
            if where != "style" and kind not in RULE_KINDS:
                raise invalid_choice(f"spec {source} rule {row['id']} kind", kind, RULE_KINDS)
            check_lengths(row, ["text"], f"spec {source}, {where} rule {k}")
            if row["id"] in first_seen:
                raise IntentgymError(
                    f"spec {source} has duplicate rule ids: {row['id']!r} in {where} "
                    f"(also in {first_seen[row['id']]})"
                )
            first_seen[row["id"]] = where
            out.append(Rule(row["id"], kind, row["text"].strip()))
        return tuple(out)

    style = rules(data.get("style"), "style")
    categories = {}
    for row in data["categories"]:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise IntentgymError(f"spec {source}: every category needs an 'id'")
        if row["id"] in categories:
            raise IntentgymError(f"spec {source} has duplicate category ids: {row['id']!r}")
        categories[row["id"]] = Category(
            row["id"], str(row.get("description", "")).strip(), rules(row.get("rules"), row["id"])
        )
    return Spec(str(data.get("name", source)), style, categories)


def load_spec(path: str | Path | None = None) -> Spec:
    """A safety spec YAML (``None``: the packaged default), validated."""
    return _load_cached(None if path is None else str(path))
