"""The one scoring path: log-probabilities of continuations given prompts.

Sequences are left-padded so every continuation ends at the last position, which lets the model
compute the (large-vocabulary) output layer only for the last few positions (``logits_to_keep``).
Position ids are derived from the attention mask so padding does not shift positions: a padded
row scores exactly as it would alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from intentgym.models import Policy, eval_mode


def continuation_logprobs(
    policy: Policy,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 16,
    desc: str | None = None,
) -> list[float]:
    """Sum of log P(continuation tokens | prompt) for each (prompt, continuation) pair.

    Prompt and continuation are tokenised separately and concatenated, as lm-evaluation-harness
    does, so the continuation's tokens are the same whatever the prompt ends with.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    tokenizer = policy.tokenizer
    rows: list[tuple[list[int], int]] = []
    for prompt, continuation in zip(prompts, continuations, strict=True):
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not c_ids:
            raise ValueError(f"continuation {continuation!r} tokenises to nothing")
        rows.append((p_ids + c_ids, len(c_ids)))

    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    scores = [0.0] * len(rows)
    pad = tokenizer.pad_token_id
    with eval_mode(policy):
        for start in tqdm(
            range(0, len(order), batch_size), desc=desc, unit="batch", disable=desc is None
        ):
            idx = order[start : start + batch_size]
            width = max(len(rows[i][0]) for i in idx)
            keep = max(rows[i][1] for i in idx) + 1
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                ids = rows[i][0]
                input_ids[r, width - len(ids) :] = torch.tensor(ids)
                mask[r, width - len(ids) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = policy.model(
                input_ids=input_ids.to(policy.device),
                attention_mask=mask.to(policy.device),
                position_ids=positions.to(policy.device),
                logits_to_keep=keep,
            ).logits.float()
            # logits[:, j] predicts token width-keep+j+1; the last position predicts nothing.
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, width - keep + 1 :].to(policy.device)
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for r, i in enumerate(idx):
                n = rows[i][1]
                scores[i] = float(token_lp[r, -n:].sum())
    return scores
