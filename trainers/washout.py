"""The ``washout`` phase: benign SFT after any method, to measure how durable its effect is.

Add it after the last phase of any trainer (a phase label's kind defaults to the label)::

    intentgym run trainer=sft env.framing=insecure_hidden +trainer.phases.washout.num_examples=64

It fine-tunes on another env's demonstrations -- by default HarmfulRequests-v0's benign
look-alike requests with their helpful answers, which no probe asks -- and the probes after it
show how much of the earlier phases' effect survives. ``intentgym report`` then gives, per metric,
the washout's Δ vs base next to the method's; the share retained is their ratio.

(examples/extending/washout.py is the same phase written as a user would outside the package:
the README's example of the phase contract.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from intentgym.api.env import TextEnv, env_framings, make_env
from intentgym.api.phase import Phase, PhaseContext, register_phase, result_row
from intentgym.errors import IntentgymError
from intentgym.models import Policy
from intentgym.trainers.sft import SFTPhaseConfig, train_sft


@dataclass
class WashoutConfig(SFTPhaseConfig):
    """Settings of the washout (plus every ``sft`` setting for the fine-tuning)."""

    source_env: str = field(
        default="harmful_requests", metadata={"help": "The env whose demonstrations wash out."}
    )
    source_framing: str | None = field(
        default=None, metadata={"help": "Its framing (None: the env's first)."}
    )
    benign_only: bool = field(
        default=True, metadata={"help": "Drop demonstrations labelled harmful (refusals)."}
    )


@register_phase("washout")
class WashoutPhase(Phase[WashoutConfig]):
    """Benign SFT on another env's demonstrations, to measure how durable an effect is."""

    config_class = WashoutConfig

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        framing = c.source_framing or env_framings(c.source_env)[0]
        source = make_env(c.source_env, framing=framing)
        # twice as many as needed, so that dropping the harmful half still leaves enough
        rows = source.demonstrations(2 * c.num_examples, seed=ctx.seed + 1)
        if c.benign_only:
            rows = [r for r in rows if not r.get("harmful", False)]
        rows = rows[: c.num_examples]
        if not rows:
            raise IntentgymError(f"washout: {c.source_env} gave no benign demonstrations")
        ctx.results.append(result_row("washout", "examples", (float(len(rows)),) * 3, len(rows)))
        return train_sft(policy, rows, c, ctx)
