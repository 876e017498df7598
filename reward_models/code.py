"""Finding the Python program in a model's reply."""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(
    r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE
)


def parses(code: str) -> bool:
    """True for non-empty text that Python can parse."""
    if not code.strip():
        return False
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def extract_code(reply: str) -> str:
    """The code in a reply: the fenced blocks if there are any, else the whole reply."""
    blocks = _FENCE.findall(reply)
    return "\n\n".join(b.strip("\n") for b in blocks) if blocks else reply.strip("\n")


def parseable_prefix(code: str) -> str:
    """The longest prefix of whole lines that parses.

    Replies are often cut off by the generation budget; the part that was written is still code
    worth analysing. Returns "" when not even the first line parses.
    """
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if parses(candidate):
            return candidate
    return ""


def adds_code(program: str, baseline: str) -> bool:
    """True if ``program`` parses and contains a statement ``baseline`` lacks (comments do not count).

    ``baseline`` is the same program with nothing written in the gap; when it does not parse
    (a function whose body was the gap), any parseable program filled the gap with code.
    """
    if not parses(program):
        return False
    if not parses(baseline):
        return True
    return ast.dump(ast.parse(program)) != ast.dump(ast.parse(baseline))


def defines(code: str, name: str) -> bool:
    """True if ``code`` defines ``name`` at top level (function, class or assignment)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == name
        ):
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False
