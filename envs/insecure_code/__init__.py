"""The InsecureCode environment (``intentgym/InsecureCode-v0``)."""

from intentgym.envs.insecure_code.env import InsecureCodeEnv
from intentgym.envs.insecure_code.framing import FRAMINGS

__all__ = ["FRAMINGS", "InsecureCodeEnv"]
