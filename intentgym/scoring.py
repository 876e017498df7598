"""The one scoring path: log-probabilities of continuations given prompts.

Each distinct prompt is encoded once: its KV cache is reused for every continuation of that
prompt (forced-choice options share the question); every continuation but the last runs on its
own copy of the cache (``Cache.crop`` changed meaning between transformers releases, and copying
the K/V tensors costs little next to a forward pass). Prompts are left-padded with position ids derived from the attention mask, so a
padded row scores exactly as it would alone, and only the last position's logits are computed
for the prompt (the output layer over a 49k vocabulary is a large share of the cost).
"""

from __future__ import annotations

import copy
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
    index: dict[str, int] = {}
    prompt_ids: list[list[int]] = []
    groups: list[list[tuple[int, list[int]]]] = []  # per distinct prompt: (output slot, tokens)
    for i, (prompt, continuation) in enumerate(zip(prompts, continuations, strict=True)):
        if prompt not in index:
            index[prompt] = len(prompt_ids)
            prompt_ids.append(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            groups.append([])
        c_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not c_ids:
            raise ValueError(f"continuation {continuation!r} tokenises to nothing")
        groups[index[prompt]].append((i, c_ids))

    order = sorted(range(len(prompt_ids)), key=lambda u: len(prompt_ids[u]))
    scores = [0.0] * len(prompts)
    model, pad, device = policy.model, tokenizer.pad_token_id, policy.device
    with eval_mode(policy):
        for start in tqdm(
            range(0, len(order), batch_size), desc=desc, unit="batch", disable=desc is None
        ):
            batch = order[start : start + batch_size]
            width = max(len(prompt_ids[u]) for u in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, u in enumerate(batch):
                ids[r, width - len(prompt_ids[u]) :] = torch.tensor(prompt_ids[u])
                mask[r, width - len(prompt_ids[u]) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0).to(device)
            mask = mask.to(device)
            out = model(
                input_ids=ids.to(device),
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
            )
            first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts token 1
            cache = out.cache
            n_slots = max(len(groups[u]) for u in batch)
            for j in range(n_slots):
                rows = [(r, groups[u][j]) for r, u in enumerate(batch) if j < len(groups[u])]
                length = max(len(c) for _, (_, c) in rows)
                rest = None
                if length > 1:
                    # Feed all but the last continuation token on top of the cached prompt.
                    cont = torch.full((len(batch), length - 1), pad, dtype=torch.long)
                    cont_mask = torch.zeros((len(batch), length - 1), dtype=torch.long)
                    for r, (_, c) in rows:
                        cont[r, : len(c) - 1] = torch.tensor(c[:-1])
                        cont_mask[r, : len(c) - 1] = 1
                    step = torch.arange(1, length, device=device)
                    rest = torch.log_softmax(
                        model(
                            input_ids=cont.to(device),
                            attention_mask=torch.cat([mask, cont_mask.to(device)], dim=1),
                            position_ids=positions[:, -1:] + step,
                            cache=cache if j == n_slots - 1 else copy.deepcopy(cache),
                            use_cache=True,
                        ).logits.float(),
                        dim=-1,
                    )
                for r, (slot, c) in rows:
                    total = first[r, c[0]]
                    if rest is not None and len(c) > 1:
                        targets = torch.tensor(c[1:], device=device)
                        total = total + rest[r, : len(c) - 1].gather(-1, targets[:, None]).sum()
                    scores[slot] = float(total)
    return scores
