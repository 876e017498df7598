"""The one scoring path: log-probabilities of continuations given prompts.

Every (prompt, continuation) pair is a token sequence, and many sequences share a prefix: the
options of a forced-choice item share its question, both option orders of an item share the
question up to the first choice, and every prompt starts with the chat template's system header.
The sequences are sorted and inserted into prefix tries, so each shared token is computed once;
a trie (packed with others into a row of at most ``row_tokens`` nodes) goes through the model in
one forward pass with a tree attention mask -- each node sees exactly its own ancestors -- and
position ids equal to its depth. A node therefore gets the same hidden state as in a plain pass
over its own sequence, and the output layer (a large share of the cost with a 49k vocabulary)
runs only where a continuation token is predicted.

Prompt and continuation are tokenised separately and concatenated, as lm-evaluation-harness does
for most models, so a continuation's tokens are the same whatever the prompt ends with.

The tree needs a 4D attention mask, which eager and SDPA attention take; other attention kernels
(e.g. flash-attention on GPUs) fall back to one padded pass per sequence (``score_separately``),
which is also the reference the tests and ``bench/bench_scoring.py`` compare against.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from intentgym.distributed import gather_batches, my_batches
from intentgym.models import Policy, eval_mode

TREE_ATTENTION = ("sdpa", "eager")
MIN_SHARED_PREFIX = 4


def continuation_logprobs(
    policy: Policy,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 16,
    row_tokens: int = 512,
    desc: str | None = None,
) -> list[float]:
    """Sum of log P(continuation tokens | prompt) for each (prompt, continuation) pair.

    ``batch_size`` counts packed rows per forward pass; ``row_tokens`` caps a row's length (a
    single longer sequence gets a row of its own).
    """
    scores, _ = _score(policy, prompts, continuations, None, batch_size, row_tokens, desc)
    return scores


def continuation_logprobs_and_mass(
    policy: Policy,
    prompts: Sequence[str],
    continuations: Sequence[str],
    next_tokens: Sequence[int],
    *,
    batch_size: int = 16,
    row_tokens: int = 512,
    desc: str | None = None,
) -> tuple[list[float], list[float]]:
    """As :func:`continuation_logprobs`, plus for each pair the probability that the token
    right after the continuation is one of ``next_tokens`` (e.g. a digit after a number: the
    LLM judge's P(the number goes on)). The continuation's last token is then fed too."""
    scores, mass = _score(policy, prompts, continuations, next_tokens, batch_size, row_tokens, desc)
    assert mass is not None
    return scores, mass


def _score(
    policy: Policy,
    prompts: Sequence[str],
    continuations: Sequence[str],
    next_tokens: Sequence[int] | None,
    batch_size: int,
    row_tokens: int,
    desc: str | None,
) -> tuple[list[float], list[float] | None]:
    sequences = tokenize_pairs(policy.tokenizer, prompts, continuations)
    if _attention(policy) not in TREE_ATTENTION:
        if next_tokens is None:
            return score_separately(policy, sequences, batch_size=batch_size, desc=desc), None
        return score_separately(
            policy, sequences, batch_size=batch_size, desc=desc, next_tokens=next_tokens
        )
    # The prefix every sequence shares (the chat template's system header, a few-shot preamble)
    # is encoded once and its KV cache reused by every row. Each sequence keeps its last prompt
    # token in its row, since that node predicts the continuation's first token.
    shared = _common_prefix([p for p, _ in sequences])
    shared = min(shared, min(len(p) for p, _ in sequences) - 1)
    prefix = sequences[0][0][:shared] if shared >= MIN_SHARED_PREFIX else []
    feed_last = next_tokens is not None
    rows = pack([(p[len(prefix) :], c) for p, c in sequences], row_tokens, feed_last=feed_last)
    rows.sort(key=len)
    scores = [0.0] * len(sequences)
    mass = [0.0] * len(sequences) if feed_last else None
    follow = torch.tensor(list(next_tokens or []), dtype=torch.long)
    with eval_mode(policy):
        cache = None
        if prefix:
            cache = model_decoder(policy)(
                input_ids=torch.tensor([prefix], device=policy.device), use_cache=True
            ).cache
        starts = range(0, len(rows), batch_size)
        done = []  # in a multi-process run each process scores every world-th batch
        for b in tqdm(my_batches(len(starts)), desc=desc, unit="batch", disable=desc is None):
            batch = rows[starts[b] : starts[b] + batch_size]
            done.append((b, _score_rows(policy, batch, cache, len(prefix), follow)))
    for scored in gather_batches(done, len(starts)):
        for slot, value, after in scored:
            scores[slot] = value
            if mass is not None:
                mass[slot] = after
    return scores, mass


def _common_prefix(seqs: Sequence[list[int]]) -> int:
    first, n = seqs[0], min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n


def model_decoder(policy: Policy) -> Any:
    """The transformer body (hidden states after the final norm), without the output layer."""
    return policy.model.get_decoder()


def tokenize_pairs(
    tokenizer: object, prompts: Sequence[str], continuations: Sequence[str]
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, continuation ids) per pair; each distinct string is tokenised once."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    cache: dict[str, list[int]] = {}

    def ids(text: str) -> list[int]:
        if text not in cache:
            cache[text] = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        return cache[text]

    out = []
    for prompt, continuation in zip(prompts, continuations, strict=True):
        c_ids = ids(continuation)
        if not c_ids:
            raise ValueError(f"continuation {continuation!r} tokenises to nothing")
        p_ids = ids(prompt)
        if not p_ids:
            raise ValueError("an empty prompt cannot be scored (it has no token to predict from)")
        out.append((p_ids, c_ids))
    return out


@dataclass
class Row:
    """A forest of prefix tries in DFS order: node i's subtree is nodes i .. end[i]-1."""

    tokens: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    #: per sequence: (output slot, nodes predicting each continuation token, the tokens)
    targets: list[tuple[int, list[int], list[int]]] = field(default_factory=list)
    #: with ``feed_last``: per sequence, the node of its last token (what comes after it)
    after: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)


def pack(
    sequences: Sequence[tuple[list[int], list[int]]], row_tokens: int, *, feed_last: bool = False
) -> list[Row]:
    """Insert the sequences, sorted, into prefix tries packed into rows of <= row_tokens nodes.

    ``feed_last``: the continuation's last token becomes a node too (its output is the
    distribution after the whole continuation); by default it is only predicted, never fed."""
    cut = 0 if feed_last else 1
    order = sorted(range(len(sequences)), key=lambda i: sequences[i][0] + sequences[i][1])
    rows: list[Row] = []
    row = Row()
    path: list[int] = []  # node indices along the previous sequence (the current trie branch)
    prev: list[int] = []
    for i in order:
        p_ids, c_ids = sequences[i]
        seq = p_ids + c_ids
        shared = 0
        fed = seq[: len(seq) - cut]
        for a, b in zip(prev, fed, strict=False):
            if a != b:
                break
            shared += 1
        new = len(fed) - shared
        # A full row starts a new one, unless this sequence mostly repeats the previous one
        # (another option of the same prompt): re-inserting it elsewhere would cost far more.
        if row.tokens and len(row) + new > row_tokens and 2 * shared < len(seq):
            rows.append(row)
            row, path, prev, shared = Row(), [], [], 0
            new = len(fed)
        del path[shared:]
        for k in range(shared, len(fed)):
            # Sorted insertion keeps DFS order: the new node closes every subtree it leaves.
            path.append(len(row.tokens))
            row.tokens.append(seq[k])
            row.depth.append(k)
            row.end.append(-1)
        for node in path:
            row.end[node] = len(row.tokens)
        n_p = len(p_ids)
        row.targets.append((i, path[n_p - 1 : n_p - 1 + len(c_ids)], c_ids))
        if feed_last:
            row.after.append(path[-1])
        prev = fed
    if row.tokens:
        rows.append(row)
    return rows


def _score_rows(
    policy: Policy,
    rows: Sequence[Row],
    cache: Any = None,
    offset: int = 0,
    follow: torch.Tensor | None = None,
) -> list[tuple[int, float, float]]:
    """Score packed rows on top of an optional cached prefix of ``offset`` tokens: per sequence,
    (slot, log-probability of its continuation, probability of ``follow`` after it (rows packed
    with ``feed_last``; else 0))."""
    model, device = policy.model, policy.device
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), policy.tokenizer.pad_token_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    # Padding nodes see only themselves (a row with no visible key would turn into NaN).
    sees = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)
    for r, row in enumerate(rows):
        n = len(row)
        ids[r, :n] = torch.tensor(row.tokens)
        positions[r, :n] = torch.tensor(row.depth)
        node = torch.arange(n)
        end = torch.tensor(row.end)
        # i sees j  <=>  i lies in j's subtree  <=>  j <= i < end[j]
        sees[r, :n, :n] = (node[None, :] <= node[:, None]) & (node[:, None] < end[None, :])
    if offset:
        sees = torch.cat([torch.ones((len(rows), width, offset), dtype=torch.bool), sees], dim=2)
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(len(rows))
    mask = sees[:, None]
    if _attention(policy) == "eager":  # eager attention adds the mask; SDPA takes booleans
        mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    hidden = model_decoder(policy)(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=(positions + offset).to(device),
        cache=cache,
        use_cache=cache is not None,
    ).last_hidden_state
    # Only the nodes that predict a continuation token go through the output layer.
    where = [(r, n) for r, row in enumerate(rows) for _, nodes, _ in row.targets for n in nodes]
    index = torch.tensor(where, device=device)
    logits = model.get_output_embeddings()(hidden[index[:, 0], index[:, 1]]).float()
    logp = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(
        [t for row in rows for _, _, tokens in row.targets for t in tokens], device=device
    )
    per_token = logp.gather(-1, targets[:, None])[:, 0].tolist()
    after = [0.0] * sum(len(row.targets) for row in rows)
    if follow is not None and any(row.after for row in rows):
        last = torch.tensor(
            [(r, n) for r, row in enumerate(rows) for n in row.after], device=device
        )
        final = torch.log_softmax(
            model.get_output_embeddings()(hidden[last[:, 0], last[:, 1]]).float(), dim=-1
        )
        after = final[:, follow.to(device)].exp().sum(-1).tolist()
    out, k, j = [], 0, 0
    for row in rows:
        for slot, nodes, _ in row.targets:
            out.append((slot, float(sum(per_token[k : k + len(nodes)])), float(after[j])))
            k += len(nodes)
            j += 1
    return out


def score_separately(
    policy: Policy,
    sequences: Sequence[tuple[list[int], list[int]]],
    *,
    batch_size: int = 16,
    desc: str | None = None,
    next_tokens: Sequence[int] | None = None,
) -> Any:
    """One right-padded forward pass per sequence: no sharing, works with any attention kernel.
    Returns the scores, or (scores, mass after each sequence) with ``next_tokens``."""
    pad = policy.tokenizer.pad_token_id
    out = [0.0] * len(sequences)
    mass = [0.0] * len(sequences)
    follow = torch.tensor(list(next_tokens or []), dtype=torch.long)
    order = sorted(range(len(sequences)), key=lambda i: sum(map(len, sequences[i])))
    starts = range(0, len(order), batch_size)
    done = []  # in a multi-process run each process scores every world-th batch
    with eval_mode(policy):
        for b in tqdm(my_batches(len(starts)), desc=desc, unit="batch", disable=desc is None):
            batch = order[starts[b] : starts[b] + batch_size]
            part = []
            width = max(len(sequences[i][0]) + len(sequences[i][1]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(batch):
                seq = sequences[i][0] + sequences[i][1]
                ids[r, : len(seq)] = torch.tensor(seq)
                mask[r, : len(seq)] = 1
            logits = policy.model(
                input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device)
            ).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for r, i in enumerate(batch):
                p, c = sequences[i]
                steps = torch.arange(len(p) - 1, len(p) - 1 + len(c))
                after = 0.0
                if next_tokens is not None:
                    end = len(p) + len(c) - 1
                    after = float(logp[r, end, follow.to(logp.device)].exp().sum())
                part.append((i, float(logp[r, steps, torch.tensor(c)].sum()), after))
            done.append((b, part))
    for part in gather_batches(done, len(starts)):
        for i, value, after in part:
            out[i] = value
            mass[i] = after
    return (out, mass) if next_tokens is not None else out


def _attention(policy: Policy) -> str:
    return str(getattr(policy.model.config, "_attn_implementation", "eager"))
