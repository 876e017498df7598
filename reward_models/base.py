"""The reward-model contract, re-exported for reward-model modules: see :mod:`intentgym.api.reward`."""

from intentgym.api.reward import (
    ENTRY_POINT_GROUP,
    REWARD_MODELS,
    Completion,
    Prompt,
    RewardModel,
    check_lengths,
    completion_text,
    fixed_judge,
    prompt_text,
    register_reward_model,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REWARD_MODELS",
    "Completion",
    "Prompt",
    "RewardModel",
    "check_lengths",
    "completion_text",
    "fixed_judge",
    "prompt_text",
    "register_reward_model",
]
