"""The ``dpo`` phase: preference optimisation on preference pairs, through TRL (DPO or KTO).

The pairs come from exactly where the ``reward`` phase takes them (``pair_source``, shared code:
:func:`intentgym.trainers.reward.collect_pairs`): the policy's own samples ranked by the env's
rater, the env's fixed preference pairs, or the pairs an earlier phase labelled (RL-CAI's AI
feedback, as DPO -- the alignment-handbook recipe). So "reward model + RL" (``trainer=rlhf``)
and "DPO" (``trainer=dpo``) can be run on the same pairs at the same budget.

``method``:

* ``dpo`` (Rafailov et al., 2023): TRL's ``DPOTrainer`` on (prompt, chosen, rejected).
* ``kto`` (Ethayarajh et al., 2024): TRL's ``KTOTrainer`` on unpaired (prompt, completion,
  desirable?) rows, for data that is not paired; pairs are split into one desirable and one
  undesirable row each.

With LoRA the reference model is the policy with the adapter switched off (no second copy).
A share of the pairs (``eval_fraction``, whole templates) is held out; the phase reports on them
the share whose implicit reward margin ``beta * [log-ratio(chosen) - log-ratio(rejected)]`` is
positive after training, and the mean margin -- under probe ``dpo`` in results.jsonl -- so a
run shows whether the preference was learned beyond the training pairs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from intentgym.api.env import TextEnv
from intentgym.api.phase import Phase, PhaseContext, register_phase, result_row
from intentgym.api.requirements import Requirements
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.models import Policy, merge_adapter
from intentgym.stats import mean_ci, proportion_ci
from intentgym.trainers.reward import (
    RewardPhaseConfig,
    collect_pairs,
    pair_requirements,
    split_pairs,
)
from intentgym.trainers.sft import _remove_checkpoints, lora_config, run_trainer, training_arguments

log = logging.getLogger(__name__)

METHODS = ("dpo", "kto")


@dataclass
class DPOPhaseConfig(RewardPhaseConfig):
    """Settings of the ``dpo`` phase: the pair settings of ``reward`` plus DPO's/KTO's own."""

    method: str = field(default="dpo", metadata={"help": "dpo (paired) | kto (unpaired rows)."})
    beta: float = field(
        default=0.1,
        metadata={"gt": 0, "help": "Strength of the pull towards the reference policy."},
    )
    loss_type: str = field(
        default="sigmoid",
        metadata={"help": "dpo: TRL loss_type (sigmoid = the DPO paper's, ipo, hinge, ...)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise invalid_choice("method", self.method, METHODS)
        if self.method == "kto" and self.batch_size < 2:
            raise IntentgymError(
                "method=kto needs batch_size >= 2 (its KL term pairs rows within a batch)"
            )


@register_phase("dpo")
class DPOPhase(Phase[DPOPhaseConfig]):
    """Preference optimisation (DPO or KTO) on the run's preference pairs."""

    config_class = DPOPhaseConfig

    def requirements(self) -> Requirements:
        return pair_requirements(self.config.pair_source)

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        rows = collect_pairs(policy, env, c, ctx)
        train, held_out = split_pairs(rows, c.eval_fraction, ctx.seed)
        before = pair_logprobs(policy, held_out)  # the reference policy's log-probabilities
        train_preferences(policy, train, c, ctx)
        after = pair_logprobs(policy, held_out)
        margins = [
            c.beta * ((ac - bc) - (ar - br))
            for (bc, br), (ac, ar) in zip(before, after, strict=True)
        ]
        accuracy = proportion_ci(sum(m > 0 for m in margins), len(margins))
        ctx.results += [
            result_row(c.method, "heldout_pair_accuracy", accuracy, len(margins)),
            result_row(c.method, "heldout_mean_margin", mean_ci(margins), len(margins)),
            result_row(c.method, "train_pairs", (len(train), len(train), len(train)), len(train)),
        ]
        log.info(
            "%s: held-out implicit-reward accuracy %.3f over %d pairs (%d trained on)",
            c.method,
            accuracy[0],
            len(margins),
            len(train),
        )
        ctx.output_dir.joinpath("phase_config.json").write_text(json.dumps(asdict(c), indent=2))
        return policy


def pair_logprobs(policy: Policy, pairs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(log P(chosen | prompt), log P(rejected | prompt)) under the policy, per pair."""
    from intentgym.generation import chat_prompts
    from intentgym.scoring import continuation_logprobs

    if not pairs:
        return []
    prompts = chat_prompts(policy, [p["prompt"] for p in pairs])
    chosen = [p["chosen"][-1]["content"] for p in pairs]
    rejected = [p["rejected"][-1]["content"] for p in pairs]
    scores = continuation_logprobs(policy, prompts * 2, chosen + rejected)
    return list(zip(scores[: len(pairs)], scores[len(pairs) :], strict=True))


def train_preferences(
    policy: Policy, pairs: list[dict[str, Any]], c: DPOPhaseConfig, ctx: PhaseContext
) -> None:
    """Train ``policy`` in place with TRL's DPOTrainer or KTOTrainer; save the adapter or
    weights under the phase dir; merge the adapter."""
    from datasets import Dataset

    data = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
    settings = training_arguments(c, policy, ctx)
    peft = lora_config(c, "CAUSAL_LM") if c.finetune == "lora" else None
    if c.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer: Any = DPOTrainer(
            model=policy.model,
            ref_model=None,  # LoRA: the adapter switched off; full: TRL copies the start model
            args=DPOConfig(**settings, beta=c.beta, loss_type=[c.loss_type]),
            train_dataset=Dataset.from_list(data),
            processing_class=policy.tokenizer,
            peft_config=peft,
        )
    else:
        from trl import KTOConfig, KTOTrainer

        unpaired = [
            {"prompt": p["prompt"], "completion": p[side], "label": side == "chosen"}
            for p in data
            for side in ("chosen", "rejected")
        ]
        trainer = KTOTrainer(
            model=policy.model,
            ref_model=None,
            args=KTOConfig(**settings, beta=c.beta),
            train_dataset=Dataset.from_list(unpaired),
            processing_class=policy.tokenizer,
            peft_config=peft,
        )
    result = run_trainer(trainer, ctx)
    log.info("%s: %s", c.method, result.metrics)
    policy.model = trainer.model
    policy.model.save_pretrained(ctx.output_dir / ("adapter" if c.finetune == "lora" else "model"))
    merge_adapter(policy)
    _remove_checkpoints(ctx.output_dir / "trainer")
