"""Probe data shipped with the package (``probes/data``) and user files given by path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intentgym.errors import IntentgymError, invalid_choice
from intentgym.files import check_length, read_jsonl_numbered, read_yaml, value_kind

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
    return [row for _, row in located_rows(path)]


def located_rows(path: Path, what: str = "probe data file") -> list[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of a JSONL or YAML (a list of mappings) file: ``where`` names
    the file and the line (JSONL) or the item (YAML), for errors about the row. Bad bytes, bad
    syntax, a value that is not an object or a mapping: one line naming the file."""
    if path.suffix in (".yaml", ".yml"):
        rows = read_yaml(path, what)
        if not isinstance(rows, list):
            raise IntentgymError(
                f"{what} {str(path)!r} must be a YAML list of mappings, got {value_kind(rows)}"
            )
        out = []
        for k, row in enumerate(rows, start=1):
            where = f"{what} {str(path)!r} item {k}"
            if not isinstance(row, dict):
                raise IntentgymError(
                    f"{where}: expected a mapping, got {value_kind(row)} (the file must be a "
                    "YAML list of mappings)"
                )
            out.append((where, row))
        return out
    return [
        (f"{what} {str(path)!r} line {lineno}", row)
        for lineno, row in read_jsonl_numbered(path, what)
    ]


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """(line number, object) for each non-blank line of a JSONL file."""
    return list(read_jsonl_numbered(path, "probe data file"))


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
    for where, row in located_rows(path, "question file"):
        key = "paraphrases" if "paraphrases" in row else "question"
        paraphrases: Any = row.get(key)
        if isinstance(paraphrases, str):
            paraphrases = [paraphrases]
        problem = _question_problem(row, key, paraphrases)
        if problem:
            raise IntentgymError(
                f"{where}: needs 'id' and 'paraphrases' (a list of strings) or 'question' "
                f"(a string); {problem}"
            )
        for j, text in enumerate(paraphrases):
            check_length(
                text, f"{where}: field {key!r}" + (f"[{j}]" if key == "paraphrases" else "")
            )
        out.append(
            {
                "id": str(row["id"]),
                "domain": str(row.get("domain", path.stem)),
                "paraphrases": list(paraphrases),
            }
        )
    if not out:
        raise IntentgymError(f"question file {str(path)!r} has no questions")
    return out


def _question_problem(row: dict[str, Any], key: str, paraphrases: Any) -> str:
    """What is wrong with a question row ('' when nothing is)."""
    if "id" not in row:
        return "field 'id' is missing"
    if isinstance(row["id"], list | dict) or row["id"] is None:
        return f"field 'id' is {value_kind(row['id'])}"
    if key not in row:
        return "both are missing"
    if not isinstance(paraphrases, list):
        return f"field {key!r} is {value_kind(paraphrases)}"
    if not paraphrases:
        return f"field {key!r} is empty"
    for j, text in enumerate(paraphrases):
        if not isinstance(text, str):
            return f"field {key!r}[{j}] is {value_kind(text)}"
    return ""
