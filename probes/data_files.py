"""Probe data shipped with the package (``probes/data``) and user files given by path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from intentgym.errors import IntentgymError, invalid_choice

DATA_DIR = Path(__file__).parent / "data"


def builtin(data_dir: Path = DATA_DIR) -> dict[str, Path]:
    """Built-in files named ``NAME.vN.jsonl`` in probes/data, by name; the newest version wins
    (by number: ``v10`` is newer than ``v2``)."""
    out: dict[str, Path] = {}
    for path in sorted(data_dir.glob("*.jsonl"), key=version_key):
        out[path.name.split(".")[0]] = path
    return out


def version_key(path: Path) -> tuple[str, int, str]:
    """Sort key of a ``NAME.vN.EXT`` file: its name, then N as a number (0 when it has none)."""
    name, _, rest = path.name.partition(".")
    tag = rest.split(".")[0]
    number = tag[1:] if tag.startswith("v") else ""
    return name, int(number) if number.isdigit() else 0, path.name


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL or YAML (a list of mappings) file, with one-line errors for bad input."""
    if not path.is_file():
        raise IntentgymError(f"probe data file {str(path)!r} does not exist")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            rows = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise IntentgymError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise IntentgymError(f"{path} must be a YAML list of mappings")
        return rows
    rows = []
    for lineno, row in read_jsonl(path):
        if not isinstance(row, dict):
            raise IntentgymError(f"{path} line {lineno} is not a JSON object")
        rows.append(row)
    return rows


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file."""
    if not path.is_file():
        raise IntentgymError(f"probe data file {str(path)!r} does not exist")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise IntentgymError(f"malformed JSONL in {path} line {lineno}: {e.msg}") from None
    return rows


def resolve(name_or_path: str, what: str) -> Path:
    """A built-in data file by name, or a user's file by path."""
    files = builtin()
    if name_or_path in files:
        return files[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.suffix in (".jsonl", ".yaml", ".yml") or path.exists():
        return path
    raise invalid_choice(f"{what} (a built-in name or a .jsonl/.yaml path)", name_or_path, files)


def load_questions(name_or_path: str) -> list[dict[str, Any]]:
    """Open questions: ``{id, paraphrases: [...]}`` (or ``question: str``), optional ``domain``."""
    path = resolve(name_or_path, "question file")
    out = []
    for k, row in enumerate(read_rows(path), start=1):
        paraphrases = row.get("paraphrases", row.get("question"))
        if isinstance(paraphrases, str):
            paraphrases = [paraphrases]
        if "id" not in row or not paraphrases or not all(isinstance(p, str) for p in paraphrases):
            raise IntentgymError(
                f"{path} item {k}: needs 'id' and 'paraphrases' (a list of strings) or 'question'"
            )
        out.append(
            {
                "id": str(row["id"]),
                "domain": str(row.get("domain", path.stem)),
                "paraphrases": list(paraphrases),
            }
        )
    if not out:
        raise IntentgymError(f"{path} has no questions")
    return out
