"""The one generation path: batched chat completions, used by probes, trainers and benchmarks.

Two engines (``generation.engine`` in the run config, set for the process by :func:`configure`):

* ``hf`` (default): transformers' ``generate`` on length-sorted batches, each seeded on its own so
  a batch's answers do not depend on what came before it or which process generates it.
* ``vllm`` (CUDA GPUs, ``pip install "intentgym[vllm]"``): the policy's current weights are saved
  once per change of weights and served by an in-process ``vllm.LLM`` that shares the GPU with
  training (``vllm_gpu_memory_utilization``); each prompt is sampled with its own seed. RL phases
  then generate their rollouts through TRL's own vLLM support (``use_vllm``, colocate mode).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from intentgym.budget import COUNTERS
from intentgym.distributed import gather_batches, my_batches
from intentgym.models import Policy, eval_mode

Messages = Sequence[dict[str, str]]
log = logging.getLogger(__name__)
ENGINES = ("hf", "vllm")


@dataclass
class GenerationSettings:
    """``generation:`` in the run config: which engine generates, for the whole process."""

    engine: str = field(default="hf", metadata={"help": "hf | vllm (CUDA GPUs only)."})
    hf_batch_size: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "hf: prompts per generate call for every caller (0: each caller's own "
            "batch_size). Larger batches are faster on a CPU (docs/experiments.md, Scaling).",
        },
    )
    hf_cache: str = field(
        default="static",
        metadata={
            "help": "hf: KV cache, static (preallocated per batch; the same answers as dynamic, "
            "faster at large batches) | dynamic (grows as it goes)."
        },
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata={
            "gt": 0,
            "lt": 1,
            "help": "vllm: share of GPU memory vLLM may take (the trained model shares the GPU).",
        },
    )


SETTINGS = GenerationSettings()


def configure(settings: GenerationSettings) -> None:
    """Use ``settings`` for every later :func:`generate` call of this process."""
    global SETTINGS
    SETTINGS = settings


def check_engine(settings: GenerationSettings) -> None:
    """Before any work: the engine exists and can run here (one line otherwise)."""
    from intentgym.errors import IntentgymError, invalid_choice

    if settings.engine not in ENGINES:
        raise invalid_choice("generation.engine", settings.engine, ENGINES)
    if settings.hf_cache not in ("dynamic", "static"):
        raise invalid_choice("generation.hf_cache", settings.hf_cache, ("dynamic", "static"))
    if settings.engine == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise IntentgymError(
                'generation.engine=vllm needs vLLM: pip install "intentgym[vllm]" (CUDA GPUs only)'
            )
        if not torch.cuda.is_available():
            raise IntentgymError(
                "generation.engine=vllm needs a CUDA GPU and this machine has none; "
                "use generation.engine=hf"
            )


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
    shard: bool = True,
) -> list[str]:
    """Complete each conversation with one assistant message (greedy when ``temperature == 0``).

    Prompts are sorted by length so batches waste little padding, then returned in input order.
    The result depends only on the inputs and ``seed``. In a multi-process run the batches are
    split across the processes and gathered (``shard=False``: this process's own prompts, all
    generated here -- e.g. inside a trainer, where each process has prompts of its own).
    """
    prompts = chat_prompts(policy, conversations)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if temperature > 0
        else {"do_sample": False}
    )
    if SETTINGS.engine == "hf" and SETTINGS.hf_batch_size:
        batch_size = SETTINGS.hf_batch_size
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    # in a multi-process run each process takes every world-th batch (distributed.py)
    mine = my_batches(len(batches)) if shard else range(len(batches))
    if SETTINGS.engine == "vllm":
        done = _vllm_batches(
            policy, prompts, batches, mine, max_new_tokens, temperature, top_p, seed
        )
    else:
        done = _hf_batches(
            policy, prompts, batches, mine, max_new_tokens, sampling, seed, batch_size, desc
        )
    gathered = gather_batches(done, len(batches)) if shard else [r for _, r in done]
    for b, (texts, count) in enumerate(gathered):
        COUNTERS.generated_tokens += count
        for i, text in zip(batches[b], texts, strict=True):
            outputs[i] = text
    return outputs


def _hf_batches(
    policy: Policy,
    prompts: list[str],
    batches: list[list[int]],
    mine: range,
    max_new_tokens: int,
    sampling: dict[str, Any],
    seed: int,
    batch_size: int,
    desc: str | None,
) -> list[tuple[int, tuple[list[str], int]]]:
    """transformers' generate on each of this process's batches: (batch, (texts, new tokens))."""
    tokenizer = policy.tokenizer
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    done: list[tuple[int, tuple[list[str], int]]] = []
    model = policy.model
    if SETTINGS.hf_cache == "static":
        sampling = {**sampling, "cache_implementation": "static"}
    try:
        with eval_mode(policy):
            for b in tqdm(mine, desc=desc or "generate", unit="batch", disable=desc is None):
                batch = tokenizer(
                    [prompts[i] for i in batches[b]],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(policy.device)
                # Seed per batch so a batch's samples do not depend on how many came before it
                # (nor on which process generates it).
                torch.manual_seed(seed + b * batch_size)
                out = model.generate(
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
    return done


def _vllm_batches(
    policy: Policy,
    prompts: list[str],
    batches: list[list[int]],
    mine: range,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
) -> list[tuple[int, tuple[list[str], int]]]:
    """vLLM on all of this process's prompts at once (it schedules them itself); prompt ``i``
    is sampled with seed ``seed + i``, so answers do not depend on batching."""
    from vllm import SamplingParams

    llm = _vllm_engine(policy)
    wanted = [i for b in mine for i in batches[b]]
    params = [
        SamplingParams(
            temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed + i
        )
        for i in wanted
    ]
    outs = llm.generate([prompts[i] for i in wanted], params, use_tqdm=False)
    by_prompt = {i: o.outputs[0] for i, o in zip(wanted, outs, strict=True)}
    return [
        (
            b,
            (
                [by_prompt[i].text.strip() for i in batches[b]],
                sum(len(by_prompt[i].token_ids) for i in batches[b]),
            ),
        )
        for b in mine
    ]


def _weights_key(policy: Policy) -> tuple[int, float]:
    """Changes when the policy's weights do (a phase merged an adapter, or replaced the model):
    the model object and a checksum of its first and last weight matrices."""
    params = list(policy.model.parameters())
    with torch.no_grad():
        checksum = float(
            sum(p.float().sum() for p in (params[0], params[-1], params[len(params) // 2]))
        )
    return id(policy.model), checksum


@functools.cache
def _vllm_holder() -> dict[str, Any]:
    return {}


def _vllm_engine(policy: Policy) -> Any:
    """The vLLM engine serving the policy's current weights (rebuilt when they change)."""
    import gc
    import shutil
    import tempfile

    holder = _vllm_holder()
    key = _weights_key(policy)
    if holder.get("key") == key:
        return holder["llm"]
    from vllm import LLM

    holder.pop("llm", None)  # the old engine's GPU memory goes back before the new one starts
    gc.collect()
    torch.cuda.empty_cache()
    if holder.get("folder"):
        shutil.rmtree(holder.pop("folder"), ignore_errors=True)
    folder = holder["folder"] = tempfile.mkdtemp(prefix="intentgym-vllm-")
    policy.model.save_pretrained(folder, safe_serialization=True)
    policy.tokenizer.save_pretrained(folder)
    log.info("vllm: serving the policy's current weights from %s", folder)
    holder["llm"] = LLM(
        model=folder,
        dtype="bfloat16" if policy.compute_dtype == torch.bfloat16 else "auto",
        gpu_memory_utilization=SETTINGS.vllm_gpu_memory_utilization,
        enable_prefix_caching=True,
        seed=0,
    )
    holder["key"] = key
    return holder["llm"]
