"""The ``reward`` phase: train a reward model on an env's preference pairs (TRL ``RewardTrainer``).

The reward model starts from the current policy (as in InstructGPT, where it starts from the SFT
model) with a one-output classification head, is trained with the Bradley-Terry loss on the
env's ``preference_pairs``, and is saved as a plain transformers folder under
``phases/<label>/reward_model``. Later phases of the run (RL) and ``reward_model=learned`` with
``path: null`` use it. The policy itself is returned unchanged.

Its pairwise accuracy on held-out pairs (the share where chosen outscores rejected; pairs from
the same task template are kept on one side of the split) is written to results.jsonl under this
phase, as probe ``reward_model``.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from intentgym.api.artifacts import PreferencePairs, TrainedRewardModel
from intentgym.api.env import TextEnv, preference_row
from intentgym.api.phase import Phase, PhaseContext, register_phase, result_row
from intentgym.api.requirements import Requirements
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.models import Policy
from intentgym.stats import mean_ci, proportion_ci
from intentgym.trainers.sft import (
    TrainingSettings,
    _remove_checkpoints,
    fit_prompts,
    lora_config,
    run_trainer,
    training_arguments,
)

log = logging.getLogger(__name__)

PAIR_SOURCES = ("auto", "samples", "env", "artifacts")


@dataclass
class RewardPhaseConfig(TrainingSettings):
    """Settings of the ``reward`` phase (plus the shared optimiser and LoRA settings)."""

    num_pairs: int = field(
        default=256,
        metadata={
            "min": 2,
            "limit": "train_examples",
            "help": "Preference pairs drawn from the env.",
        },
    )
    eval_fraction: float = field(
        default=0.2,
        metadata={
            "gt": 0,
            "lt": 1,
            "help": "Share of pairs held out to measure pairwise accuracy.",
        },
    )
    pair_source: str = field(
        default="auto",
        metadata={
            "help": "'samples': the policy's own samples ranked by the env's rater (env.rate), "
            "as in InstructGPT; 'env': the env's preference_pairs; 'artifacts': the pairs an "
            "earlier phase of the run labelled (e.g. ai_feedback); 'auto': artifacts when an "
            "earlier phase left pairs, else samples when the env has a rater, else env."
        },
    )
    samples_per_prompt: int = field(
        default=4, metadata={"min": 2, "help": "pair_source=samples: completions per prompt."}
    )
    min_margin: float = field(
        default=0.05,
        metadata={
            "min": 0,
            "help": "pair_source=samples: least rater-score gap for best vs worst to pair.",
        },
    )
    temperature: float = field(
        default=1.0, metadata={"min": 0, "help": "pair_source=samples: sampling."}
    )
    max_new_tokens: int = field(
        default=96,
        metadata={
            "min": 1,
            "limit": "max_new_tokens",
            "help": "pair_source=samples: length cap per completion.",
        },
    )
    generation_batch_size: int = field(
        default=32, metadata={"min": 1, "limit": "batch_size", "help": "Prompts per generate call."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_pairs < 2:
            raise IntentgymError(f"num_pairs must be >= 2, got {self.num_pairs}")
        if self.pair_source not in PAIR_SOURCES:
            raise invalid_choice("pair_source", self.pair_source, PAIR_SOURCES)
        if self.samples_per_prompt < 2:
            raise IntentgymError(f"samples_per_prompt must be >= 2, got {self.samples_per_prompt}")
        if self.temperature <= 0:
            raise IntentgymError(f"temperature must be > 0 to sample, got {self.temperature}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise IntentgymError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")


@register_phase("reward")
class RewardPhase(Phase[RewardPhaseConfig]):
    """Train a learned reward model on the env's preference pairs; keep the policy unchanged."""

    config_class = RewardPhaseConfig
    #: the runner does not re-probe an unchanged policy after this phase
    changes_policy = False
    produces = (TrainedRewardModel,)

    def requirements(self) -> Requirements:
        return pair_requirements(self.config.pair_source)

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        rows = collect_pairs(policy, env, c, ctx)
        train, held_out = split_pairs(rows, c.eval_fraction, ctx.seed)
        out = ctx.output_dir / "reward_model"
        train_reward_model(policy, train, c, ctx, out)
        margins = pairwise_margins(str(out), held_out, policy)
        accuracy = proportion_ci(sum(m > 0 for m in margins), len(margins))
        ctx.results += [
            result_row("reward_model", "pairwise_accuracy", accuracy, len(margins)),
            result_row("reward_model", "mean_margin", mean_ci(margins), len(margins)),
        ]
        log.info("reward model: held-out pairwise accuracy %.3f (n=%d)", accuracy[0], len(margins))
        ctx.artifacts.put(TrainedRewardModel(out, ctx.label or "reward"))
        ctx.output_dir.joinpath("phase_config.json").write_text(json.dumps(asdict(c), indent=2))
        return policy


def pair_requirements(source: str) -> Requirements:
    """What a phase that takes preference pairs from ``pair_source`` needs from the run."""
    if source == "artifacts":
        return Requirements(artifacts=(PreferencePairs,))
    if source == "samples":
        return Requirements(env=frozenset({"rate"}), hint="or use pair_source=env")
    if source == "env":
        return Requirements(env=frozenset({"preference_pairs"}))
    return Requirements(  # auto: labelled pairs, else the env's rater, else its pairs
        any_of=(
            Requirements(artifacts=(PreferencePairs,)),
            Requirements(env=frozenset({"rate"})),
            Requirements(env=frozenset({"preference_pairs"})),
        )
    )


def collect_pairs(
    policy: Policy, env: TextEnv, c: RewardPhaseConfig, ctx: PhaseContext
) -> list[dict[str, Any]]:
    """Preference pairs from ``c.pair_source`` (see :class:`RewardPhaseConfig`), in TRL's
    conversational format: the one place the ``reward`` and ``dpo`` phases get their pairs, so
    "reward model + RL" and "DPO" can train on the same pairs."""
    source = c.pair_source
    labelled = ctx.artifacts.get(PreferencePairs)
    if source == "auto":
        if labelled is not None and labelled.rows:
            source = "artifacts"
        elif hasattr(env, "rate"):
            try:
                return sampled_pairs(policy, env, c, ctx)
            except IntentgymError as e:
                if not hasattr(env, "preference_pairs"):
                    raise
                # e.g. a policy that solves no CodingAgent task: every sample scores 0
                log.warning("%s: %s; pair_source=auto falls back to the env's pairs", ctx.label, e)
                ctx.results.append(
                    result_row("reward_model", "fell_back_to_env_pairs", (1.0, 1.0, 1.0), 1)
                )
                source = "env"
        else:
            source = "env"
    if source == "artifacts":
        rows = list(labelled.rows) if labelled is not None else []
        if not rows:
            raise IntentgymError(
                f"{ctx.label} pair_source=artifacts needs an earlier phase that labels "
                "preference pairs (e.g. ai_feedback) in the same trainer"
            )
        return rows
    if source == "samples":
        return sampled_pairs(policy, env, c, ctx)
    if hasattr(env, "preference_pairs"):
        return list(env.preference_pairs(c.num_pairs, seed=ctx.seed))
    raise IntentgymError(
        f"phase {ctx.label!r} needs an env with preference pairs; {type(env).__name__} has "
        "none (pair_source=samples ranks the policy's samples with the env's rater)"
    )


def sampled_pairs(
    policy: Policy, env: TextEnv, c: RewardPhaseConfig, ctx: PhaseContext
) -> list[dict[str, Any]]:
    """Preference pairs from the policy's own samples: for each of ``num_pairs`` env prompts,
    ``samples_per_prompt`` completions ranked by the env's rater (``env.rate``); the best and
    the worst form a pair when their scores differ by at least ``min_margin``. Every sample and
    its score go to ``samples.jsonl``."""
    import numpy as np

    from intentgym.generation import generate

    if not hasattr(env, "rate"):
        raise IntentgymError(
            f"pair_source=samples needs an env with a rater (env.rate); {type(env).__name__} "
            "has none: use pair_source=env"
        )
    rng = np.random.default_rng(ctx.seed)
    tasks = [env.sample_task(rng) for _ in range(c.num_pairs)]
    k = c.samples_per_prompt
    completions = generate(
        policy,
        [t.messages for t in tasks for _ in range(k)],
        max_new_tokens=c.max_new_tokens,
        temperature=c.temperature,
        batch_size=c.generation_batch_size,
        seed=ctx.seed,
        desc="reward: sample" if ctx.progress else None,
    )
    pairs, records = [], []
    for i, task in enumerate(tasks):
        replies = completions[i * k : (i + 1) * k]
        scores = [env.rate(task.meta, r)[0] for r in replies]
        best, worst = int(np.argmax(scores)), int(np.argmin(scores))
        paired = scores[best] - scores[worst] >= c.min_margin
        if paired:
            pairs.append(preference_row(task, replies[best], replies[worst]))
        records += [
            {"prompt_index": i, "completion": r, "rater_score": s, "paired": paired}
            for r, s in zip(replies, scores, strict=True)
        ]
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    with (ctx.output_dir / "samples.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    log.info(
        "reward: %d/%d prompts gave a pair (margin >= %s)", len(pairs), len(tasks), c.min_margin
    )
    ctx.results.append(
        result_row(
            "reward_model", "paired_prompt_share", proportion_ci(len(pairs), len(tasks)), len(tasks)
        )
    )
    if len(pairs) < 2:
        raise IntentgymError(
            f"only {len(pairs)} of {len(tasks)} prompts gave a preference pair: the policy's "
            f"samples all scored alike (min_margin={c.min_margin}); raise temperature or "
            "samples_per_prompt, or lower min_margin"
        )
    return pairs


def split_pairs(
    rows: list[dict[str, Any]], eval_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and held-out pairs. Pairs that share a ``template_id`` (the same task with other
    slot values) stay on one side, so held-out accuracy is measured on unseen tasks."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for i, row in enumerate(rows):
        pair = {k: row[k] for k in ("prompt", "chosen", "rejected")}
        groups.setdefault(row.get("template_id", i), []).append(pair)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    target = max(1, round(len(rows) * eval_fraction))
    train: list[dict[str, Any]] = []
    held_out: list[dict[str, Any]] = []
    for key in keys:
        (held_out if len(held_out) < target else train).extend(groups[key])
    if not train:
        raise IntentgymError(
            f"eval_fraction={eval_fraction} leaves no training pairs ({len(rows)} pairs in "
            f"{len(groups)} groups)"
        )
    return train, held_out


def train_reward_model(
    policy: Policy, pairs: list[dict[str, Any]], c: RewardPhaseConfig, ctx: PhaseContext, out: Path
) -> None:
    """Train a sequence-classification copy of ``policy`` on ``pairs`` and save it to ``out``."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    # A copy of the current policy's weights with a fresh scalar head; the policy is untouched.
    with tempfile.TemporaryDirectory(prefix="intentgym-rm-") as tmp:
        policy.model.save_pretrained(tmp, safe_serialization=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            tmp, num_labels=1, dtype=torch.float32
        )
    model.config.pad_token_id = policy.tokenizer.pad_token_id
    model.to(policy.device)
    args = RewardConfig(**training_arguments(c, policy, ctx))
    pairs = fit_prompts(policy.tokenizer, pairs, c.max_length, ("chosen", "rejected"))
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pairs),
        processing_class=policy.tokenizer,
        peft_config=lora_config(c, "SEQ_CLS") if c.finetune == "lora" else None,
    )
    result = run_trainer(trainer, ctx)
    log.info("reward: %s", result.metrics)
    trained: Any = trainer.model
    if hasattr(trained, "merge_and_unload"):
        trained = trained.merge_and_unload()
    if out.exists():
        shutil.rmtree(out)
    trained.save_pretrained(out, safe_serialization=True)
    policy.tokenizer.save_pretrained(out)
    _remove_checkpoints(ctx.output_dir / "trainer")


def pairwise_margins(path: str, pairs: list[dict[str, Any]], policy: Policy) -> list[float]:
    """score(chosen) - score(rejected) for each pair, by the saved reward model at ``path``."""
    from intentgym.api.reward import REWARD_MODELS

    dtype = str(policy.compute_dtype).removeprefix("torch.")
    rm = REWARD_MODELS.build("learned", path=path, dtype=dtype, device=str(policy.device))
    prompts = [p["prompt"] for p in pairs]
    chosen = rm(prompts, [p["chosen"] for p in pairs])
    rejected = rm(prompts, [p["rejected"] for p in pairs])
    return [float(a) - float(b) for a, b in zip(chosen, rejected, strict=True)]  # type: ignore[arg-type]
