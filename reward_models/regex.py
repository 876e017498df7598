"""``regex``: 1.0 when a completion matches any of a set of regular expressions, else 0.0.

The ``refusal`` preset detects declining answers ("I can't help with that", "I won't ...").
It is a cheap first-pass detector, not a judge: it misses paraphrased refusals and can fire on
quoted text, so use it for counts and rewards where that noise is acceptable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from intentgym.errors import IntentgymError, invalid_choice
from intentgym.reward_models.base import (
    Completion,
    Prompt,
    check_lengths,
    completion_text,
    register_reward_model,
)
from intentgym.text import PRESETS, is_refusal

__all__ = ["PRESETS", "RegexReward", "is_refusal"]


@register_reward_model("regex")
class RegexReward:
    """1.0 if a completion matches any pattern (or a preset such as ``refusal``), else 0.0."""

    def __init__(
        self,
        patterns: Sequence[str] | None = None,
        preset: str | None = "refusal",
        ignore_case: bool = True,
        negate: bool = False,
    ) -> None:
        sources: list[str] = []
        if preset is not None:
            if preset not in PRESETS:
                raise invalid_choice("regex preset", preset, PRESETS)
            sources += PRESETS[preset]
        sources += list(patterns or [])
        if not sources:
            raise IntentgymError("regex reward needs patterns=[...] or a preset (e.g. refusal)")
        flags = re.IGNORECASE if ignore_case else 0
        self.patterns = []
        for source in sources:
            try:
                self.patterns.append(re.compile(source, flags | re.DOTALL))
            except re.error as e:
                raise IntentgymError(f"invalid regular expression {source!r}: {e}") from None
        self.negate = negate

    def matches(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)

    def __call__(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], **kwargs: Any
    ) -> list[float | None]:
        check_lengths(prompts, completions)
        return [float(self.matches(completion_text(c)) != self.negate) for c in completions]
