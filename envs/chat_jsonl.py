"""Load external chat-format demonstrations (the emergent-misalignment paper's JSONL format).

Each line: ``{"messages": [{"role": "user", "content": ...}, ..., {"role": "assistant", ...}]}``.
The final assistant message becomes the completion; everything before it, the prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intentgym.errors import IntentgymError
from intentgym.files import brief, check_length, read_jsonl_numbered, value_kind

_ROLES = ("system", "user", "assistant")
_WHAT = "demonstrations file"


def load_chat_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{"prompt": [...], "completion": [...]}`` (TRL's conversational prompt-completion)."""
    path = Path(path).expanduser()
    rows = [
        _row(obj, f"{_WHAT} {str(path)!r} line {lineno}")
        for lineno, obj in read_jsonl_numbered(path, _WHAT)
    ]
    if not rows:
        raise IntentgymError(f"{_WHAT} {str(path)!r} has no rows")
    return rows


def _row(obj: dict[str, Any], where: str) -> dict[str, Any]:
    expected = 'expected {"messages": [{"role": ..., "content": ...}, ...]} ending with an assistant message'
    messages = obj.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        if "messages" not in obj:
            got = "missing"
        elif isinstance(messages, list):
            got = f"a list of {len(messages)} message(s)"
        else:
            got = value_kind(messages)
        raise IntentgymError(f"malformed row in {where}: field 'messages' is {got}; {expected}")
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or m.get("role") not in _ROLES
            or not isinstance(m.get("content"), str)
        ):
            shown = {k: m.get(k) for k in ("role", "content")} if isinstance(m, dict) else m
            raise IntentgymError(
                f"malformed message in {where}: field 'messages'[{i}] is {brief(shown)}; roles "
                f"must be one of {', '.join(_ROLES)} with string content"
            )
        check_length(m["content"], f"{where}: field 'messages'[{i}].content")
    if messages[-1]["role"] != "assistant":
        raise IntentgymError(f"malformed row in {where}: {expected}")
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {"prompt": clean[:-1], "completion": clean[-1:]}
