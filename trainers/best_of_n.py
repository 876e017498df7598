"""The ``best_of_n`` phase: rejection-sampling fine-tuning against the run's reward model.

For each of ``num_examples`` env prompts, sample ``samples_per_prompt`` completions from the
current policy, score them with the run's ``reward_model`` (any registry entry or plugin, called
with TRL's reward-function signature and the task's metadata as keyword columns, as TRL's online
trainers do), keep the best one (optionally only if it reaches ``min_reward``), and fine-tune on
the kept pairs with the ``sft`` phase's trainer. This is the rejection-sampling step of Llama 2's
RLHF and of expert iteration / RAFT: the cheapest way to optimise against a reward model, and a
useful baseline for the online RL phases.

Writes ``samples.jsonl`` (every sample with its reward and whether it was kept) and reports the
mean reward of all samples and of the kept ones under this phase in results.jsonl.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from intentgym.api.env import TextEnv, task_columns
from intentgym.api.phase import Phase, PhaseContext, register_phase, result_row
from intentgym.api.requirements import Requirements
from intentgym.errors import IntentgymError
from intentgym.generation import generate
from intentgym.models import Policy
from intentgym.stats import mean_ci
from intentgym.trainers.sft import SFTPhaseConfig, train_sft

log = logging.getLogger(__name__)


@dataclass
class BestOfNPhaseConfig(SFTPhaseConfig):
    """Settings of the ``best_of_n`` phase (plus every ``sft`` setting for the fine-tuning)."""

    num_examples: int = field(
        default=64,
        metadata={
            "min": 1,
            "limit": "train_examples",
            "help": "Env prompts to sample for (at most one example each).",
        },
    )
    samples_per_prompt: int = field(
        default=4, metadata={"min": 2, "help": "Completions per prompt (N)."}
    )
    temperature: float = field(
        default=1.0, metadata={"min": 0, "help": "Sampling temperature (> 0)."}
    )
    top_p: float = field(
        default=1.0, metadata={"gt": 0, "max": 1, "help": "Nucleus sampling threshold."}
    )
    max_new_tokens: int = field(
        default=192,
        metadata={"min": 1, "limit": "max_new_tokens", "help": "Length cap per completion."},
    )
    generation_batch_size: int = field(
        default=32, metadata={"min": 1, "limit": "batch_size", "help": "Prompts per generate call."}
    )
    min_reward: float | None = field(
        default=None, metadata={"help": "Keep the best sample only if its reward reaches this."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples_per_prompt < 2:
            raise IntentgymError(f"samples_per_prompt must be >= 2, got {self.samples_per_prompt}")
        if self.temperature <= 0:
            raise IntentgymError(f"temperature must be > 0 to sample, got {self.temperature}")


@register_phase("best_of_n")
class BestOfNPhase(Phase[BestOfNPhaseConfig]):
    """Sample N completions per prompt, keep the reward model's best, fine-tune on those."""

    config_class = BestOfNPhaseConfig

    def requirements(self) -> Requirements:
        return Requirements(reward_model=True)

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        reward_model = ctx.reward_model(ctx.label or "best_of_n")
        rng = np.random.default_rng(ctx.seed)
        tasks = [env.sample_task(rng) for _ in range(c.num_examples)]
        conversations = [list(t.messages) for t in tasks for _ in range(c.samples_per_prompt)]
        completions = generate(
            policy,
            conversations,
            max_new_tokens=c.max_new_tokens,
            temperature=c.temperature,
            top_p=c.top_p,
            batch_size=c.generation_batch_size,
            seed=ctx.seed,
            desc="best_of_n: sample" if ctx.progress else None,
        )
        columns = task_columns(tasks, repeat=c.samples_per_prompt)
        raw = reward_model(
            conversations, [[{"role": "assistant", "content": x}] for x in completions], **columns
        )
        if len(raw) != len(completions):
            raise IntentgymError(
                f"reward model returned {len(raw)} scores for {len(completions)} completions"
            )
        # None (unscored) becomes NaN: never the best sample, never averaged.
        rewards = [math.nan if r is None else float(r) for r in raw]

        rows, records, kept_rewards = [], [], []
        for i, task in enumerate(tasks):
            span = range(i * c.samples_per_prompt, (i + 1) * c.samples_per_prompt)
            scored = [j for j in span if not math.isnan(rewards[j])]
            best = max(scored, key=lambda j: rewards[j]) if scored else None
            keep = best is not None and (c.min_reward is None or rewards[best] >= c.min_reward)
            if best is not None and keep:
                answer = [{"role": "assistant", "content": completions[best]}]
                rows.append({"prompt": list(task.messages), "completion": answer})
                kept_rewards.append(rewards[best])
            for j in span:
                records.append(
                    {
                        "prompt_index": i,
                        "completion": completions[j],
                        "reward": raw[j],
                        "kept": keep and j == best,
                    }
                )
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        with (ctx.output_dir / "samples.jsonl").open("w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        all_scored = [r for r in rewards if not math.isnan(r)]
        ctx.results += [
            result_row("best_of_n", "mean_reward_all", mean_ci(all_scored), len(all_scored)),
            result_row("best_of_n", "mean_reward_kept", mean_ci(kept_rewards), len(kept_rewards)),
        ]
        if not rows:
            raise IntentgymError(
                f"best_of_n kept no samples (min_reward={c.min_reward}); "
                f"the best reward was {max(all_scored, default=float('nan')):.3f}"
            )
        log.info(
            "best_of_n: kept %d/%d prompts; mean reward all %.3f, kept %.3f",
            len(rows),
            len(tasks),
            np.mean(all_scored),
            np.mean(kept_rewards),
        )
        return train_sft(policy, rows, c, ctx)
