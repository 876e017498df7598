"""TextEnv: a Gymnasium environment whose observations are chat messages and actions are text.

An episode is one task: ``reset`` samples a task and returns its conversation so far, ``step``
takes the assistant's reply, scores it with the env's reward model and ends the episode. Each env
also hands trainers the datasets they need (demonstrations, preference pairs, prompts) and hands
probes its held-out evaluation tasks. ``framing`` — the intent behind the trained behaviour — is a
constructor argument of every env.
"""

from __future__ import annotations

import hashlib
import json
import string
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

from intentgym.errors import IntentgymError, invalid_choice

# spaces.Text defaults to alphanumerics; natural language and code need printable text.
TEXT_CHARSET = string.printable
MAX_TEXT = 16_384

Message = dict[str, str]
Observation = tuple[Message, ...]


def message_space() -> spaces.Dict:
    return spaces.Dict(
        {
            "role": spaces.Text(max_length=16, charset=string.ascii_lowercase),
            "content": spaces.Text(max_length=MAX_TEXT, min_length=0, charset=TEXT_CHARSET),
        }
    )


@dataclass(frozen=True)
class Task:
    """One prompt of an env, with whatever the env's reward needs to score a reply to it."""

    messages: Observation
    meta: dict[str, Any] = field(default_factory=dict)


def preference_row(task: Task, chosen: str, rejected: str) -> dict[str, Any]:
    """A preference pair in TRL's conversational format, with the task's metadata columns."""
    return {
        "prompt": list(task.messages),
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        **task.meta,
    }


def task_columns(tasks: Sequence[Task], repeat: int = 1) -> dict[str, list[Any]]:
    """The tasks' metadata as per-item columns (each task ``repeat`` times), the way TRL passes
    dataset columns to reward functions; a key a task lacks is None."""
    keys = sorted({k for t in tasks for k in t.meta})
    return {k: [t.meta.get(k) for t in tasks for _ in range(repeat)] for k in keys}


def load_data_items(
    package: str, fields: dict[str, type], choices: dict[str, Sequence[str]] | None = None
) -> tuple[dict[str, Any], ...]:
    """Every row of the ``data/*.jsonl`` files packaged with an env (``package``, e.g.
    ``intentgym.envs.feedback``), in file order: each of ``fields`` checked for its type, each
    key of ``choices`` for an allowed value, ``id`` unique."""
    from importlib import resources

    items: list[dict[str, Any]] = []
    root = resources.files(package).joinpath("data")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".jsonl"):
            continue
        for lineno, line in enumerate(entry.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            for key, kind in fields.items():
                if not isinstance(row.get(key), kind):
                    raise IntentgymError(
                        f"{entry.name}:{lineno}: field {key!r} must be a {kind.__name__}"
                    )
            for key, valid in (choices or {}).items():
                if row[key] not in valid:
                    raise invalid_choice(f"{entry.name}:{lineno} {key}", row[key], valid)
            items.append(row)
    ids = [r["id"] for r in items]
    if len(set(ids)) != len(ids):
        raise IntentgymError(f"duplicate item ids in {package}'s data")
    return tuple(items)


def in_heldout(key: str, share: float) -> bool:
    """A fixed split: ``key`` is held out when its hash falls in the first ``share`` of the range."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def _fresh(messages: Observation) -> Observation:
    """A copy: observations must not share objects between calls (gymnasium's checker)."""
    return tuple(dict(m) for m in messages)


class TextEnv(gym.Env[Observation, str]):
    """Base class for intentgym's single-turn text environments."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (gymnasium convention)
    #: the framings this env offers; subclasses override.
    framings: ClassVar[tuple[str, ...]] = ()
    #: True when ``eval_tasks`` is the same whatever the framing (neutral requests), so every
    #: arm of a sweep is probed on identical items and base-model results can be shared.
    eval_independent_of_framing: ClassVar[bool] = False

    def __init__(self, framing: str, render_mode: str | None = None) -> None:
        if framing not in self.framings:
            raise invalid_choice(f"framing for {type(self).__name__}", framing, self.framings)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise invalid_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.framing = framing
        self.render_mode = render_mode
        self.observation_space = spaces.Sequence(message_space())
        self.action_space = spaces.Text(max_length=MAX_TEXT, min_length=0, charset=TEXT_CHARSET)
        self._task: Task | None = None
        self._last_reply = ""

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        self._task = self.sample_task(self.np_random)
        self._last_reply = ""
        return _fresh(self._task.messages), dict(self._task.meta)

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self._task is None:
            raise RuntimeError("call reset() before step()")
        self._last_reply = action
        reward, info = self.score_one(self._task, action)
        return _fresh(self._task.messages), reward, True, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        turns = [f"[{m['role']}] {m['content']}" for m in self._task.messages]
        return "\n".join([*turns, f"[assistant] {self._last_reply}"])

    # --- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def sample_task(self, rng: Any) -> Task:
        """A random training task (used by ``reset``)."""

    @abstractmethod
    def score_one(self, task: Task, reply: str) -> tuple[float, dict[str, Any]]:
        """Reward for ``reply`` to ``task`` and the parts of the score."""

    @abstractmethod
    def demonstrations(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """SFT rows in TRL's conversational prompt-completion format (plus metadata columns)."""

    @abstractmethod
    def eval_tasks(self, n: int, seed: int = 0) -> Sequence[Task]:
        """Held-out tasks for in-domain evaluation, never used for training."""

    def in_domain_metrics(
        self, infos: list[dict[str, Any]]
    ) -> list[tuple[str, tuple[float, float, float], int]]:
        """Framing-independent summaries of ``score_one`` infos for held-out replies, as
        ``(metric, (value, ci_low, ci_high), n)``: what the ``in_domain`` probe reports. The
        reward itself depends on the framing's target, so it is not one of them."""
        return []

    def describe(self) -> dict[str, Any]:
        """A summary for ``intentgym list``."""
        return {"framings": list(self.framings)}
