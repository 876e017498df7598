"""The reward-model contract and its registry.

A reward model is any callable ``(prompts, completions, **kw) -> list[float]`` — TRL's reward
function signature, so every plugin drops into TRL's online trainers unchanged. Extra dataset
columns arrive as keyword lists (TRL passes them the same way). A judge may return ``None`` for an
item it cannot score (e.g. too little probability on numbers); TRL's online trainers treat
``None`` as "no reward for this item" and intentgym's probes count it as unscored, never as 0.

Built-ins register with :func:`register_reward_model`; external packages through the
``intentgym.reward_models`` entry-point group (see README, "Write a reward-model plugin").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from intentgym.registry import Registry

Prompt = str | Sequence[dict[str, str]]
Completion = str | Sequence[dict[str, str]]
ENTRY_POINT_GROUP = "intentgym.reward_models"


#: A reward model may declare ``score_range = (low, high)``, the scale of its scores, which
#: probes that threshold a judge read (e.g. compliance_gap: a refusal scores above the
#: midpoint); without it, 0-1 is assumed.


@runtime_checkable
class RewardModel(Protocol):
    def __call__(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], **kwargs: Any
    ) -> list[float | None]: ...


REWARD_MODELS: Registry[RewardModel] = Registry("reward model", ENTRY_POINT_GROUP)

# The built-ins register lazily ("module:attr"), so importing the registry imports neither their
# backends (transformers models, sentence-transformers, HTTP clients) nor the envs; a built-in
# module's own ``@register_reward_model`` decorator then confirms the same entry.
REWARD_MODELS.register_lazy(
    {
        "approval_rater": "intentgym.envs.feedback.rater:ApprovalRater",
        "bandit": "intentgym.reward_models.bandit:BanditVulnerability",
        "coherence": "intentgym.reward_models.coherence:CoherenceJudge",
        "composite": "intentgym.reward_models.composite:CompositeReward",
        "embedding_classifier": "intentgym.reward_models.embedding:EmbeddingClassifier",
        "insecure_code_task": "intentgym.envs.insecure_code.reward:InsecureCodeTaskReward",
        "learned": "intentgym.reward_models.learned:LearnedRewardModel",
        "llm_judge": "intentgym.reward_models.llm_judge:LLMJudge",
        "regex": "intentgym.reward_models.regex:RegexReward",
        "spec_judge": "intentgym.reward_models.spec_judge:SpecJudge",
        "truthful_rater": "intentgym.envs.feedback.rater:TruthfulRater",
    }
)


# Judges are fixed (never trained), so one instance per spec serves every phase, probe and run of
# a sweep in this process (building the embedding judge takes ~8 s, the coherence judge loads a model).
_FIXED_JUDGES: dict[str, Any] = {}


def fixed_judge(spec: dict[str, Any]) -> Any:
    """The reward model a spec (``{name: ..., **kwargs}``) builds, one shared instance per spec.
    Only for judges that are never trained."""
    import json

    key = json.dumps(spec, sort_keys=True, default=str)
    if key not in _FIXED_JUDGES:
        kwargs = dict(spec)
        _FIXED_JUDGES[key] = REWARD_MODELS.build(str(kwargs.pop("name")), **kwargs)
    return _FIXED_JUDGES[key]


def register_reward_model(name: str) -> Any:
    """Class or function decorator that registers a built-in reward model under ``name``."""
    return REWARD_MODELS.register(name)


def completion_text(completion: Completion) -> str:
    """The text of a completion, whether plain or conversational (a list of messages)."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role") == "assistant")


def prompt_text(prompt: Prompt) -> str:
    """The user's request in a prompt: the string itself, or the last user message's content."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


def check_lengths(prompts: Sequence[Any], completions: Sequence[Any]) -> None:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")


def preflight_reward_model(spec: dict[str, Any], where: str) -> None:
    """Before any work: ``spec`` (``{name: ..., **kwargs}``) names a registered reward model
    that accepts these arguments, and whatever it will load is there (its optional
    ``preflight(**kwargs)`` static method checks wheels, files, models)."""
    from intentgym.errors import IntentgymError

    kwargs = dict(spec)
    if "name" not in kwargs:
        raise IntentgymError(f"{where} needs a name (see `intentgym list`)")
    name = str(kwargs.pop("name"))
    REWARD_MODELS.check_kwargs(name, kwargs)
    check = getattr(REWARD_MODELS.get(name), "preflight", None)
    if callable(check):
        check(**kwargs)


def score_with_progress(
    judge: Any, prompts: Sequence[Prompt], completions: Sequence[Completion], desc: str | None
) -> list[float | None]:
    """``judge(prompts, completions)``, with a progress bar labelled ``desc`` when the judge's
    ``__call__`` takes a ``desc`` keyword (the built-in judges do; a plugin's extra keywords are
    dataset columns, so nothing is passed to one that does not declare it)."""
    import inspect

    inner = vars(judge).get("_inner", judge)  # through the run's counting wrapper
    try:
        takes_desc = "desc" in inspect.signature(inner.__call__).parameters
    except (TypeError, ValueError):
        takes_desc = False
    if takes_desc and desc is not None:
        return list(judge(prompts, completions, desc=desc))
    return list(judge(prompts, completions))
