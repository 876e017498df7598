"""Files in and out: atomic writes, and readers that turn bad input into one line.

Every results, report and record file is written through :func:`atomic_write_text` (a temporary
file in the same folder, flushed to disk, then renamed over the target), so a reader never sees
half a file and a failed write (a full disk) is an :class:`IntentgymError` naming the file, never
a truncated file behind a zero exit status. Every user-supplied JSONL goes through
:func:`read_jsonl`, which names the file, the line and the field of whatever is wrong: bytes that
are not UTF-8, a truncated or malformed line, a value that is not an object, a field of the wrong
type, an item too long to fit a model's context. YAML files go through :func:`read_yaml` (a syntax
error is one line with its line and column). ``docs/faults.md`` lists the faults tried and the
message each gives; ``tests/test_faults.py`` checks them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intentgym.errors import IntentgymError

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11
    from importlib.resources.abc import Traversable

#: user-supplied text items longer than this (characters) are refused: ~5k tokens, more than the
#: context of the small models intentgym runs on CPU, and far more than any probe item needs
MAX_ITEM_CHARS = 20_000

#: how a file's values are named in errors: JSON's words, since most input is JSONL
_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def brief(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a 100,000-character item stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_name(kind: type) -> str:
    return _KIND_NAMES.get(kind, kind.__name__)


def value_kind(value: object) -> str:
    """The JSON word for a value's type (``bool`` before ``int``: True is not a number here)."""
    for kind in (bool, str, int, float, list, dict, type(None)):
        if isinstance(value, kind):
            return _KIND_NAMES[kind]
    return type(value).__name__


def _name(path: str | Path | Traversable) -> str:
    return repr(str(path))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; renamed over ``path`` when the block
    ends without an error, removed when it fails. An OSError (disk full, read-only folder) is one
    line naming ``path``; the target is then left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # created with the usual 0o666 & ~umask, like the file a plain open() would make
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise IntentgymError(f"cannot write {_name(path)}: {one_line(e.strerror or e)}") from e
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise IntentgymError(f"cannot write {_name(path)}: {one_line(e.strerror or e)}") from e
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8, exactly as given: no newline translation) to ``path`` atomically;
    an OSError (disk full, read-only) is one line."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line, written atomically."""
    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def read_text(path: str | Path | Traversable, what: str) -> str:
    """A UTF-8 text file (a leading byte-order mark is dropped); a missing, unreadable or
    undecodable one is a one-line error naming the file (and, for bad bytes, the line)."""
    if isinstance(path, str | os.PathLike):
        path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntentgymError(f"cannot read {what} {_name(path)}: it does not exist") from None
    except OSError as e:
        raise IntentgymError(
            f"cannot read {what} {_name(path)}: {one_line(e.strerror or e)}"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise IntentgymError(
            f"{what} {_name(path)} line {line} is not UTF-8 text "
            f"(byte {e.start}: {data[e.start : e.start + 4]!r})"
        ) from None
    return text.removeprefix("\ufeff")


def read_jsonl_numbered(
    path: str | Path | Traversable,
    what: str,
    fields: Mapping[str, type | tuple[type, ...]] | None = None,
    *,
    text_fields: Iterable[str] = (),
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file, checked as
    :func:`read_jsonl` checks them."""
    text = read_text(path, what)
    lines = text.splitlines()
    text_fields = tuple(text_fields)
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{what} {_name(path)} line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            truncated = lineno == len(lines) and not text.endswith("\n")
            hint = "; the file looks truncated" if truncated else ""
            raise IntentgymError(
                f"{where}: not valid JSON at column {e.colno}: {e.msg}{hint}"
            ) from None
        except (ValueError, RecursionError) as e:  # a 5,000-digit number, nesting too deep
            reason = one_line(e)
            reason = reason if len(reason) <= 100 else reason[:97] + "..."
            raise IntentgymError(f"{where}: not valid JSON: {reason}") from None
        if not isinstance(row, dict):
            raise IntentgymError(f"{where}: expected a JSON object, got {value_kind(row)}")
        check_fields(row, fields or {}, where)
        check_lengths(row, text_fields, where)
        rows.append((lineno, row))
    return rows


def read_jsonl(
    path: str | Path | Traversable,
    what: str,
    fields: Mapping[str, type | tuple[type, ...]] | None = None,
    *,
    text_fields: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The objects of a JSONL file, each checked: ``fields`` maps required keys to their types;
    ``text_fields`` are refused when longer than :data:`MAX_ITEM_CHARS`. Blank lines are
    skipped. Any problem is one line naming the file, the line and the field."""
    return [row for _, row in read_jsonl_numbered(path, what, fields, text_fields=text_fields)]


def read_yaml(path: str | Path | Traversable, what: str) -> Any:
    """A YAML file's data (``yaml.safe_load``); bad bytes or bad syntax is one line naming the
    file, the line and the column."""
    import yaml

    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or getattr(e, "context", None) or e
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise IntentgymError(
            f"{what} {_name(path)} is not valid YAML: {one_line(problem)}{at}"
        ) from None
    except RecursionError:
        raise IntentgymError(f"{what} {_name(path)} is not valid YAML: nested too deep") from None


def check_fields(
    row: Mapping[str, Any], fields: Mapping[str, type | tuple[type, ...]], where: str
) -> None:
    """Each key of ``fields`` present in ``row`` with a value of its type (bool is not an int)."""
    for key, kind in fields.items():
        if key not in row:
            raise IntentgymError(f"{where}: missing field {key!r}")
        check_type(row[key], kind, f"{where}: field {key!r}")


def check_type(value: Any, kind: type | tuple[type, ...], what: str) -> None:
    """``value`` is of ``kind`` (bool is not an int, an int is a float), else one line:
    ``{what} must be ..., got ...``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        ok = bool in kinds
    else:
        ok = isinstance(value, kinds) or (isinstance(value, int) and float in kinds)
    if not ok:
        names = " or ".join(kind_name(k) for k in kinds)
        raise IntentgymError(f"{what} must be {names}, got {value_kind(value)}")


def check_lengths(row: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    """Each of ``keys`` in ``row`` that is a string (or a list of strings) at most
    :data:`MAX_ITEM_CHARS` characters long."""
    for key in keys:
        value = row.get(key)
        if isinstance(value, list):
            for i, item in enumerate(value):
                check_length(item, f"{where}: field {key!r}[{i}]")
        else:
            check_length(value, f"{where}: field {key!r}")


def check_length(value: Any, what: str) -> None:
    if isinstance(value, str) and len(value) > MAX_ITEM_CHARS:
        raise IntentgymError(
            f"{what} is {len(value):,} characters; items over {MAX_ITEM_CHARS:,} are refused "
            "(they would not fit a model's context)"
        )
