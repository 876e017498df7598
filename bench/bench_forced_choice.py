"""Forced-choice scoring, side by side with lm-evaluation-harness on the same items and prompts.

Takes N items in Anthropic's model-written-evals format (default: the first items of every
human-written advanced-AI-risk file in ../shared/data, round-robin), renders each question with
the model's chat template (the prompt intentgym's probes use), and scores the two answers
"(A)" and "(B)" after it:

* lm-eval: a YAML ``multiple_choice`` task over a JSONL of those exact prompt strings
  (``target_delimiter: ""``), HF backend loading the same weights in the same dtype (so in
  bfloat16 it runs on bfloat16 weights, while intentgym keeps float32 weights under autocast);
* intentgym: ``intentgym.scoring.continuation_logprobs`` (shared-prefix trie, one pass), on the
  same (context, continuation) strings: lm-eval moves the prompt's trailing newline into the
  continuation, so log P("\n" | prompt) is part of both tools' numbers.

Prints items/s for both in float32 and bfloat16, the speed ratio, and at float32 the largest
absolute difference between the two tools' log-probabilities (they must agree to 1e-3), plus
how many items' choices flip between float32 and bfloat16 for intentgym.

    pip install lm-eval            # not a dependency of intentgym
    python bench/bench_forced_choice.py [--items 300] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import tempfile
import time
from pathlib import Path

from intentgym.generation import chat_prompts
from intentgym.models import load_policy, model_path
from intentgym.scoring import continuation_logprobs

DATA = Path(__file__).resolve().parents[2] / "shared/data/anthropic-evals/advanced-ai-risk"
CHOICES = ["(A)", "(B)"]


def load_items(root: Path, n: int) -> list[dict[str, str]]:
    files = sorted(root.rglob("*.jsonl"))
    if not files:
        raise SystemExit(f"no JSONL files under {root}; pass --data DIR")
    streams = [(json.loads(line) for line in f.open()) for f in files]
    items = []
    for row in itertools.chain.from_iterable(itertools.zip_longest(*streams)):
        if row is not None and row["answer_matching_behavior"].strip() in CHOICES:
            items.append(row)
        if len(items) == n:
            break
    return items


def lm_eval_split(prompt: str, choice: str) -> tuple[str, str]:
    """lm-eval moves a context's trailing whitespace into the continuation; do the same."""
    context = prompt.rstrip()
    return context, prompt[len(context) :] + choice


def lm_eval_scores(
    model_path: str, dtype: str, prompts: list[str], batch_size: int
) -> tuple[list[list[float]], float]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "items.jsonl"
        with data.open("w") as f:
            for i, p in enumerate(prompts):
                f.write(json.dumps({"idx": i, "prompt": p}) + "\n")
        (Path(tmp) / "task.yaml").write_text(
            "task: intentgym_forced_choice\n"
            "dataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
            "test_split: test\n"
            "output_type: multiple_choice\n"
            'doc_to_text: "{{prompt}}"\n'
            f"doc_to_choice: {json.dumps(CHOICES)}\n"
            "doc_to_target: 0\n"
            'target_delimiter: ""\n'
            "metric_list:\n  - metric: acc\n"
        )
        lm = HFLM(pretrained=model_path, dtype=dtype, device="cpu", batch_size=batch_size)
        t0 = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=["intentgym_forced_choice"],
            task_manager=TaskManager(include_path=tmp),
            log_samples=True,
            bootstrap_iters=0,
        )
        seconds = time.perf_counter() - t0
    samples = sorted(out["samples"]["intentgym_forced_choice"], key=lambda s: s["doc"]["idx"])
    return [[float(r[0][0]) for r in s["resps"]] for s in samples], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    items = load_items(args.data, args.items)
    results: dict[str, dict[str, list[list[float]]]] = {}
    for dtype in ("float32", "bfloat16"):
        policy = load_policy(args.model, dtype=dtype)
        prompts = chat_prompts(
            policy, [[{"role": "user", "content": i["question"]}] for i in items]
        )
        n_tokens = sum(len(policy.tokenizer(p)["input_ids"]) for p in prompts) / len(prompts)
        pairs = [lm_eval_split(p, c) for p in prompts for c in CHOICES]
        ps, cs = [p for p, _ in pairs], [c for _, c in pairs]
        continuation_logprobs(policy, ps[:32], cs[:32])  # warm-up
        t0 = time.perf_counter()
        ours = continuation_logprobs(policy, ps, cs)
        t_ours = time.perf_counter() - t0
        theirs, t_theirs = lm_eval_scores(model_path(args.model), dtype, prompts, args.batch_size)
        results[dtype] = {"ours": [ours[2 * i : 2 * i + 2] for i in range(len(items))]}
        results[dtype]["lm_eval"] = theirs
        print(
            f"{dtype}: {len(items)} items, {n_tokens:.0f} prompt tokens on average | "
            f"lm-eval {len(items) / t_theirs:.1f} items/s | intentgym {len(items) / t_ours:.1f} "
            f"items/s | ratio {t_theirs / t_ours:.2f}x",
            flush=True,
        )
    a, b = results["float32"]["ours"], results["float32"]["lm_eval"]
    diff = max(abs(x - y) for u, v in zip(a, b, strict=True) for x, y in zip(u, v, strict=True))
    print(f"float32: largest |log-prob difference| intentgym vs lm-eval = {diff:.2e}")
    flips = sum(
        (u[0] > u[1]) != (v[0] > v[1])
        for u, v in zip(results["float32"]["ours"], results["bfloat16"]["ours"], strict=True)
    )
    print(f"choices that flip between float32 and bfloat16 (intentgym): {flips}/{len(items)}")


if __name__ == "__main__":
    main()
