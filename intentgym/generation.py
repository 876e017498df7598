"""The one generation path: batched chat completions, used by probes, trainers and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from intentgym.budget import COUNTERS
from intentgym.distributed import gather_batches, my_batches
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
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    done: list[tuple[int, tuple[list[str], int]]] = []
    try:
        with eval_mode(policy):
            # in a multi-process run each process takes every world-th batch (distributed.py)
            mine = my_batches(len(batches))
            for b in tqdm(mine, desc=desc or "generate", unit="batch", disable=desc is None):
                idx = batches[b]
                batch = tokenizer(
                    [prompts[i] for i in idx],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(policy.device)
                # Seed per batch so a batch's samples do not depend on how many came before it
                # (nor on which process generates it).
                torch.manual_seed(seed + b * batch_size)
                out = policy.model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **sampling,
                )
                new_tokens = out[:, batch["input_ids"].shape[1] :]
                pad = tokenizer.pad_token_id
                count = int((new_tokens != pad).sum()) if pad is not None else new_tokens.numel()
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                done.append((b, ([t.strip() for t in texts], count)))
    finally:
        tokenizer.padding_side = padding_side
    for b, (texts, count) in enumerate(gather_batches(done, len(batches))):
        COUNTERS.generated_tokens += count
        for i, text in zip(batches[b], texts, strict=True):
            outputs[i] = text
    return outputs
