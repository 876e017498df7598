"""The reward-model interface and its registry.

A reward model is any callable ``(prompts, completions, **kw) -> list[float]`` — TRL's reward
function signature, so every plugin drops into TRL's online trainers unchanged. Extra dataset
columns arrive as keyword lists (TRL passes them the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from intentgym.registry import Registry

Prompt = str | Sequence[dict[str, str]]
Completion = str | Sequence[dict[str, str]]


@runtime_checkable
class RewardModel(Protocol):
    def __call__(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], **kwargs: Any
    ) -> list[float]: ...


REWARD_MODELS: Registry[RewardModel] = Registry("reward model")


def register_reward_model(name: str) -> Any:
    """Class or function decorator that registers a built-in reward model under ``name``."""
    return REWARD_MODELS.register(name)


def completion_text(completion: Completion) -> str:
    """The text of a completion, whether plain or conversational (a list of messages)."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role") == "assistant")
