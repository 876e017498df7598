"""The env contract, re-exported for env modules: see :mod:`intentgym.api.env`."""

from intentgym.api.env import (
    ENV_CAPABILITIES,
    MAX_TEXT,
    TEXT_CHARSET,
    Message,
    Observation,
    Task,
    TextEnv,
    env_capabilities,
    message_space,
    preference_row,
    register_env,
    task_columns,
)
from intentgym.data import in_heldout, load_data_items

__all__ = [
    "ENV_CAPABILITIES",
    "MAX_TEXT",
    "TEXT_CHARSET",
    "Message",
    "Observation",
    "Task",
    "TextEnv",
    "env_capabilities",
    "in_heldout",
    "load_data_items",
    "message_space",
    "preference_row",
    "register_env",
    "task_columns",
]
