"""The one generation path: batched chat completions, used by probes, trainers and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from intentgym.budget import COUNTERS
from intentgym.models import Policy, eval_mode

Messages = Sequence[dict[str, str]]


def chat_prompts(policy: Policy, conversations: Sequence[Messages]) -> list[str]:
    """Render conversations with the model's chat template, ready for the assistant's turn."""
    return [
        policy.tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
        for c in conversations
    ]


def generate(
    policy: Policy,
    conversations: Sequence[Messages],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
    desc: str | None = None,
) -> list[str]:
    """Complete each conversation with one assistant message (greedy when ``temperature == 0``).

    Prompts are sorted by length so batches waste little padding, then returned in input order.
    The result depends only on the inputs and ``seed``.
    """
    tokenizer = policy.tokenizer
    prompts = chat_prompts(policy, conversations)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if temperature > 0
        else {"do_sample": False}
    )
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        with eval_mode(policy):
            starts = range(0, len(order), batch_size)
            for start in tqdm(starts, desc=desc or "generate", unit="batch", disable=desc is None):
                idx = order[start : start + batch_size]
                batch = tokenizer(
                    [prompts[i] for i in idx],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(policy.device)
                # Seed per batch so a batch's samples do not depend on how many came before it.
                torch.manual_seed(seed + start)
                out = policy.model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **sampling,
                )
                new_tokens = out[:, batch["input_ids"].shape[1] :]
                pad = tokenizer.pad_token_id
                COUNTERS.generated_tokens += (
                    int((new_tokens != pad).sum()) if pad is not None else new_tokens.numel()
                )
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for i, text in zip(idx, texts, strict=True):
                    outputs[i] = text.strip()
    finally:
        tokenizer.padding_side = padding_side
    return outputs
