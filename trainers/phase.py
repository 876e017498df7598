"""A Phase is one training step of a pipeline: ``run(policy, env, ctx) -> policy``.

Each phase is a thin layer over the library that owns the algorithm (TRL for SFT, reward
modelling and online RL). A trainer config is a named, ordered list of phases; the runner probes
the policy after each one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from intentgym.envs.base import TextEnv
from intentgym.errors import IntentgymError
from intentgym.models import Policy
from intentgym.registry import Registry


@dataclass
class PhaseContext:
    """What the runner gives every phase."""

    output_dir: Path
    seed: int
    #: TRL/transformers ``report_to`` value ("wandb" or "none")
    report_to: str = "none"
    #: show progress bars
    progress: bool = True
    #: what earlier phases of this run produced, e.g. ``{"reward_model": "/path"}``
    artifacts: dict[str, Any] = field(default_factory=dict)
    #: rows a phase measured about itself (probe, metric, value, ci_low, ci_high, n);
    #: the runner writes them to results.jsonl under this phase
    results: list[dict[str, Any]] = field(default_factory=list)
    #: builds the run's ``reward_model`` (once) when a phase asks for it
    reward_model_factory: Callable[[], Any] | None = None

    def reward_model(self, phase: str) -> Any:
        """The run's reward model; a clear error when the run did not configure one."""
        if self.reward_model_factory is None:
            raise IntentgymError(
                f"phase {phase!r} needs a reward model: add reward_model=NAME to the run "
                "(see `intentgym list` for the available ones)"
            )
        return self.reward_model_factory()


def result_row(
    probe: str, metric: str, estimate: tuple[float, float, float], n: int
) -> dict[str, Any]:
    """One row a phase reports about itself (``ctx.results``): ``estimate`` = (value, low, high)."""
    value, low, high = estimate
    return {
        "probe": probe,
        "metric": metric,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "n": n,
    }


class Phase(Protocol):
    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy: ...


PHASES: Registry[Any] = Registry("phase")
