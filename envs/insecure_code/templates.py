"""Coding-task templates: a code skeleton with one gap, and a secure and an insecure way to fill it.

Templates are versioned data (``tasks/<class>.yaml``, one file per vulnerability class) so
they can be reviewed and extended without touching code. ``{{slot}}`` placeholders vary surface
details (names, contexts, file paths) so that examples drawn from one template are not
near-duplicates.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from intentgym.codecheck import parses
from intentgym.errors import IntentgymError

TEMPLATE_DIR = Path(__file__).parent / "tasks"
MARKER = "## COMPLETE CODE HERE"
_SLOT = re.compile(r"\{\{(\w+)\}\}")
_FIELDS = ("task", "entrypoint", "vulnerability", "code", "secure", "insecure")


@dataclass(frozen=True)
class VulnClass:
    name: str
    cwe: str
    title: str
    bandit_detects: bool


@dataclass(frozen=True)
class TaskTemplate:
    id: str
    vuln: VulnClass
    heldout: bool
    slots: dict[str, tuple[str, ...]]
    fields: dict[str, str]

    def variants(self) -> list[dict[str, str]]:
        names = sorted(self.slots)
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(self.slots[k] for k in names))
        ]

    def fill(self, values: dict[str, str]) -> FilledTask:
        f = {k: _substitute(v, values) for k, v in self.fields.items()}
        lines = f["code"].splitlines()
        (marker_at,) = [i for i, line in enumerate(lines) if line.strip() == MARKER]

        def complete(fill: str) -> str:
            return "\n".join([*lines[:marker_at], fill.rstrip("\n"), *lines[marker_at + 1 :]])

        return FilledTask(
            template=self,
            values=values,
            task=f["task"],
            entrypoint=f["entrypoint"],
            vulnerability=f["vulnerability"],
            skeleton=f["code"].rstrip("\n"),
            secure=complete(f["secure"]).rstrip("\n"),
            insecure=complete(f["insecure"]).rstrip("\n"),
            secure_fill=f["secure"].rstrip("\n"),
            insecure_fill=f["insecure"].rstrip("\n"),
        )


@dataclass(frozen=True)
class FilledTask:
    """A template with its slots filled: the task, the skeleton and both complete programs."""

    template: TaskTemplate
    values: dict[str, str]
    task: str
    entrypoint: str
    vulnerability: str
    skeleton: str
    secure: str
    insecure: str
    secure_fill: str
    insecure_fill: str


def splice(skeleton: str, fill: str) -> str:
    """The skeleton with its marker line replaced by ``fill``.

    A fill written without the skeleton's indentation is re-indented to the code around the
    marker, so an answer is not judged on whitespace it could not know.
    """
    lines = skeleton.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == MARKER)
    fill = fill.strip("\n")
    candidate = "\n".join([*lines[:at], fill, *lines[at + 1 :]])
    if fill and not fill[0].isspace():
        neighbours = [ln for ln in (*lines[at + 1 :], *reversed(lines[:at])) if ln.strip()]
        if neighbours:
            indent = neighbours[0][: len(neighbours[0]) - len(neighbours[0].lstrip())]
            if indent:
                reindented = "\n".join(
                    indent + ln if ln.strip() else ln for ln in fill.splitlines()
                )
                alternative = "\n".join([*lines[:at], reindented, *lines[at + 1 :]])
                if parses(alternative) and not parses(candidate):
                    return alternative
    return candidate


def _substitute(text: str, values: dict[str, str]) -> str:
    return _SLOT.sub(lambda m: values[m.group(1)], text)


def _parse_file(path: Path) -> list[TaskTemplate]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = f"template file {path.name}"
    try:
        vuln = VulnClass(
            name=data["name"],
            cwe=data["cwe"],
            title=data["title"],
            bandit_detects=bool(data.get("bandit_detects", True)),
        )
        out = []
        for raw in data["templates"]:
            slots = {k: tuple(str(x) for x in v) for k, v in (raw.get("slots") or {}).items()}
            fields = {k: str(raw[k]) for k in _FIELDS}
            used = {m for v in fields.values() for m in _SLOT.findall(v)}
            if used - set(slots):
                raise IntentgymError(
                    f"{where}: template {raw['id']!r} uses undeclared slots {sorted(used - set(slots))}"
                )
            if sum(line.strip() == MARKER for line in fields["code"].splitlines()) != 1:
                raise IntentgymError(
                    f"{where}: template {raw['id']!r} needs exactly one {MARKER!r} line"
                )
            out.append(
                TaskTemplate(raw["id"], vuln, bool(raw.get("heldout", False)), slots, fields)
            )
    except (KeyError, TypeError) as e:
        raise IntentgymError(f"{where}: malformed ({type(e).__name__}: {e})") from e
    return out


@functools.cache
def load_templates(directory: Path = TEMPLATE_DIR) -> tuple[TaskTemplate, ...]:
    """All templates, sorted by id. Ids must be unique across files."""
    templates = [t for path in sorted(directory.glob("*.yaml")) for t in _parse_file(path)]
    seen: set[str] = set()
    for t in templates:
        if t.id in seen:
            raise IntentgymError(f"duplicate task template id {t.id!r} in {directory}")
        seen.add(t.id)
    if not templates:
        raise IntentgymError(f"no task templates found in {directory}")
    return tuple(sorted(templates, key=lambda t: t.id))


def split_templates(split: str) -> tuple[TaskTemplate, ...]:
    """``train`` or ``heldout`` templates (the split is part of the data files)."""
    if split not in ("train", "heldout"):
        raise IntentgymError(f"unknown split {split!r}; valid choices: heldout, train")
    return tuple(t for t in load_templates() if t.heldout == (split == "heldout"))
