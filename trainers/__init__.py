"""Training phases and the registry that trainer configs name them from."""

from intentgym.trainers.phase import PHASES, Phase, PhaseContext
from intentgym.trainers.sft import SFTPhase, SFTPhaseConfig

__all__ = ["PHASES", "Phase", "PhaseContext", "SFTPhase", "SFTPhaseConfig"]

# Registered lazily: importing the registry does not import their modules.
PHASES.register("reward", "intentgym.trainers.reward:RewardPhase")
PHASES.register("best_of_n", "intentgym.trainers.best_of_n:BestOfNPhase")
PHASES.register("rl", "intentgym.trainers.rl:RLPhase")
PHASES.register("sl_cai", "intentgym.trainers.cai:SLCAIPhase")
PHASES.register("ai_feedback", "intentgym.trainers.cai:AIFeedbackPhase")
PHASES.register("spec_sft", "intentgym.trainers.deliberative:SpecSFTPhase")
PHASES.register("steer_distill", "intentgym.trainers.steer_distill:SteerDistillPhase")
