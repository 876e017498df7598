"""What a phase or probe needs from the run, declared so the plan can check it before any work.

``Phase.requirements()`` and ``Probe.requirements()`` return a :class:`Requirements`. The run plan
(``intentgym.runner.plan_run``) checks every one against what it knows before loading a model:
the env's class (its optional capabilities and task labels), the artifacts earlier phases of the
trainer make, whether ``reward_model=`` is set, and the model's number of decoder layers. An unmet
requirement is a one-line error naming the phase, what is missing and what would work (e.g. the
envs that have the capability), instead of a failure after minutes of base-model probes.
"""

from __future__ import annotations

from dataclasses import dataclass

from intentgym.api.artifacts import Artifact
from intentgym.api.env import ENV_CAPABILITIES, ENVS, TextEnv, env_capabilities, env_class


@dataclass(frozen=True)
class RunFacts:
    """What the plan knows about a run before any work: the facts requirements are checked on."""

    env_name: str
    env_class: type[TextEnv]
    #: artifact types made by the phases before the one being checked
    artifacts: frozenset[type[Artifact]] = frozenset()
    #: True when the run configures ``reward_model=NAME``
    reward_model: bool = False
    #: the model's number of decoder layers (None: unknown without loading it)
    num_layers: int | None = None


@dataclass(frozen=True)
class Requirements:
    """Everything a phase or probe needs; all of it must hold (and one of ``any_of``, if given)."""

    #: optional env capabilities (keys of ``intentgym.api.env.ENV_CAPABILITIES``)
    env: frozenset[str] = frozenset()
    #: metadata keys every env task must carry (``TextEnv.task_fields``), e.g. category labels
    task_fields: frozenset[str] = frozenset()
    #: artifact types an earlier phase of the trainer must make
    artifacts: tuple[type[Artifact], ...] = ()
    #: the run must configure ``reward_model=NAME``
    reward_model: bool = False
    #: decoder layers the model must have (0-based; negative counts from the end)
    layers: tuple[int, ...] = ()
    #: the env must be single-turn (``TextEnv.multi_turn`` False): the phase scores one reply
    single_turn: bool = False
    #: alternatives, at least one of which must hold (e.g. a reward from any of three sources)
    any_of: tuple[Requirements, ...] = ()
    #: what would make the requirement hold, appended to the error (e.g. "use pair_source=env")
    hint: str = ""

    def unmet(self, facts: RunFacts) -> str | None:
        """Why these requirements do not hold for ``facts``, or None when they do."""
        missing_caps = sorted(self.env - env_capabilities(facts.env_class))
        if missing_caps:
            cap = missing_caps[0]
            able = [n for n in ENVS.names() if "/" not in n and _has(n, cap)]
            return (
                f"needs an env with {cap} ({ENV_CAPABILITIES[cap]}); env {facts.env_name} has "
                f"none (envs that have it: {', '.join(able) or 'none registered'})"
            )
        missing_fields = sorted(self.task_fields - facts.env_class.task_fields)
        if missing_fields:
            able = [n for n in ENVS.names() if "/" not in n and _labels(n) >= self.task_fields]
            return (
                f"needs tasks labelled with {', '.join(missing_fields)}; env {facts.env_name}'s "
                f"tasks are not (envs whose tasks are: {', '.join(able) or 'none registered'})"
            )
        if self.single_turn and facts.env_class.multi_turn:
            return f"works on single-turn envs only; env {facts.env_name} is multi-turn"
        for kind in self.artifacts:
            if kind not in facts.artifacts:
                return f"needs {kind.describe or kind.__name__}, and no earlier phase makes one"
        if self.reward_model and not facts.reward_model:
            return "needs a reward model: add reward_model=NAME (see `intentgym list`)"
        if self.layers and facts.num_layers is not None:
            bad = [k for k in self.layers if not -facts.num_layers <= k < facts.num_layers]
            if bad:
                return (
                    f"layer {bad[0]} does not exist: the model has layers 0..{facts.num_layers - 1}"
                    f" (or -{facts.num_layers}..-1 from the end)"
                )
        if self.any_of:
            reasons = [r.unmet(facts) for r in self.any_of]
            if all(reasons):
                return "; or ".join(str(r) for r in reasons)
        return None

    def check(self, where: str, facts: RunFacts) -> None:
        """Raise a one-line ``IntentgymError`` when the requirements do not hold."""
        from intentgym.errors import IntentgymError

        reason = self.unmet(facts)
        if reason:
            hint = f"; {self.hint}" if self.hint else ""
            raise IntentgymError(f"{where} {reason}{hint}")


def _has(env: str, capability: str) -> bool:
    try:
        return capability in env_capabilities(env_class(env))
    except Exception:  # a plugin env that cannot be loaded has no capabilities here
        return False


def _labels(env: str) -> frozenset[str]:
    try:
        return env_class(env).task_fields
    except Exception:
        return frozenset()
