"""Text environments. The contract and the registry live in :mod:`intentgym.api.env`; importing
this package registers every built-in env with gymnasium (``gym.make("intentgym/Feedback-v0")``)."""

from __future__ import annotations

from intentgym.api.env import (
    ENVS,
    Task,
    TextEnv,
    env_class,
    env_framings,
    env_id,
    make_env,
    register_env,
    register_envs,
)
from intentgym.envs.chat_jsonl import load_chat_jsonl

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
    "register_env",
    "register_envs",
]
