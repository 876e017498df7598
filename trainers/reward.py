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

from intentgym.envs.base import TextEnv
from intentgym.errors import IntentgymError
from intentgym.models import Policy
from intentgym.probes.stats import mean_ci, proportion_ci
from intentgym.trainers.phase import PHASES, PhaseContext
from intentgym.trainers.sft import (
    TrainingSettings,
    _remove_if_empty,
    lora_config,
    training_arguments,
)

log = logging.getLogger(__name__)


@dataclass
class RewardPhaseConfig(TrainingSettings):
    """Settings of the ``reward`` phase (plus the shared optimiser and LoRA settings)."""

    num_pairs: int = field(default=256, metadata={"help": "Preference pairs drawn from the env."})
    eval_fraction: float = field(
        default=0.2, metadata={"help": "Share of pairs held out to measure pairwise accuracy."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_pairs < 2:
            raise IntentgymError(f"num_pairs must be >= 2, got {self.num_pairs}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise IntentgymError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")


@PHASES.register("reward")
class RewardPhase:
    """Train a learned reward model on the env's preference pairs; keep the policy unchanged."""

    config_class = RewardPhaseConfig
    #: the runner does not re-probe an unchanged policy after this phase
    changes_policy = False

    def __init__(self, config: RewardPhaseConfig) -> None:
        self.config = config

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        if not hasattr(env, "preference_pairs"):
            raise IntentgymError(
                f"phase 'reward' needs an env with preference pairs; {type(env).__name__} has none"
            )
        c = self.config
        rows = env.preference_pairs(c.num_pairs, seed=ctx.seed)
        train, held_out = split_pairs(rows, c.eval_fraction, ctx.seed)
        out = ctx.output_dir / "reward_model"
        train_reward_model(policy, train, c, ctx, out)
        margins = pairwise_margins(str(out), held_out, policy)
        accuracy = proportion_ci(sum(m > 0 for m in margins), len(margins))
        ctx.results += [
            _row("pairwise_accuracy", *accuracy, len(margins)),
            _row("mean_margin", *mean_ci(margins), len(margins)),
        ]
        log.info("reward model: held-out pairwise accuracy %.3f (n=%d)", accuracy[0], len(margins))
        ctx.artifacts["reward_model"] = str(out)
        ctx.output_dir.joinpath("phase_config.json").write_text(json.dumps(asdict(c), indent=2))
        return policy


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
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pairs),
        processing_class=policy.tokenizer,
        peft_config=lora_config(c, "SEQ_CLS") if c.finetune == "lora" else None,
    )
    result = trainer.train()
    log.info("reward: %s", result.metrics)
    trained: Any = trainer.model
    if hasattr(trained, "merge_and_unload"):
        trained = trained.merge_and_unload()
    if out.exists():
        shutil.rmtree(out)
    trained.save_pretrained(out, safe_serialization=True)
    policy.tokenizer.save_pretrained(out)
    _remove_if_empty(ctx.output_dir / "trainer")


def pairwise_margins(path: str, pairs: list[dict[str, Any]], policy: Policy) -> list[float]:
    """score(chosen) - score(rejected) for each pair, by the saved reward model at ``path``."""
    from intentgym.reward_models import REWARD_MODELS

    dtype = str(policy.compute_dtype).removeprefix("torch.")
    rm = REWARD_MODELS.build("learned", path=path, dtype=dtype, device=str(policy.device))
    prompts = [p["prompt"] for p in pairs]
    chosen = rm(prompts, [p["chosen"] for p in pairs])
    rejected = rm(prompts, [p["rejected"] for p in pairs])
    return [float(a) - float(b) for a, b in zip(chosen, rejected, strict=True)]  # type: ignore[arg-type]


def _row(metric: str, value: float, low: float, high: float, n: int) -> dict[str, Any]:
    return {
        "probe": "reward_model",
        "metric": metric,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "n": n,
    }
