"""Training phases. The contract and the registry (built-ins listed lazily) live in
:mod:`intentgym.api.phase`; trainer configs (``conf/trainer/*.yaml``) name phases from it."""

from intentgym.api.phase import PHASES, Phase, PhaseContext
from intentgym.trainers.sft import SFTPhase, SFTPhaseConfig

__all__ = ["PHASES", "Phase", "PhaseContext", "SFTPhase", "SFTPhaseConfig"]
