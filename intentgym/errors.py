"""Errors that users see: one line, naming the bad value and what would be valid."""

from __future__ import annotations

from collections.abc import Iterable


class IntentgymError(ValueError):
    """A user-facing error. The CLI prints its message on one line and exits with status 2."""


def invalid_choice(kind: str, value: object, choices: Iterable[str]) -> IntentgymError:
    """Build the standard error for a value outside a known set of choices."""
    valid = ", ".join(sorted(choices)) or "(none registered)"
    return IntentgymError(f"unknown {kind} {value!r}; valid choices: {valid}")
