"""Example reward model (README, "Extending intentgym"): replies close to a word budget score high.

Any callable with TRL's reward-function signature is a reward model: ``(prompts, completions,
**columns) -> list[float | None]``. Its constructor's keyword arguments are the config's keys.
Used as ``reward_model=word_budget`` with ``examples/extending/conf/reward_model/word_budget.yaml``
on the config search path, e.g. ``intentgym run --config-dir examples/extending/conf
trainer=best_of_n reward_model=word_budget``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from intentgym.api.reward import Completion, Prompt, completion_text
from intentgym.errors import IntentgymError


class WordBudget:
    """1 for a reply of exactly ``words`` words, falling linearly to 0 at twice or zero words."""

    def __init__(self, words: int = 20) -> None:
        if words < 1:
            raise IntentgymError(f"word_budget words must be >= 1, got {words}")
        self.words = words

    def __call__(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], **columns: Any
    ) -> list[float | None]:
        counts = [len(completion_text(c).split()) for c in completions]
        return [max(0.0, 1.0 - abs(n - self.words) / self.words) for n in counts]
