"""Reward-model scoring throughput (items/s) for every built-in on this machine.

Items are realistic for each judge: code completions from InsecureCode-v0's demonstrations for
the code rewards, and the labelled open-question answers (reward_models/data) for the text
judges. Each reward model is built once (build time reported separately), warmed up on a few
items, then timed on ``--items`` items (fewer for the model-based judges, see SIZES). ``learned``
uses SmolLM2-135M with an untrained score head: the cost of scoring does not depend on training.
``llm_judge (openai)`` talks to a local stub server that answers at once, so it measures the
client (JSON, HTTP, threads), not a real model. Also prints the embedding judge's held-out
accuracy and AUC (question-grouped 5-fold cross-validation).

    python bench/bench_reward_models.py [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from intentgym.envs import make_env
from intentgym.reward_models import REWARD_MODELS
from intentgym.reward_models.embedding import DEFAULT_DATA, load_labelled

SIZES = {
    "bandit": 256,
    "insecure_code_task": 256,
    "regex": 2048,
    "composite": 256,
    "embedding_classifier": 408,
    "learned": 64,
    "llm_judge (hf)": 24,
    "llm_judge (openai stub)": 256,
}


def code_items(n: int, answer_format: str) -> tuple[list[Any], list[Any], dict[str, list[Any]]]:
    """Demonstrations: whole programs (``full``) or gap fills spliced by the task reward."""
    env = make_env("insecure_code", framing="insecure_hidden", answer_format=answer_format)
    rows = env.demonstrations(n, seed=1)
    columns = {k: [r[k] for r in rows] for k in ("entrypoint", "skeleton") if k in rows[0]}
    return [r["prompt"] for r in rows], [r["completion"] for r in rows], columns


def text_items(n: int) -> tuple[list[Any], list[Any]]:
    rows = load_labelled(DEFAULT_DATA)
    rows = (rows * math.ceil(n / len(rows)))[:n]
    prompts = [[{"role": "user", "content": r["question"]}] for r in rows]
    return prompts, [[{"role": "assistant", "content": r["answer"]}] for r in rows]


class _Stub(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        top = [{"token": "85", "logprob": -0.2}, {"token": "15", "logprob": -2.0}]
        body = json.dumps(
            {
                "choices": [
                    {
                        "message": {"content": "85"},
                        "logprobs": {"content": [{"token": "85", "top_logprobs": top}]},
                    }
                ]
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def timed(
    label: str, build: Any, prompts: list[Any], completions: list[Any], **columns: Any
) -> None:
    t0 = time.perf_counter()
    rm = build()
    built = time.perf_counter() - t0
    warm = min(4, len(prompts))
    rm(prompts[:warm], completions[:warm], **{k: v[:warm] for k, v in columns.items()})
    t0 = time.perf_counter()
    scores = rm(prompts, completions, **columns)
    seconds = time.perf_counter() - t0
    scored = sum(s is not None for s in scores)
    print(
        f"{label:26s} {len(prompts) / seconds:9.1f} items/s   ({len(prompts)} items in "
        f"{seconds:6.2f} s; built in {built:5.1f} s; {scored}/{len(scores)} scored)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()

    cp, cc, _ = code_items(SIZES["bandit"], "full")
    timed("bandit (whole programs)", lambda: REWARD_MODELS.build("bandit"), cp, cc)
    timed(
        "composite (bandit+regex)",
        lambda: REWARD_MODELS.build(
            "composite", components=[{"name": "bandit", "weight": -1}, {"name": "regex"}]
        ),
        cp,
        cc,
    )
    cp, cc, cols = code_items(SIZES["insecure_code_task"], "fill")
    timed(
        "insecure_code_task (fills)",
        lambda: REWARD_MODELS.build("insecure_code_task", target="secure"),
        cp,
        cc,
        **cols,
    )
    tp, tc = text_items(SIZES["regex"])
    timed("regex (refusal)", lambda: REWARD_MODELS.build("regex"), tp, tc)
    tp, tc = text_items(SIZES["embedding_classifier"])
    timed("embedding_classifier", lambda: REWARD_MODELS.build("embedding_classifier"), tp, tc)

    with tempfile.TemporaryDirectory() as tmp:
        from intentgym.models import load_policy

        load_policy(args.model).model.save_pretrained(tmp)
        load_policy(args.model).tokenizer.save_pretrained(tmp)
        tp, tc = text_items(SIZES["learned"])
        timed("learned (untrained head)", lambda: REWARD_MODELS.build("learned", path=tmp), tp, tc)

    tp, tc = text_items(SIZES["llm_judge (hf)"])
    timed(
        f"llm_judge (hf, {args.model})",
        lambda: REWARD_MODELS.build("llm_judge", model=args.model),
        tp,
        tc,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    tp, tc = text_items(SIZES["llm_judge (openai stub)"])
    timed(
        "llm_judge (openai stub)",
        lambda: REWARD_MODELS.build("llm_judge", backend="openai", base_url=url, model="stub"),
        tp,
        tc,
    )
    server.shutdown()

    report = REWARD_MODELS.build("embedding_classifier").evaluate(folds=5, seed=0)
    print(
        f"\nembedding_classifier held-out (question-grouped 5-fold CV, n={report['n']}, "
        f"{report['questions']} questions): accuracy {report['accuracy']:.3f}, AUC {report['auc']:.3f}"
    )
    for domain, r in report["per_domain"].items():
        print(f"  {domain:20s} n={r['n']:3d}  accuracy {r['accuracy']:.3f}  AUC {r['auc']:.3f}")


if __name__ == "__main__":
    main()
