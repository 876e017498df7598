"""Training phases and the registry that trainer configs name them from."""

from intentgym.trainers.phase import PHASES, Phase, PhaseContext
from intentgym.trainers.sft import SFTPhase, SFTPhaseConfig

__all__ = ["PHASES", "Phase", "PhaseContext", "SFTPhase", "SFTPhaseConfig"]
