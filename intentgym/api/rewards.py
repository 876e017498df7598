"""Reward-model resolution for a run, in one place.

A phase never builds a reward model by itself; it asks the run's :class:`RunRewardModels`
(``ctx.rewards``) for one of:

- ``configured``: the run's ``reward_model=NAME`` (``learned`` without a path = the reward model
  this run's ``reward`` phase trained);
- ``trained``: the reward model this run's ``reward`` phase trained (``TrainedRewardModel``);
- ``judge``: the judge an earlier phase filtered its samples with (``SampleJudge``);
- ``resolve(source)``: what an optimiser uses for ``source`` = ``auto`` (trained, else judge, else
  configured) | ``learned`` | ``judge`` | ``run``;
- ``build(name, ...)``: any registry entry a phase uses itself (a spec judge, a coherence judge).

Every reward model handed out is recorded (name, origin, constructor arguments, the phases that
used it); the runner writes the record to ``reward_model.json`` in the run directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from intentgym.api.artifacts import Artifacts, SampleJudge, TrainedRewardModel
from intentgym.api.reward import REWARD_MODELS, fixed_judge
from intentgym.errors import IntentgymError

log = logging.getLogger(__name__)

REWARD_SOURCES = ("auto", "learned", "judge", "run")


class Counted:
    """A reward model that counts the completions it scores for the budget ledger
    (``intentgym.budget``); everything else is the wrapped model's."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "_inner", inner)

    def __call__(self, prompts: Any, completions: Any, **kwargs: Any) -> Any:
        from intentgym.budget import COUNTERS

        COUNTERS.reward_items += len(completions)
        return self._inner(prompts, completions, **kwargs)

    def score_answers(self, prompts: Any, answers: Any, **kwargs: Any) -> Any:
        """spec_judge's entry point for answers without their reasoning (counted the same)."""
        from intentgym.budget import COUNTERS

        COUNTERS.reward_items += len(answers)
        return self._inner.score_answers(prompts, answers, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() sees the wrapped model's class
        return type(self._inner)

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        # explicit, because __class__ names the wrapped model's class (for isinstance), which
        # pickle would otherwise rebuild instead of the wrapper (run checkpoints pickle judges)
        return (Counted, (self._inner,))


class RunRewardModels:
    """The reward models of one run (see the module docstring)."""

    def __init__(
        self,
        spec: tuple[str, dict[str, Any]] | None,
        on_record: Callable[[list[dict[str, Any]]], None] | None = None,
        *,
        instance: Any = None,
    ) -> None:
        #: the run's ``reward_model`` config: (registry name, constructor arguments), or None
        self.spec = spec
        #: a ready reward model used as the configured one (programmatic use, tests)
        self.instance = instance
        self.on_record = on_record
        self._built: dict[str, Any] = {}
        self._wrappers: dict[str, Counted] = {}
        #: one entry per distinct reward model handed out, in order
        self.records: list[dict[str, Any]] = []

    # -- what phases ask for -------------------------------------------------------------------

    def configured(self, phase: str | None, artifacts: Artifacts | None = None) -> Any:
        """The run's ``reward_model=NAME``; a clear error when the run did not set one.
        ``phase`` None: built before any phase (recorded as configured, used by none yet)."""
        if self.instance is not None:
            self._record(phase, self.instance)
            return self._counted("instance", self.instance)
        if self.spec is None:
            raise IntentgymError(
                f"phase {phase!r} needs a reward model: add reward_model=NAME to the run "
                "(see `intentgym list` for the available ones)"
            )
        name, kwargs = self.spec[0], dict(self.spec[1])
        if name == "learned" and kwargs.get("path") is None:
            trained = (artifacts or Artifacts()).get(TrainedRewardModel)
            if trained is None:
                raise IntentgymError(
                    "reward_model=learned needs reward_model.path=DIR (a saved reward model) or "
                    "a 'reward' phase earlier in the trainer to train one"
                )
            kwargs["path"] = str(trained.path)
        return self.build(phase, name, **kwargs)

    def trained(self, phase: str, artifacts: Artifacts, *, dtype: str, device: str) -> Any:
        """The reward model this run's ``reward`` phase trained."""
        trained = artifacts.require(TrainedRewardModel, phase)
        return self.build(phase, "learned", path=str(trained.path), dtype=dtype, device=device)

    def judge(self, phase: str, artifacts: Artifacts) -> Any:
        """The judge an earlier phase filtered its samples with."""
        found = artifacts.require(SampleJudge, phase)
        self._record(phase, found.judge)
        return found.judge

    def resolve(
        self, phase: str, source: str, artifacts: Artifacts, *, dtype: str, device: str
    ) -> tuple[Any, str]:
        """The reward an optimiser uses, and its name in logs: ``learned_reward``, ``judge`` or
        ``reward_model``. ``auto``: the model trained in this run, else an earlier phase's judge,
        else the configured reward model."""
        if source not in REWARD_SOURCES:
            raise IntentgymError(
                f"unknown reward source {source!r}; valid choices: {', '.join(REWARD_SOURCES)}"
            )
        has_trained = TrainedRewardModel in artifacts
        if source == "learned" or (source == "auto" and has_trained):
            return self.trained(phase, artifacts, dtype=dtype, device=device), "learned_reward"
        if source == "judge" or (source == "auto" and SampleJudge in artifacts):
            return self.judge(phase, artifacts), "judge"
        return self.configured(phase, artifacts), "reward_model"

    def note_trained(self, phase: str, path: str, *, dtype: str, device: str) -> None:
        """Record a reward model a phase trained (before any phase uses it)."""
        kwargs = {"path": path, "dtype": dtype, "device": device}
        entry = {"name": "learned", "origin": "built-in", "kwargs": kwargs}
        if not any({k: r[k] for k in entry} == entry for r in self.records):
            self.records.append({**entry, "used_by": [], "trained_by": phase})
            if self.on_record is not None:
                self.on_record(self.records)

    def build(self, phase: str | None, name: str, *, shared: bool = False, **kwargs: Any) -> Any:
        """The registry's ``name`` built with ``kwargs`` (one instance per distinct arguments
        in this run; ``shared``: one per process, for fixed judges that are never trained)."""
        key = json.dumps([name, kwargs], sort_keys=True, default=str)
        if key not in self._built:
            if shared:
                self._built[key] = fixed_judge({"name": name, **kwargs})
            else:
                self._built[key] = REWARD_MODELS.build(name, **kwargs)
            log.info("reward model %s built with %s for phase %s", name, kwargs, phase)
        instance = self._built[key]
        self._record(phase, instance, name, kwargs)
        return self._counted(key, instance)

    def _counted(self, key: str, instance: Any) -> Any:
        """One counting wrapper per reward model (so a phase that asks twice gets the same)."""
        if key not in self._wrappers:
            self._wrappers[key] = Counted(instance)
        return self._wrappers[key]

    # -- the record ----------------------------------------------------------------------------

    def _record(
        self,
        phase: str | None,
        instance: Any,
        name: str | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        info = getattr(instance, "registry_info", None)
        entry = (
            info.as_dict()
            if info is not None
            else {"name": name or type(instance).__name__, "origin": "unknown", "kwargs": kwargs}
        )
        for existing in self.records:
            if {k: existing[k] for k in ("name", "origin", "kwargs")} == json.loads(
                json.dumps(entry, default=str)
            ):
                if phase and phase not in existing["used_by"]:
                    existing["used_by"].append(phase)
                break
        else:
            entry = json.loads(json.dumps(entry, default=str))
            self.records.append({**entry, "used_by": [phase] if phase else []})
        if self.on_record is not None:
            self.on_record(self.records)
