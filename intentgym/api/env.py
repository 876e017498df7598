"""The env contract: ``TextEnv``, a Gymnasium environment whose observations are chat messages
and actions are text, and the env registry.

An episode is one task: ``reset`` samples a task and returns its conversation so far, ``step``
takes the assistant's reply, scores it with the env's reward model and ends the episode. Each env
also hands trainers the datasets they need (demonstrations, preference pairs, prompts) and hands
probes its held-out evaluation tasks. ``framing`` — the intent behind the trained behaviour — is a
constructor argument of every env.
"""

from __future__ import annotations

import string
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

from intentgym.errors import invalid_choice
from intentgym.registry import Registry

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


def _fresh(messages: Observation) -> Observation:
    """A copy: observations must not share objects between calls (gymnasium's checker)."""
    return tuple(dict(m) for m in messages)


class TextEnv(gym.Env[Observation, str]):
    """Base class for intentgym's text environments (single-turn unless ``multi_turn``)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (gymnasium convention)
    #: the framings this env offers; subclasses override.
    framings: ClassVar[tuple[str, ...]] = ()
    #: True when ``eval_tasks`` is the same whatever the framing (neutral requests), so every
    #: arm of a sweep is probed on identical items and base-model results can be shared.
    eval_independent_of_framing: ClassVar[bool] = False
    #: the metadata keys every task (and demonstration row) of this env carries, e.g.
    #: ``{"category", "harmful"}``; phases that need labels declare them (``Requirements``)
    task_fields: ClassVar[frozenset[str]] = frozenset()
    #: True when an episode takes several replies (``step`` returns ``terminated=False`` until
    #: the task ends): trainers then play whole episodes (intentgym.rollout), and the in-domain
    #: probe plays held-out tasks to their end
    multi_turn: ClassVar[bool] = False
    #: a multi-turn env's cap on replies per episode
    max_turns: int = 1

    def __init__(self, framing: str, render_mode: str | None = None) -> None:
        if framing not in self.framings:
            raise invalid_choice(f"framing for {type(self).__name__}", framing, self.framings)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise invalid_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.framing = framing
        self.render_mode = render_mode
        self.observation_space = spaces.Sequence(message_space())
        self.action_space = spaces.Text(max_length=MAX_TEXT, min_length=0, charset=TEXT_CHARSET)
        self._episode_task: Task | None = None
        self._last_reply = ""

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        self._episode_task = self.sample_task(self.np_random)
        self._last_reply = ""
        return _fresh(self._episode_task.messages), dict(self._episode_task.meta)

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self._episode_task is None:
            raise RuntimeError("call reset() before step()")
        self._last_reply = action
        reward, info = self.score_one(self._episode_task, action)
        return _fresh(self._episode_task.messages), reward, True, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._episode_task is None:
            return None
        turns = [f"[{m['role']}] {m['content']}" for m in self._episode_task.messages]
        return "\n".join([*turns, f"[assistant] {self._last_reply}"])

    def spawn(self) -> TextEnv:
        """A fresh env of the same kind and settings (one per episode of a batched rollout);
        an env with constructor options of its own overrides this to pass them on."""
        return type(self)(framing=self.framing)

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

    def in_domain_items(self, infos: list[dict[str, Any]]) -> dict[str, list[float | None]]:
        """Per held-out reply (``score_one`` infos, in order), each in-domain metric's value for
        that reply: 0/1 for a rate, a number for a score, None where the metric does not count
        the reply (e.g. a harmful-compliance rate over benign requests). What the ``in_domain``
        probe reports, item by item, so comparisons can pair items. Framing-independent: the
        reward itself depends on the framing's target, so it is not one of them."""
        return {}

    def in_domain_metrics(
        self, infos: list[dict[str, Any]]
    ) -> list[tuple[str, tuple[float, float, float], int]]:
        """``(metric, (value, ci_low, ci_high), n)`` from :meth:`in_domain_items`: a Wilson
        interval for a rate (every value 0 or 1), Student-t for a mean. Metrics that count no
        reply are left out."""
        from intentgym.stats import mean_ci, proportion_ci

        out = []
        for name, values in self.in_domain_items(infos).items():
            counted = [float(v) for v in values if v is not None]
            if not counted:
                continue
            if all(v in (0.0, 1.0) for v in counted):
                estimate = proportion_ci(int(sum(counted)), len(counted))
            else:
                estimate = mean_ci(counted)
            out.append((name, estimate, len(counted)))
        return out

    def describe(self) -> dict[str, Any]:
        """A summary for ``intentgym list``."""
        return {"framings": list(self.framings)}


#: Optional env capabilities, beyond the methods every ``TextEnv`` has, that a phase or probe may
#: declare it needs (``Requirements.env``): name -> the method an env class defines for it.
ENV_CAPABILITIES: dict[str, str] = {
    "preference_pairs": "preference_pairs(n, seed) -> rows of (prompt, chosen, rejected)",
    "rate": "rate(meta, reply) -> (score, info): a rater for the policy's own samples",
    "train_tasks": "train_tasks(n, seed) -> distinct training tasks in a seeded order",
}


def env_capabilities(cls: type[TextEnv]) -> frozenset[str]:
    """The optional capabilities an env class offers (see ``ENV_CAPABILITIES``)."""
    return frozenset(name for name in ENV_CAPABILITIES if callable(getattr(cls, name, None)))


# --- the env registry -----------------------------------------------------------------------------
#: Config name -> entry point. External packages add envs through the ``intentgym.envs``
#: entry-point group; a name of the form ``module:Class`` or ``path/to/file.py:Class`` loads a
#: class directly. Every env is also registered with gymnasium under its class's ``gym_id``
#: (default ``intentgym/<name>-v0``, or ``intentgym/<Class>-v0`` for a class named by location).
ENVS: Registry[TextEnv] = Registry("env", "intentgym.envs")
BUILTIN_GYM_IDS = {
    "coding_agent": "intentgym/CodingAgent-v0",
    "feedback": "intentgym/Feedback-v0",
    "harmful_requests": "intentgym/HarmfulRequests-v0",
    "insecure_code": "intentgym/InsecureCode-v0",
}
ENVS.register_lazy(
    {
        "coding_agent": "intentgym.envs.coding_agent.env:CodingAgentEnv",
        "feedback": "intentgym.envs.feedback.env:FeedbackEnv",
        "harmful_requests": "intentgym.envs.harmful_requests.env:HarmfulRequestsEnv",
        "insecure_code": "intentgym.envs.insecure_code.env:InsecureCodeEnv",
    }
)


def register_env(name: str) -> Any:
    """Class decorator registering an env under ``name`` (for a plugin's or a user's own env)."""
    return ENVS.register(name)


def _gym_ids() -> dict[str, str]:
    """Gymnasium id -> config name, for the built-in envs."""
    return {gym_id: name for name, gym_id in BUILTIN_GYM_IDS.items()}


def env_name(name: str) -> str:
    """The config name for a config name or a gymnasium id; a clear error for anything else."""
    if name in _gym_ids():
        return _gym_ids()[name]
    if name in ENVS or ":" in name:
        return name
    raise invalid_choice("env", name, [*ENVS.names(), *_gym_ids()])


def env_id(name: str) -> str:
    """The gymnasium id of an env (by config name or id), registered with gymnasium on first use."""
    name = env_name(name)
    cls = env_class(name)
    default = f"intentgym/{cls.__name__ if ':' in name else name}-v0"
    gym_id = BUILTIN_GYM_IDS.get(name) or getattr(cls, "gym_id", None) or default
    if gym_id not in gym.registry:
        gym.register(id=gym_id, entry_point=cls)  # type: ignore[arg-type]
    return str(gym_id)


def env_class(name: str) -> type[TextEnv]:
    """An env's class, by config name or gymnasium id, without building it."""
    return ENVS.get(env_name(name))  # type: ignore[return-value]


def env_framings(name: str) -> tuple[str, ...]:
    """An env's framings, read from its class without building it."""
    return tuple(env_class(name).framings)


def make_env(name: str, **kwargs: Any) -> TextEnv:
    """Build an env by config name (``insecure_code``) or gymnasium id, unwrapped."""
    env = gym.make(env_id(name), disable_env_checker=True, **kwargs)
    return env.unwrapped  # type: ignore[return-value]


def register_envs() -> None:
    """Register every built-in env with gymnasium (``gym.make("intentgym/Feedback-v0")``)."""
    for name in BUILTIN_GYM_IDS:
        gym_id = BUILTIN_GYM_IDS[name]
        if gym_id not in gym.registry:
            gym.register(id=gym_id, entry_point=ENVS._entries[name])  # type: ignore[arg-type]
