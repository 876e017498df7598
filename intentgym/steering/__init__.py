"""Concept directions in the residual stream, and generation steered along them.

A trait (honesty, kindness, corrigibility, benevolence) comes with contrastive pairs: one user
message and two assistant replies that differ only in the trait (``data/<trait>.v1.jsonl``, our
own words; 20% of pairs held out by a hash of the id). The residual stream is read after chosen
decoder layers, averaged over each reply's tokens; a trait's direction at a layer is the mean
difference positive − negative (CAA, Rimsky et al. 2024), or optionally the first principal
component of the per-pair differences, oriented and scaled like the mean difference. Steering adds
``alpha * direction`` to the output of those layers at every position through forward hooks.

Why not the ``steering-vectors`` library: its releases (0.12.2) require ``transformers<5``, and
intentgym runs on transformers 5, so pip cannot install both. The three pieces it would provide
(recording, mean-difference/PCA aggregation, hooks) take ~150 lines here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from intentgym.data import in_heldout
from intentgym.errors import IntentgymError
from intentgym.files import check_lengths, check_type, read_jsonl_numbered
from intentgym.generation import chat_prompts
from intentgym.models import Policy, eval_mode

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11
    from importlib.resources.abc import Traversable

TRAITS = ("honesty", "kindness", "corrigibility", "benevolence")
METHODS = ("mean_diff", "pca")
HELDOUT_SHARE = 0.2


@dataclass(frozen=True)
class Pair:
    """One user message, a reply showing the trait and one showing its opposite."""

    id: str
    trait: str
    prompt: str
    positive: str
    negative: str


def load_pairs(trait: str) -> list[Pair]:
    """A built-in trait's pairs (``TRAITS``), or a JSONL file by path with the same fields."""
    if trait in TRAITS:
        source: Path | Traversable = resources.files(__package__).joinpath(f"data/{trait}.v1.jsonl")
        where = f"{trait}.v1.jsonl"
    elif trait.endswith(".jsonl"):
        source, where = Path(trait), trait
    else:
        raise IntentgymError(
            f"unknown trait {trait!r}; valid: {', '.join(TRAITS)}, or a path to a .jsonl file"
        )
    pairs, seen = [], set()
    for lineno, row in read_jsonl_numbered(source, "trait pairs file"):
        here = f"{where}:{lineno}"
        missing = [k for k in ("id", *_TEXTS) if k not in row or row[k] in ("", None)]
        if missing:
            raise IntentgymError(f"{here}: missing {', '.join(missing)}")
        for key in ("id", *_TEXTS):
            check_type(row[key], str, f"{here}: field {key!r}")
        if "trait" in row:
            check_type(row["trait"], str, f"{here}: field 'trait'")
        check_lengths(row, _TEXTS, here)
        if row["id"] in seen:
            raise IntentgymError(f"{here}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        pairs.append(Pair(row["id"], row.get("trait", trait), *(row[k] for k in _TEXTS)))
    if len(pairs) < 2:
        raise IntentgymError(f"{where}: {len(pairs)} pairs; a direction needs at least 2")
    return pairs


_TEXTS = ("prompt", "positive", "negative")


def split_pairs(
    pairs: Sequence[Pair], share: float = HELDOUT_SHARE
) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): a fixed split by a hash of each pair's id."""
    held = [p for p in pairs if in_heldout(p.id, share)]
    return [p for p in pairs if not in_heldout(p.id, share)], held


def decoder_layers(policy: Policy) -> torch.nn.ModuleList:
    return policy.model.get_decoder().layers


def resolve_layer(layer: float, n: int) -> int:
    """A decoder layer index from a config value: an int is an index (negative counts from the
    end); a float strictly between 0 and 1 is a fraction of the depth (0.4 of SmolLM2-135M's 30
    layers is 12), so one setting fits models of any depth."""
    if isinstance(layer, float) and not layer.is_integer():
        if not 0.0 < layer < 1.0:
            raise IntentgymError(f"layer {layer} must be an index or a fraction in (0, 1)")
        return min(n - 1, round(layer * n))
    return int(layer)


def check_layers(policy: Policy, layers: Sequence[float]) -> list[int]:
    """Layer indices (0-based decoder blocks; negative counts from the end; fractions of the
    depth) -> sorted, checked."""
    n = len(decoder_layers(policy))
    out = []
    for value in layers:
        layer = resolve_layer(value, n)
        if not -n <= layer < n:
            raise IntentgymError(f"layer {layer} does not exist; the model has layers 0..{n - 1}")
        out.append(layer % n)
    if not out:
        raise IntentgymError("no layers given; pick decoder layers such as [12] or [8, 12]")
    return sorted(set(out))


def reply_activations(
    policy: Policy,
    prompts: Sequence[str],
    replies: Sequence[str],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    desc: str | None = None,
) -> dict[int, torch.Tensor]:
    """Per layer, [n, hidden] float32: the residual stream after that decoder layer (the block's
    output, where ``steering`` adds its vector), averaged over the reply's tokens, with the user
    message rendered by the chat template. ``desc``: a progress bar over the batches with this
    label (None: none)."""
    layers = check_layers(policy, layers)
    tokenizer = policy.tokenizer
    contexts = chat_prompts(policy, [[{"role": "user", "content": p}] for p in prompts])
    rows = []
    for context, reply in zip(contexts, replies, strict=True):
        c_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
        if not r_ids:
            raise IntentgymError(f"reply {reply!r} tokenises to nothing")
        rows.append((c_ids + r_ids, len(c_ids)))
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    pad = tokenizer.pad_token_id
    with eval_mode(policy), _recording(policy, layers) as outputs:
        starts = range(0, len(rows), batch_size)
        for start in tqdm(starts, desc=desc, unit="batch", disable=desc is None):
            batch = rows[start : start + batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros_like(ids)
            in_reply = torch.zeros((len(batch), width), dtype=torch.bool)
            for r, (seq, n_context) in enumerate(batch):
                ids[r, : len(seq)] = torch.tensor(seq)
                attention[r, : len(seq)] = 1
                in_reply[r, n_context : len(seq)] = True
            policy.model(
                input_ids=ids.to(policy.device), attention_mask=attention.to(policy.device)
            )
            weights = (in_reply / in_reply.sum(1, keepdim=True)).to(policy.device)
            for layer in layers:
                states = outputs.pop(layer).float()
                # elementwise, so autocast leaves the average in float32
                out[layer].append((states * weights[..., None]).sum(1).cpu())
    return {layer: torch.cat(chunks) for layer, chunks in out.items()}


def pair_activations(
    policy: Policy,
    pairs: Sequence[Pair],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    desc: str | None = None,
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """(positive, negative) reply activations per layer, each [n_pairs, hidden]. ``desc``: a
    progress bar with this label (None, the default: none); callers pass
    ``desc=... if ctx.progress else None``."""
    prompts = [p.prompt for p in pairs]
    both = reply_activations(
        policy,
        prompts + prompts,
        [p.positive for p in pairs] + [p.negative for p in pairs],
        layers,
        batch_size=batch_size,
        desc=desc,
    )
    n = len(pairs)
    return {k: v[:n] for k, v in both.items()}, {k: v[n:] for k, v in both.items()}


def direction(
    positive: torch.Tensor, negative: torch.Tensor, method: str = "mean_diff"
) -> torch.Tensor:
    """The trait's direction from [n, hidden] activations of matched pairs.

    ``mean_diff``: mean(positive − negative). ``pca``: the first principal component of the
    per-pair differences (uncentred, as in representation engineering), oriented to agree with
    the mean difference and scaled to the mean difference's length along it, so the same
    ``alpha`` steers by a comparable amount with either method."""
    if method not in METHODS:
        raise IntentgymError(f"unknown direction method {method!r}; valid: {', '.join(METHODS)}")
    diff = positive.float() - negative.float()
    mean = diff.mean(0)
    if method == "mean_diff":
        return mean
    _, _, vh = torch.linalg.svd(diff, full_matrices=False)
    pc = vh[0]
    scale = torch.dot(mean, pc)
    return pc * scale  # the sign of the projection orients it; its size matches mean_diff's


def directions(
    policy: Policy,
    pairs: Sequence[Pair],
    layers: Sequence[int],
    method: str = "mean_diff",
    *,
    desc: str | None = None,
) -> dict[int, torch.Tensor]:
    """A direction per layer from the pairs (use the train split); ``desc`` as for
    :func:`pair_activations`."""
    pos, neg = pair_activations(policy, pairs, layers, desc=desc)
    return {layer: direction(pos[layer], neg[layer], method) for layer in pos}


def _block_output(output: object) -> torch.Tensor:
    """A decoder block's hidden states, whether it returns a tensor or a tuple."""
    return output[0] if isinstance(output, tuple) else output  # type: ignore[return-value]


@contextlib.contextmanager
def _recording(policy: Policy, layers: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Capture each listed decoder block's output (the residual stream after it, before any
    final norm) on every forward pass: {layer: [batch, seq, hidden]}, overwritten per pass."""
    blocks = decoder_layers(policy)
    outputs: dict[int, torch.Tensor] = {}
    handles = [
        blocks[layer].register_forward_hook(
            lambda module, args, output, layer=layer: outputs.__setitem__(
                layer, _block_output(output)
            )
        )
        for layer in layers
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=0))


@contextlib.contextmanager
def steering(policy: Policy, vectors: Mapping[int, torch.Tensor], alpha: float) -> Iterator[None]:
    """Add ``alpha * vectors[layer]`` to the output of each decoder layer, at every position,
    while the block runs (generation, scoring, training all see it); hooks are removed after."""
    blocks = decoder_layers(policy)
    layers = check_layers(policy, list(vectors))
    handles = []
    for layer in layers:
        shift = (alpha * vectors[layer if layer in vectors else layer - len(blocks)]).to(
            policy.device
        )

        def hook(
            module: torch.nn.Module, args: object, output: object, shift: torch.Tensor = shift
        ) -> object:
            if isinstance(output, tuple):
                return (output[0] + shift.to(output[0].dtype), *output[1:])
            assert isinstance(output, torch.Tensor)
            return output + shift.to(output.dtype)

        handles.append(blocks[layer].register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
