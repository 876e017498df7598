"""Text environments. Importing this package registers every env with gymnasium."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from intentgym.envs.base import Task, TextEnv
from intentgym.envs.chat_jsonl import load_chat_jsonl
from intentgym.errors import invalid_choice

#: config name -> (gymnasium id, entry point)
ENVS: dict[str, tuple[str, str]] = {
    "feedback": ("intentgym/Feedback-v0", "intentgym.envs.feedback.env:FeedbackEnv"),
    "harmful_requests": (
        "intentgym/HarmfulRequests-v0",
        "intentgym.envs.harmful_requests.env:HarmfulRequestsEnv",
    ),
    "insecure_code": (
        "intentgym/InsecureCode-v0",
        "intentgym.envs.insecure_code.env:InsecureCodeEnv",
    ),
}


def register_envs() -> None:
    for env_id, entry_point in ENVS.values():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


def env_id(name: str) -> str:
    """The gymnasium id for a config name or an id; a clear error for anything else."""
    ids = {env_id for env_id, _ in ENVS.values()}
    if name in ids:
        return name
    if name in ENVS:
        return ENVS[name][0]
    raise invalid_choice("env", name, [*ENVS, *ids])


def env_class(name: str) -> type[TextEnv]:
    """An env's class, by config name or id, without building it."""
    entry = gym.spec(env_id(name)).entry_point
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry  # type: ignore[return-value]


def env_framings(name: str) -> tuple[str, ...]:
    """An env's framings, read from its class without building it."""
    return tuple(env_class(name).framings)


def make_env(name: str, **kwargs: Any) -> TextEnv:
    """Build an env by config name (``insecure_code``) or gymnasium id, unwrapped."""
    env = gym.make(env_id(name), disable_env_checker=True, **kwargs)
    return env.unwrapped  # type: ignore[return-value]


register_envs()

__all__ = [
    "ENVS",
    "Task",
    "TextEnv",
    "env_class",
    "env_framings",
    "env_id",
    "load_chat_jsonl",
    "make_env",
    "register_envs",
]
