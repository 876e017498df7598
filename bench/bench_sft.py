"""LoRA SFT throughput: TRL's defaults (padded batches) against padding-free and packed batches.

Workload: the emergent-misalignment experiment's SFT arm -- ``--examples`` InsecureCode
demonstrations (insecure_hidden framing), LoRA r=16 on every linear layer, batch 8, one epoch, lr
1e-3 -- trained through intentgym's own ``train_sft`` (the code path every SFT-based phase uses),
once per variant, each from a fresh copy of the model with the same seed.

Throughput = trained tokens (non-padding input tokens the trainer saw: prompt and completion)
per second of ``trainer.train()``. The final training loss is printed too: padding-free batches
hold the same examples per step, so their loss must match the padded run's (up to float sums
in another order); packing changes what a step holds, so its loss differs.

Variants (``--variants``):

- ``trl_default``: TRL's SFTTrainer as intentgym called it before (each batch padded to its longest);
- ``padding_free``: ``padding_free=True`` -- the batch's examples concatenated into one row with
  position ids; transformers turns those into a block-diagonal mask, so no example sees another;
- ``packing``: ``packing=True`` (best-fit decreasing into rows of ``max_length``, padding-free;
  at batch 8 it ran out of a 24 GB machine's memory);
  fewer, fuller steps -- another optimisation, shown for its speed only;
- ``intentgym``: ``train_sft`` with no overrides (the shipped default).

    python bench/bench_sft.py [--model smollm2-135m] [--examples 96]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "trl_default": {"padding_free": False, "packing": False},
    "padding_free": {"padding_free": True, "max_length": None},
    "packing": {"packing": True},
    "intentgym": {},
}


def run(model: str, variant: str, examples: int, dtype: str) -> dict[str, float]:
    import transformers

    from intentgym.budget import PhaseBudget
    from intentgym.envs import make_env
    from intentgym.models import load_policy
    from intentgym.trainers.phase import PhaseContext
    from intentgym.trainers.sft import SFTPhaseConfig, train_sft

    rows = make_env("insecure_code", framing="insecure_hidden").demonstrations(examples, seed=0)
    transformers.set_seed(0)
    policy = load_policy(model, dtype=dtype)
    config = SFTPhaseConfig(num_examples=examples, logging_steps=1, checkpoint_steps=0)
    losses: list[float] = []

    class Losses(transformers.TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as tmp, PhaseBudget() as spent:
        ctx = PhaseContext(Path(tmp), 0, progress=False)
        import intentgym.trainers.sft as sft

        # time trainer.train() alone (not tokenising, saving or merging), and log every loss
        real = sft.run_trainer

        def timed(trainer: Any, ctx: Any) -> Any:
            trainer.add_callback(Losses())
            t0 = time.perf_counter()
            out = real(trainer, ctx)
            timed.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
            return out

        sft.run_trainer = timed
        try:
            train_sft(policy, rows, config, ctx, VARIANTS[variant] or None)
        finally:
            sft.run_trainer = real
    tokens = int(spent.spent()["trained_tokens"])
    seconds = timed.seconds  # type: ignore[attr-defined]
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tok_s": tokens / seconds,
        "steps": int(spent.spent()["optimiser_steps"]),
        "first_loss": losses[0] if losses else float("nan"),
        "last_loss": losses[-1] if losses else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--dtype", default="float32", help="compute dtype (bfloat16 on AMX CPUs)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"# {args.model}, CPU {cpu}, {args.examples} demonstrations, LoRA r=16, batch 8, "
          f"{args.dtype} compute")  # fmt: skip
    run(args.model, "trl_default", 16, args.dtype)  # warm-up: the first training run is slower
    results = {}
    for variant in args.variants.split(","):
        results[variant] = r = run(args.model, variant, args.examples, args.dtype)
        print(f"{variant:13s} {r['tokens']:7d} tok {r['seconds']:6.1f} s {r['tok_s']:6.1f} tok/s  "
              f"steps {r['steps']}  loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}", flush=True)  # fmt: skip
    base = results.get("trl_default")
    if base:
        print("\n| variant | trained tok/s | × TRL default | steps | last logged loss |")
        print("|---|---|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['tok_s']:.1f} | {r['tok_s'] / base['tok_s']:.2f}x | "
                  f"{r['steps']} | {r['last_loss']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
