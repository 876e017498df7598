"""Reward models and judges: plain callables with TRL's reward-function signature, in one registry."""

from intentgym.reward_models.bandit import BanditAnalyser, BanditVulnerability, CodeReport
from intentgym.reward_models.base import (
    REWARD_MODELS,
    RewardModel,
    completion_text,
    register_reward_model,
)

__all__ = [
    "REWARD_MODELS",
    "BanditAnalyser",
    "BanditVulnerability",
    "CodeReport",
    "RewardModel",
    "completion_text",
    "register_reward_model",
]

# Env-specific rewards register lazily so importing the registry does not import the envs.
REWARD_MODELS.register(
    "insecure_code_task", "intentgym.envs.insecure_code.reward:InsecureCodeTaskReward"
)
