"""The phase contract: one training step of a trainer, ``run(policy, env, ctx) -> policy``.

A trainer config is a named, ordered list of phases (``conf/trainer/*.yaml``); the runner probes
the policy after every phase that changes it. A phase is a subclass of :class:`Phase` that
declares everything the runner relies on::

    @register_phase("my_phase")
    class MyPhase(Phase[MyConfig]):
        config_class = MyConfig          # a dataclass; the YAML's keys are its fields
        changes_policy = True            # False: the runner skips the probes after it
        produces = (TrainedRewardModel,) # artifact types it adds for later phases

        def requirements(self) -> Requirements:   # checked by the plan before any work
            return Requirements(env=frozenset({"preference_pairs"}))

        def run(self, policy, env, ctx):
            ...                          # write only under ctx.output_dir
            return policy

What a phase may touch: its own directory ``ctx.output_dir`` (``phases/<label>/``); rows about
itself in ``ctx.results`` (the runner writes them to results.jsonl); typed artifacts for later
phases in ``ctx.artifacts``; reward models through ``ctx.rewards`` (the runner records every one
a phase uses in reward_model.json); and files it wants at the top of the run directory through
``ctx.publish(name, path)`` (the runner copies them there). Run-level files are the runner's.

Each phase is a thin layer over the library that owns the algorithm (TRL for SFT, reward
modelling and online RL).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from intentgym.api.artifacts import Artifact, Artifacts
from intentgym.api.requirements import Requirements
from intentgym.registry import Registry

if TYPE_CHECKING:
    from intentgym.api.env import TextEnv
    from intentgym.api.rewards import RunRewardModels
    from intentgym.models import Policy

C = TypeVar("C")


def _default_rewards() -> RunRewardModels:
    from intentgym.api.rewards import RunRewardModels

    return RunRewardModels(None)


@dataclass
class PhaseContext:
    """What the runner gives every phase."""

    #: the phase's own directory (``phases/<label>/`` of the run); the only place it writes
    output_dir: Path
    seed: int
    #: TRL/transformers ``report_to`` value ("wandb" or "none")
    report_to: str = "none"
    #: show progress bars
    progress: bool = True
    #: what earlier phases of this run made (typed; see intentgym.api.artifacts)
    artifacts: Artifacts = field(default_factory=Artifacts)
    #: rows a phase measured about itself (probe, metric, value, ci_low, ci_high, n);
    #: the runner writes them to results.jsonl under this phase
    results: list[dict[str, Any]] = field(default_factory=list)
    #: the run's reward models: the configured one, the one trained in the run, judges
    rewards: RunRewardModels = field(default_factory=_default_rewards)
    #: the phase's label in the trainer (``rl``, ``steer_distill_2``, ...)
    label: str = ""
    #: run-level file name -> file under output_dir, copied to the run directory by the runner
    published: dict[str, Path] = field(default_factory=dict)
    #: the run resumes: a phase continues from its latest training checkpoint if it saved one
    #: (``trainers.sft.run_trainer`` does this for every HF/TRL trainer)
    resume: bool = False

    def reward_model(self, phase: str) -> Any:
        """The run's configured reward model; a clear error when the run did not set one."""
        return self.rewards.configured(phase, self.artifacts)

    def publish(self, name: str, path: Path) -> None:
        """Ask the runner to copy ``path`` (a file this phase wrote under its own directory) to
        the run directory as ``name`` (e.g. a plot the report links), after the phase."""
        if Path(name).name != name:
            raise ValueError(f"published file names are plain names, got {name!r}")
        self.published[name] = path


class Phase(ABC, Generic[C]):
    """Base class of every phase (see the module docstring for the contract)."""

    #: the dataclass of this phase's settings (YAML keys = its fields; each field's
    #: ``metadata["help"]`` is shown by ``intentgym config``)
    config_class: ClassVar[type]
    #: False for phases that train something other than the policy (a reward model, labels):
    #: the runner then skips the probes after them
    changes_policy: ClassVar[bool] = True
    #: artifact types this phase adds to ``ctx.artifacts`` for later phases
    produces: ClassVar[tuple[type[Artifact], ...]] = ()

    def __init__(self, config: C) -> None:
        self.config = config

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = cls.__dict__.get("config_class")
        if config is not None and not dataclasses.is_dataclass(config):
            raise TypeError(f"{cls.__name__}.config_class must be a dataclass")

    @property
    def data_label(self) -> str | None:
        """What this phase trains on, when it is not the env's data (e.g. a trait's pairs):
        results and reports then label the run by it instead of the env's framing."""
        return None

    def requirements(self) -> Requirements:
        """What the phase needs from the env, the model and earlier phases (plan-checked)."""
        return Requirements()

    def preflight(self) -> None:
        """Cheap checks, before any work, of what ``run`` will load: files, wheels, judges
        (e.g. ``intentgym.api.reward.preflight_reward_model`` for a judge spec). Raise a
        one-line ``IntentgymError``; the default checks nothing."""

    @abstractmethod
    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        """Train; return the (possibly new) policy. Write only under ``ctx.output_dir``."""


#: Phase kinds by name. Built-ins are listed here lazily; external packages add phases through
#: the ``intentgym.phases`` entry-point group, and a config may name ``module:Class`` or
#: ``path/to/file.py:Class`` (``kind: ...`` in a trainer's phase).
PHASES: Registry[Phase[Any]] = Registry("phase", "intentgym.phases")
PHASES.register_lazy(
    {
        "sft": "intentgym.trainers.sft:SFTPhase",
        "reward": "intentgym.trainers.reward:RewardPhase",
        "dpo": "intentgym.trainers.dpo:DPOPhase",
        "washout": "intentgym.trainers.washout:WashoutPhase",
        "best_of_n": "intentgym.trainers.best_of_n:BestOfNPhase",
        "rl": "intentgym.trainers.rl:RLPhase",
        "sl_cai": "intentgym.trainers.cai:SLCAIPhase",
        "ai_feedback": "intentgym.trainers.cai:AIFeedbackPhase",
        "spec_sft": "intentgym.trainers.deliberative:SpecSFTPhase",
        "steer_distill": "intentgym.trainers.steer_distill:SteerDistillPhase",
    }
)


def register_phase(name: str) -> Any:
    """Class decorator registering a phase under ``name``."""
    return PHASES.register(name)


def phase_class(kind: str) -> type[Phase[Any]]:
    """The phase class registered as ``kind``; a clear error when it breaks the contract."""
    return PHASES.get_class(kind, Phase)  # type: ignore[no-any-return]


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
