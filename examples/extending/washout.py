"""Example phase (README, "Extending intentgym"): a washout -- benign SFT after any method.

How durable is what a method taught? A ``washout`` phase after it fine-tunes on demonstrations
from another env (by default HarmfulRequests-v0's benign look-alike requests and their helpful
answers), and the probes after it show how much of the earlier effect survives.

A phase is a :class:`intentgym.api.phase.Phase` with a dataclass config. It writes only under
``ctx.output_dir``; ``requirements()`` would declare what it needs from the run's env (this one
needs nothing of it: its data comes from ``source_env``). Used through
``examples/extending/conf/trainer/sft_washout.yaml``: ``intentgym run --config-dir
examples/extending/conf trainer=sft_washout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from intentgym.api.env import TextEnv, env_framings, make_env
from intentgym.api.phase import Phase, PhaseContext, result_row
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


class WashoutPhase(Phase[WashoutConfig]):
    """Benign SFT on another env's demonstrations, to measure how durable an effect is."""

    config_class = WashoutConfig

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config

        framing = c.source_framing or env_framings(c.source_env)[0]
        source = make_env(c.source_env, framing=framing)
        # twice as many as needed, so that dropping the harmful half still leaves enough
        rows = source.demonstrations(2 * c.num_examples, seed=ctx.seed)
        if c.benign_only:
            rows = [r for r in rows if not r.get("harmful", False)]
        rows = rows[: c.num_examples]
        if not rows:
            raise IntentgymError(f"washout: {c.source_env} gave no benign demonstrations")
        ctx.results.append(result_row("washout", "examples", (float(len(rows)),) * 3, len(rows)))
        return train_sft(policy, rows, c, ctx)
