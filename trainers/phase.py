"""A Phase is one training step of a pipeline: ``run(policy, env, ctx) -> policy``.

Each phase is a thin layer over the library that owns the algorithm (TRL for SFT, reward
modelling and online RL). A trainer config is a named, ordered list of phases; the runner probes
the policy after each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from intentgym.envs.base import TextEnv
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


class Phase(Protocol):
    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy: ...


PHASES: Registry[Any] = Registry("phase")
