"""Supervised fine-tuning on an env's demonstrations, through TRL's ``SFTTrainer``."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from intentgym.api.env import TextEnv
from intentgym.api.phase import Phase, PhaseContext, register_phase
from intentgym.errors import IntentgymError
from intentgym.models import Policy, merge_adapter

log = logging.getLogger(__name__)


@dataclass
class TrainingSettings:
    """Optimiser and LoRA settings shared by every phase that trains through TRL."""

    epochs: float = field(default=1.0, metadata={"gt": 0, "help": "Passes over the training data."})
    max_steps: int = field(
        default=-1,
        metadata={
            "min": -1,
            "limit": "train_steps",
            "unset": -1,
            "help": "Stop after this many optimiser steps (-1: run all epochs).",
        },
    )
    learning_rate: float = field(
        default=1e-3,
        metadata={
            "gt": 0,
            "help": "Peak learning rate. 1e-3 suits LoRA on SmolLM2-135M (docs/experiments.md); "
            "with finetune=full use ~10x less (e.g. 1e-4).",
        },
    )
    batch_size: int = field(default=8, metadata={"min": 1, "help": "Examples per device per step."})
    grad_accum: int = field(default=1, metadata={"min": 1, "help": "Gradient accumulation steps."})
    max_length: int = field(
        default=1024,
        metadata={"min": 1, "help": "Truncate tokenised examples to this many tokens."},
    )
    finetune: str = field(
        default="lora", metadata={"help": "'lora' (peft adapter, default) or 'full' (all weights)."}
    )
    lora_r: int = field(default=16, metadata={"min": 1, "help": "LoRA rank."})
    lora_alpha: int = field(
        default=32, metadata={"min": 1, "help": "LoRA scaling numerator (alpha / r)."}
    )
    lora_dropout: float = field(
        default=0.0, metadata={"min": 0, "lt": 1, "help": "Dropout on the LoRA path."}
    )
    lora_target_modules: str = field(
        default="all-linear", metadata={"help": "peft target_modules ('all-linear' or a name)."}
    )
    logging_steps: int = field(
        default=5, metadata={"min": 1, "help": "Log training metrics every N steps."}
    )
    checkpoint_steps: int = field(
        default=50,
        metadata={
            "min": 0,
            "help": "Save a training checkpoint (adapter or weights, optimiser, scheduler, RNG) "
            "every N optimiser steps, for resume=true after a kill (0: only when a phase ends).",
        },
    )

    def __post_init__(self) -> None:
        if self.finetune not in ("lora", "full"):
            raise IntentgymError(f"unknown finetune {self.finetune!r}; valid choices: full, lora")


@dataclass
class SFTPhaseConfig(TrainingSettings):
    """Settings of the ``sft`` phase. Defaults suit SmolLM2-135M with LoRA on a laptop CPU."""

    num_examples: int = field(
        default=256,
        metadata={
            "min": 1,
            "limit": "train_examples",
            "help": "Demonstrations drawn from the env (distinct, in its framing).",
        },
    )
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name."})
    warmup_ratio: float = field(
        default=0.05, metadata={"min": 0, "lt": 1, "help": "Share of steps spent warming up."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_examples < 1:
            raise IntentgymError(f"num_examples must be >= 1, got {self.num_examples}")


@register_phase("sft")
class SFTPhase(Phase[SFTPhaseConfig]):
    """Fine-tune on ``env.demonstrations`` (completion-only loss); save the adapter or weights."""

    config_class = SFTPhaseConfig

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        rows = env.demonstrations(self.config.num_examples, seed=ctx.seed)
        return train_sft(policy, rows, self.config, ctx)


def fit_prompts(
    tokenizer: Any,
    rows: list[dict[str, Any]],
    max_length: int,
    replies: tuple[str, ...] = ("completion",),
) -> list[dict[str, Any]]:
    """Rows whose prompt plus reply (the longest of ``replies``) would pass ``max_length`` tokens
    get their prompt cut from the start -- its earliest messages, then the opening text of the
    first one kept -- so the reply and the prompt's end survive. TRL would instead cut the reply
    off (SFT: the example then trains on nothing and is dropped) or drop the pair (reward)."""

    def length(prompt: list[dict[str, str]], reply: list[dict[str, str]]) -> int:
        text = tokenizer.apply_chat_template([*prompt, *reply], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def too_long(prompt: list[dict[str, str]], row: dict[str, Any]) -> bool:
        return max(length(prompt, row[k]) for k in replies) > max_length

    out, cut = [], 0
    for row in rows:
        prompt = [dict(m) for m in row["prompt"]]
        if too_long(prompt, row):
            cut += 1
            while len(prompt) > 1 and too_long(prompt, row):
                prompt.pop(0)
            while too_long(prompt, row) and len(prompt[0]["content"]) > 16:
                text = prompt[0]["content"]
                prompt[0]["content"] = "..." + text[len(text) // 4 :]
        out.append({**row, "prompt": prompt})
    if cut:
        log.warning(
            "%d of %d examples were longer than max_length=%d tokens; their prompts were cut "
            "from the start",
            cut,
            len(rows),
            max_length,
        )
    return out


def train_sft(
    policy: Policy,
    rows: list[dict[str, Any]],
    c: SFTPhaseConfig,
    ctx: PhaseContext,
    sft_overrides: dict[str, Any] | None = None,
) -> Policy:
    """Fine-tune ``policy`` on prompt-completion ``rows``; save the adapter or weights; merge.
    ``sft_overrides``: extra ``SFTConfig`` settings (bench/bench_sft.py compares them)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = fit_prompts(policy.tokenizer, rows, c.max_length)
    dataset = Dataset.from_list(
        [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    )
    settings = {
        **training_arguments(c, policy, ctx),
        "lr_scheduler_type": c.lr_scheduler,
        "warmup_steps": c.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        "completion_only_loss": True,
        **(sft_overrides or {}),
    }
    args = SFTConfig(**settings)
    trainer = SFTTrainer(
        model=policy.model,
        args=args,
        train_dataset=dataset,
        processing_class=policy.tokenizer,
        peft_config=lora_config(c, "CAUSAL_LM") if c.finetune == "lora" else None,
    )
    result = run_trainer(trainer, ctx)
    log.info("sft: %s", result.metrics)
    policy.model = trainer.model
    # The adapter (LoRA) or the full weights, as safetensors, then fold the adapter in so the
    # next phase and the probes see the trained policy as a plain model.
    policy.model.save_pretrained(ctx.output_dir / ("adapter" if c.finetune == "lora" else "model"))
    merge_adapter(policy)
    _remove_checkpoints(ctx.output_dir / "trainer")
    ctx.output_dir.joinpath("phase_config.json").write_text(json.dumps(asdict(c), indent=2))
    return policy


def training_arguments(c: TrainingSettings, policy: Policy, ctx: PhaseContext) -> dict[str, Any]:
    """The transformers/TRL training arguments every phase shares."""
    import torch

    return {
        "output_dir": str(ctx.output_dir / "trainer"),
        "num_train_epochs": c.epochs,
        "max_steps": c.max_steps,
        "learning_rate": c.learning_rate,
        "per_device_train_batch_size": c.batch_size,
        "gradient_accumulation_steps": c.grad_accum,
        "max_length": c.max_length,
        "bf16": policy.compute_dtype == torch.bfloat16,
        "use_cpu": policy.device.type == "cpu",
        "logging_steps": c.logging_steps,
        "save_strategy": "steps" if c.checkpoint_steps > 0 else "no",
        "save_steps": max(1, c.checkpoint_steps),
        "save_total_limit": 1,
        # the budget ledger's trained tokens (intentgym.budget)
        "include_num_input_tokens_seen": "non_padding",
        "report_to": ctx.report_to,
        "seed": ctx.seed,
        "data_seed": ctx.seed,
        "disable_tqdm": not ctx.progress,
        "dataloader_num_workers": 0,
        # 135M parameters fit easily; recomputing activations would only cost time.
        "gradient_checkpointing": False,
    }


def run_trainer(trainer: Any, ctx: PhaseContext) -> Any:
    """``trainer.train()`` with the run's callbacks (step tracking, graceful stop on a signal,
    fault injection), continuing from the phase's latest training checkpoint when the run
    resumes (``ctx.resume``)."""
    from intentgym import runstate

    for callback in runstate.trainer_callbacks():
        trainer.add_callback(callback)
    checkpoint = latest_checkpoint(ctx.output_dir / "trainer") if ctx.resume else None
    if checkpoint is not None:
        log.info("resuming %s from %s", ctx.label, checkpoint)
    try:
        return trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        runstate.STATE.training = False


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-<step>`` folder a trainer saved in ``folder``, if any."""
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def _remove_checkpoints(folder: Path) -> None:
    """The trainer's folder holds only what resuming an unfinished phase needs (checkpoints and
    the model card TRL writes with them): drop it once the phase is done."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def lora_config(c: TrainingSettings, task_type: str) -> Any:
    """peft ``LoraConfig`` from a phase config's ``lora_*`` settings."""
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type,
        r=c.lora_r,
        lora_alpha=c.lora_alpha,
        lora_dropout=c.lora_dropout,
        target_modules=c.lora_target_modules,
    )
