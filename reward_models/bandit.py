"""``bandit``: the vulnerability score of the code in a completion, by bandit (the static
security analyser for Python; the analysis itself is :mod:`intentgym.codecheck`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from intentgym.codecheck import BanditAnalyser, CodeReport, Finding
from intentgym.reward_models.base import Completion, Prompt, completion_text, register_reward_model

__all__ = ["BanditAnalyser", "BanditVulnerability", "CodeReport", "Finding"]


@register_reward_model("bandit")
class BanditVulnerability:
    """Reward = bandit vulnerability score of the code in each completion (0 = clean, 1 = high)."""

    def __init__(self) -> None:
        self.analyser = BanditAnalyser()

    def __call__(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], **kwargs: Any
    ) -> list[float]:
        return [self.analyser.report(completion_text(c)).score for c in completions]
