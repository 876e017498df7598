"""The budget ledger: what each phase spent, so that arms of one comparison can be held to equal
budgets (the report warns when they differ by more than 10%).

Counters are process-wide and only ever grow; the runner snapshots them around each phase and
writes the differences as ``budget`` rows of results.jsonl: ``optimiser_steps`` (every HF/TRL
trainer and our PPO), ``trained_tokens`` (non-padding input tokens the trainers saw),
``generated_tokens`` (every ``intentgym.generation.generate`` call, and what TRL's GRPO/RLOO
report sampling: mean completion length x completions per step, so approximate there),
``reward_items`` (completions scored by the reward models and judges the phase asked the run
for), ``wall_seconds`` and ``peak_rss_mb`` (the process's peak resident memory so far: a
high-water mark, not the phase's own; on a GPU, ``peak_gpu_mb`` is the phase's own peak).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Counters:
    optimiser_steps: int = 0
    trained_tokens: int = 0
    generated_tokens: int = 0
    reward_items: int = 0


COUNTERS = Counters()


class PhaseBudget:
    """Measures one phase: ``with PhaseBudget() as b: ...; rows = b.rows()``."""

    def __enter__(self) -> PhaseBudget:
        self.start = Counters(**asdict(COUNTERS))
        self.t0 = time.perf_counter()
        self._reset_gpu_peak()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0

    def spent(self) -> dict[str, float]:
        out: dict[str, float] = {
            f.name: float(getattr(COUNTERS, f.name) - getattr(self.start, f.name))
            for f in fields(Counters)
        }
        out["wall_seconds"] = round(self.seconds, 2)
        out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        gpu = _gpu_peak_mb()
        if gpu is not None:
            out["peak_gpu_mb"] = round(gpu, 1)
        return out

    def rows(self) -> list[dict[str, Any]]:
        nan = float("nan")
        return [
            {"probe": "budget", "metric": k, "value": v, "ci_low": nan, "ci_high": nan, "n": 1}
            for k, v in self.spent().items()
        ]

    @staticmethod
    def _reset_gpu_peak() -> None:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


def _gpu_peak_mb() -> float | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return float(torch.cuda.max_memory_allocated()) / 2**20
