"""Reward models and judges: plain callables with TRL's reward-function signature, in one registry."""

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

# The other built-ins register lazily ("module:attr"), so importing the registry imports neither
# their backends (transformers models, sentence-transformers, HTTP clients) nor the envs.
for _name, _target in {
    "approval_rater": "intentgym.reward_models.feedback:ApprovalRater",
    "coherence": "intentgym.reward_models.coherence:CoherenceJudge",
    "composite": "intentgym.reward_models.composite:CompositeReward",
    "embedding_classifier": "intentgym.reward_models.embedding:EmbeddingClassifier",
    "insecure_code_task": "intentgym.envs.insecure_code.reward:InsecureCodeTaskReward",
    "learned": "intentgym.reward_models.learned:LearnedRewardModel",
    "llm_judge": "intentgym.reward_models.llm_judge:LLMJudge",
    "regex": "intentgym.reward_models.regex:RegexReward",
    "spec_judge": "intentgym.reward_models.spec_judge:SpecJudge",
    "truthful_rater": "intentgym.reward_models.feedback:TruthfulRater",
}.items():
    REWARD_MODELS.register(_name, _target)
