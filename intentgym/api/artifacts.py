"""Typed artifacts: what one phase of a run hands to the phases after it.

A phase adds an artifact with ``ctx.artifacts.put(TrainedRewardModel(...))`` and a later phase
reads it with ``ctx.artifacts.get(TrainedRewardModel)`` (``None`` when no earlier phase made one)
or ``ctx.artifacts.require(TrainedRewardModel, "rl")`` (a one-line error naming the phase that
needed it). The store holds one artifact per type: a later phase of the same kind replaces it.

A phase declares the artifact types it makes in ``Phase.produces`` and the ones it needs in its
``Requirements``; the run plan checks, before any work, that every needed artifact is made by an
earlier phase. A new kind of artifact is a new frozen dataclass deriving from :class:`Artifact`,
in the module of the phase that makes it (or here, when phases of several modules share it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from intentgym.errors import IntentgymError


class Artifact:
    """Base class of everything a phase hands to later phases of the same run."""

    #: a short description for error messages and ``intentgym config``
    describe: str = ""


A = TypeVar("A", bound=Artifact)


@dataclass(frozen=True)
class TrainedRewardModel(Artifact):
    """A reward model trained in this run (the ``reward`` phase)."""

    describe = "a reward model trained in this run (the 'reward' phase)"
    #: a transformers sequence-classification folder (``phases/<label>/reward_model``)
    path: Path
    #: the label of the phase that trained it
    phase: str


@dataclass(frozen=True)
class PreferencePairs(Artifact):
    """Preference pairs labelled in this run (e.g. by ``ai_feedback``), for a ``reward`` phase."""

    describe = "preference pairs labelled in this run (e.g. the 'ai_feedback' phase)"
    #: rows in TRL's conversational preference format (prompt, chosen, rejected) + task metadata
    rows: tuple[dict[str, Any], ...]
    #: the label of the phase that labelled them
    phase: str


@dataclass(frozen=True)
class SampleJudge(Artifact):
    """The judge a phase accepted or rejected its samples with (``spec_sft``'s spec judge); an
    ``rl`` phase with ``reward: judge`` (or ``auto``) then optimises the same judge."""

    describe = "a judge that an earlier phase filtered its samples with (e.g. 'spec_sft')"
    #: a reward model: ``(prompts, completions, **columns) -> list[float | None]``
    judge: Any
    #: its registry name, for logs and reward_model.json
    name: str
    phase: str


@dataclass(frozen=True)
class SystemPrompt(Artifact):
    """A system prompt an earlier phase trained under; later phases keep it in their prompts."""

    describe = "a system prompt an earlier phase trained under (e.g. 'spec_sft')"
    text: str
    phase: str


class Artifacts:
    """The run's artifacts, one per type."""

    def __init__(self) -> None:
        self._items: dict[type[Artifact], Artifact] = {}

    def put(self, artifact: Artifact) -> None:
        if not isinstance(artifact, Artifact):
            raise TypeError(f"artifacts must derive from Artifact, got {type(artifact).__name__}")
        self._items[type(artifact)] = artifact

    def get(self, kind: type[A]) -> A | None:
        found = self._items.get(kind)
        return found if isinstance(found, kind) else None

    def require(self, kind: type[A], phase: str) -> A:
        found = self.get(kind)
        if found is None:
            raise IntentgymError(
                f"phase {phase!r} needs {kind.describe or kind.__name__}, and no earlier phase "
                "of this trainer made one"
            )
        return found

    def __contains__(self, kind: object) -> bool:
        return kind in self._items

    def __iter__(self) -> Iterator[Artifact]:
        return iter(self._items.values())
