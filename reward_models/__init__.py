"""Reward models and judges: plain callables with TRL's reward-function signature, in one registry
(:mod:`intentgym.api.reward`, where the built-ins are listed)."""

from intentgym.reward_models.bandit import BanditAnalyser, BanditVulnerability, CodeReport
from intentgym.reward_models.base import (
    ENTRY_POINT_GROUP,
    REWARD_MODELS,
    RewardModel,
    completion_text,
    fixed_judge,
    prompt_text,
    register_reward_model,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REWARD_MODELS",
    "BanditAnalyser",
    "BanditVulnerability",
    "CodeReport",
    "RewardModel",
    "completion_text",
    "fixed_judge",
    "prompt_text",
    "register_reward_model",
]
