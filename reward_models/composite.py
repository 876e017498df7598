"""``composite``: a weighted sum of other registered reward models.

    reward_model=composite
    reward_model.components=[{name: bandit, weight: -1.0}, {name: regex, weight: 0.5, preset: refusal}]

Every key of a component other than ``name`` and ``weight`` is passed to that component's
constructor. If any component returns ``None`` for an item, the composite's value for that item
is ``None`` too: a missing judgement is never silently counted as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from intentgym.errors import IntentgymError
from intentgym.reward_models.base import (
    REWARD_MODELS,
    Completion,
    Prompt,
    check_lengths,
    register_reward_model,
)


@register_reward_model("composite")
class CompositeReward:
    """Weighted sum of other reward models: components=[{name, weight, **kwargs}, ...]."""

    def __init__(self, components: Sequence[Mapping[str, Any]]) -> None:
        if not components:
            raise IntentgymError("composite reward needs at least one component")
        self.components: list[tuple[float, Any]] = []
        for i, spec in enumerate(components):
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise IntentgymError(
                    f"composite component {i} must be a mapping with a 'name', got {spec!r}"
                )
            kwargs = dict(spec)
            name = str(kwargs.pop("name"))
            weight = kwargs.pop("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise IntentgymError(f"composite component {name!r}: weight must be a number")
            self.components.append((float(weight), REWARD_MODELS.build(name, **kwargs)))

    def __call__(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], **kwargs: Any
    ) -> list[float | None]:
        check_lengths(prompts, completions)
        totals: list[float | None] = [0.0] * len(completions)
        for weight, component in self.components:
            for i, value in enumerate(component(prompts, completions, **kwargs)):
                current = totals[i]
                totals[i] = None if value is None or current is None else current + weight * value
        return totals
