"""Forced-choice scoring throughput: the shared-prompt path vs scoring every option separately.

Both paths score the same (prompt, option) pairs of the built-in forced-choice set on the default
model. "separate" is the straightforward method (one full forward pass per option, as most
harnesses do); "shared" is intentgym.scoring (each prompt encoded once, its KV cache reused for
every option). Prints items/s for each, the ratio, and the largest log-probability difference, for
float32 and bfloat16 compute.

    python bench/bench_scoring.py [--items 80] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import time

import torch

from intentgym.generation import chat_prompts
from intentgym.models import Policy, eval_mode, load_policy
from intentgym.probes.forced_choice import LABELS, format_question, load_set
from intentgym.scoring import continuation_logprobs


def separate(policy: Policy, prompts: list[str], conts: list[str], batch_size: int) -> list[float]:
    """One right-padded forward pass per (prompt, option): the baseline."""
    tok = policy.tokenizer
    out = []
    with eval_mode(policy):
        for start in range(0, len(prompts), batch_size):
            ps, cs = prompts[start : start + batch_size], conts[start : start + batch_size]
            seqs = [
                (
                    tok(p, add_special_tokens=False)["input_ids"],
                    tok(c, add_special_tokens=False)["input_ids"],
                )
                for p, c in zip(ps, cs, strict=True)
            ]
            width = max(len(p) + len(c) for p, c in seqs)
            ids = torch.full((len(seqs), width), tok.pad_token_id)
            mask = torch.zeros_like(ids)
            for r, (p, c) in enumerate(seqs):
                ids[r, : len(p) + len(c)] = torch.tensor(p + c)
                mask[r, : len(p) + len(c)] = 1
            lp = torch.log_softmax(
                policy.model(input_ids=ids, attention_mask=mask).logits.float(), -1
            )
            for r, (p, c) in enumerate(seqs):
                out.append(sum(float(lp[r, len(p) - 1 + k, c[k]]) for k in range(len(c))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=80)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    items = load_set("alignment_general")[: args.items]
    for dtype in ("float32", "bfloat16"):
        policy = load_policy(args.model, dtype=dtype)
        convs = [
            [{"role": "user", "content": format_question(i["question"], a, b)}]
            for i in items
            for a, b in ((i["aligned"], i["misaligned"]), (i["misaligned"], i["aligned"]))
        ]
        prompts = chat_prompts(policy, convs)
        pairs = [(p, label) for p in prompts for label in LABELS]
        ps, cs = [p for p, _ in pairs], [c for _, c in pairs]
        separate(policy, ps[:8], cs[:8], args.batch_size)  # warm-up
        timings = {}
        results = {}
        for name, fn in (("separate", separate), ("shared", None)):
            t0 = time.perf_counter()
            if fn is None:
                results[name] = continuation_logprobs(policy, ps, cs, batch_size=args.batch_size)
            else:
                results[name] = fn(policy, ps, cs, args.batch_size)
            timings[name] = time.perf_counter() - t0
        diff = max(abs(a - b) for a, b in zip(results["separate"], results["shared"], strict=True))
        rate = {k: len(items) / v for k, v in timings.items()}
        print(
            f"{dtype:9s} items={len(items)} (x2 orders x2 options)  separate {rate['separate']:.2f} items/s"
            f"  shared {rate['shared']:.2f} items/s  ratio {rate['shared'] / rate['separate']:.2f}x"
            f"  max |Δlogp| {diff:.2e}"
        )


if __name__ == "__main__":
    main()
