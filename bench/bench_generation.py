"""Sampling throughput: plain Hugging Face ``generate`` at batch 16 against the ways to speed it up.

Workload: the free-form probe's job -- the paraphrases of the built-in open questions (first_plot
and open_questions), each answered by sampling (temperature 1, top-p 1) up to ``--max-new-tokens``
tokens. Throughput = generated tokens (up to and including each answer's end-of-turn token, no
padding) per second of wall time, all variants measured in one process on one model.

Variants (``--variants``, comma-separated):

- ``plain16``: the baseline -- ``model.generate`` on batches of 16 prompts in input order;
- ``sorted16`` / ``sorted64`` / ``sorted128``: intentgym's ``generate`` (prompts sorted by length
  so batches waste little padding) at that batch size;
- ``engine``: ``intentgym.generation.generate`` with the engine defaults (what probes use);
- ``static64``: a static KV cache with ``torch.compile`` (transformers' ``cache_implementation
  ="static"``), batch 64;
- ``continuous``: transformers' continuous batching (``generate_batch``: a paged KV cache, finished
  answers leave the batch at once and new ones take their slot);
- ``bf16_64``: sorted batch 64 with bfloat16 autocast (only fast on CPUs with native bf16);
- ``int8_64`` / ``int8_128``: sorted batches on a copy of the model with every linear layer
  dynamically quantised to int8 (``torch.ao.quantization.quantize_dynamic``: int8 weights,
  activations quantised per batch; fbgemm's int8 kernels on x86).

The bench also checks that the engine's answers are distributed like the baseline's: the mean
answer length of each variant with its 95% interval (a speed-up must not come from shorter answers).

    python bench/bench_generation.py [--model smollm2-135m] [--prompts 128] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from intentgym.generation import chat_prompts, generate
from intentgym.models import Policy, eval_mode, load_policy


def workload(n: int) -> list[list[dict[str, str]]]:
    from intentgym.probes.data_files import load_questions

    texts = [
        p
        for src in ("first_plot", "open_questions")
        for q in load_questions(src)
        for p in q["paraphrases"]
    ]
    texts = (texts * (n // len(texts) + 1))[:n]
    return [[{"role": "user", "content": t}] for t in texts]


def _count(policy: Policy, new_tokens: torch.Tensor) -> tuple[int, list[int]]:
    """Generated tokens per answer: up to and including the first end-of-sequence/pad token."""
    eos = policy.model.generation_config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos]) | {policy.tokenizer.pad_token_id}
    lengths = []
    for row in new_tokens.tolist():
        n = next((k + 1 for k, t in enumerate(row) if t in stop), len(row))
        lengths.append(n)
    return sum(lengths), lengths


def plain(policy: Policy, convs: list[Any], max_new: int, batch: int = 16, **gen: Any) -> list[int]:
    """model.generate in input order, batch ``batch``; answer lengths in tokens."""
    tok = policy.tokenizer
    prompts = chat_prompts(policy, convs)
    tok.padding_side = "left"
    lengths: list[int] = []
    with eval_mode(policy):
        for start in range(0, len(prompts), batch):
            enc = tok(
                prompts[start : start + batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(policy.device)
            torch.manual_seed(start)
            out = policy.model.generate(
                **enc, max_new_tokens=max_new, do_sample=True, temperature=1.0, top_p=1.0,
                pad_token_id=tok.pad_token_id, **gen,
            )  # fmt: skip
            lengths += _count(policy, out[:, enc["input_ids"].shape[1] :])[1]
    return lengths


def continuous(policy: Policy, convs: list[Any], max_new: int) -> list[int]:
    """transformers' continuous batching (paged KV cache, its own attention kernel)."""
    from transformers import GenerationConfig

    tok = policy.tokenizer
    inputs = [tok(p, add_special_tokens=False)["input_ids"] for p in chat_prompts(policy, convs)]
    config = GenerationConfig(
        max_new_tokens=max_new, do_sample=True, temperature=1.0, top_p=1.0,
        eos_token_id=policy.model.generation_config.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    with torch.inference_mode():
        out = policy.model.generate_batch(
            inputs=inputs, generation_config=config, progress_bar=False
        )
    return [len(o.generated_tokens) for o in out.values()]


def engine_lengths(policy: Policy, convs: list[Any], max_new: int, **kwargs: Any) -> list[int]:
    """intentgym.generation.generate; answer lengths re-tokenised (plus the end token)."""
    answers = generate(policy, convs, max_new_tokens=max_new, temperature=1.0, **kwargs)
    tok = policy.tokenizer
    return [min(len(tok(a, add_special_tokens=False)["input_ids"]) + 1, max_new) for a in answers]


def run_variant(
    name: str, policy: Policy, convs: list[Any], max_new: int
) -> tuple[float, list[int], float]:
    variants: dict[str, Callable[[], list[int]]] = {
        "plain16": lambda: plain(policy, convs, max_new, 16),
        "sorted16": lambda: engine_lengths(policy, convs, max_new, batch_size=16),
        "sorted64": lambda: engine_lengths(policy, convs, max_new, batch_size=64),
        "sorted128": lambda: engine_lengths(policy, convs, max_new, batch_size=128),
        "engine": lambda: engine_lengths(policy, convs, max_new),
        "static64": lambda: plain(policy, convs, max_new, 64, cache_implementation="static"),
        "static128": lambda: plain(policy, convs, max_new, 128, cache_implementation="static"),
        "continuous": lambda: continuous(policy, convs, max_new),
    }
    if name in ("int8_64", "int8_128"):
        import copy

        quantized = copy.deepcopy(policy.model)
        quantized = torch.ao.quantization.quantize_dynamic(
            quantized, {torch.nn.Linear}, dtype=torch.qint8
        )
        q = Policy(quantized, policy.tokenizer, policy.name, policy.compute_dtype)
        t0 = time.perf_counter()
        lengths = engine_lengths(q, convs, max_new, batch_size=int(name.split("_")[1]))
        seconds = time.perf_counter() - t0
        return seconds, lengths, sum(lengths) / seconds
    if name == "bf16_64":
        policy.compute_dtype = torch.bfloat16
        try:
            t0 = time.perf_counter()
            lengths = engine_lengths(policy, convs, max_new, batch_size=64)
            return time.perf_counter() - t0, lengths, sum(lengths) / (time.perf_counter() - t0)
        finally:
            policy.compute_dtype = torch.float32
    if name not in variants:
        raise SystemExit(f"unknown variant {name!r}; choose from {[*variants, 'bf16_64']}")
    t0 = time.perf_counter()
    lengths = variants[name]()
    seconds = time.perf_counter() - t0
    return seconds, lengths, sum(lengths) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument(
        "--variants", default="plain16,sorted16,sorted64,sorted128,continuous,engine"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--dtype", default="float32", help="compute dtype: float32, bfloat16, auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    policy = load_policy(args.model, dtype=args.dtype)
    convs = workload(args.prompts)
    print(f"# {args.model}, CPU {cpu}, {torch.get_num_threads()} threads, {len(convs)} prompts, "
          f"sampling T=1 up to {args.max_new_tokens} new tokens, {policy.compute_dtype} compute, "
          f"{policy.device}")  # fmt: skip
    plain(policy, convs[:4], 8)  # warm-up
    rows = []
    for name in args.variants.split(","):
        seconds, lengths, rate = run_variant(name, policy, convs, args.max_new_tokens)
        mean = statistics.mean(lengths)
        half = 1.96 * statistics.stdev(lengths) / len(lengths) ** 0.5
        rows.append((name, seconds, sum(lengths), rate, mean, half))
        print(f"{name:12s} {seconds:7.1f} s  {sum(lengths):6d} tok  {rate:7.1f} tok/s  "
              f"answer length {mean:.1f} ± {half:.1f}", flush=True)  # fmt: skip
    base = next((r for r in rows if r[0] == "plain16"), None)
    if base:
        print("\n| variant | tok/s | × plain16 | mean answer tokens [95% CI] |\n|---|---|---|---|")
        for name, _, _, rate, mean, half in rows:
            print(
                f"| {name} | {rate:.1f} | {rate / base[3]:.2f}x | {mean:.1f} [{mean - half:.1f}, {mean + half:.1f}] |"
            )


if __name__ == "__main__":
    main()
