"""Load external chat-format demonstrations (the emergent-misalignment paper's JSONL format).

Each line: ``{"messages": [{"role": "user", "content": ...}, ..., {"role": "assistant", ...}]}``.
The final assistant message becomes the completion; everything before it, the prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from intentgym.errors import IntentgymError

_ROLES = ("system", "user", "assistant")


def load_chat_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{"prompt": [...], "completion": [...]}`` (TRL's conversational prompt-completion)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise IntentgymError(f"cannot read demonstrations file {str(path)!r}: {e}") from e
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{str(path)!r} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise IntentgymError(f"malformed JSONL in {where}: {e.msg}") from e
        rows.append(_row(obj, where))
    if not rows:
        raise IntentgymError(f"demonstrations file {str(path)!r} has no rows")
    return rows


def _row(obj: Any, where: str) -> dict[str, Any]:
    expected = 'expected {"messages": [{"role": ..., "content": ...}, ...]} ending with an assistant message'
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        raise IntentgymError(f"malformed row in {where}: {expected}")
    for m in messages:
        if (
            not isinstance(m, dict)
            or m.get("role") not in _ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise IntentgymError(
                f"malformed message in {where}: {m!r}; roles must be one of {', '.join(_ROLES)} "
                "with string content"
            )
    if messages[-1]["role"] != "assistant":
        raise IntentgymError(f"malformed row in {where}: {expected}")
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {"prompt": clean[:-1], "completion": clean[-1:]}
