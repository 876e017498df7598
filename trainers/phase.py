"""The phase contract, re-exported for phase modules: see :mod:`intentgym.api.phase`."""

from intentgym.api.artifacts import (
    Artifact,
    Artifacts,
    PreferencePairs,
    SampleJudge,
    SystemPrompt,
    TrainedRewardModel,
)
from intentgym.api.phase import (
    PHASES,
    Phase,
    PhaseContext,
    phase_class,
    register_phase,
    result_row,
)
from intentgym.api.requirements import Requirements

__all__ = [
    "PHASES",
    "Artifact",
    "Artifacts",
    "Phase",
    "PhaseContext",
    "PreferencePairs",
    "Requirements",
    "SampleJudge",
    "SystemPrompt",
    "TrainedRewardModel",
    "phase_class",
    "register_phase",
    "result_row",
]
