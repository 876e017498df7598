"""The probe interface: ``run(policy, ctx) -> ProbeResult`` (metrics with 95% CIs + per-item records)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from intentgym.envs.base import TextEnv
from intentgym.models import Policy
from intentgym.registry import Registry


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int

    @classmethod
    def of(cls, name: str, estimate: tuple[float, float, float], n: int) -> Metric:
        return cls(name, *estimate, n=n)


@dataclass
class ProbeResult:
    probe: str
    metrics: list[Metric]
    records: list[dict[str, Any]] = field(default_factory=list)

    def rows(self, phase: str, **extra: Any) -> list[dict[str, Any]]:
        """``results.jsonl`` rows: one per metric."""
        rows = []
        for m in self.metrics:
            fields = asdict(m)
            rows.append(
                {
                    "phase": phase,
                    "probe": self.probe,
                    "metric": fields.pop("name"),
                    **fields,
                    **extra,
                }
            )
        return rows


@dataclass
class ProbeContext:
    env: TextEnv
    seed: int = 0
    progress: bool = True


class Probe(Protocol):
    name: str

    def run(self, policy: Policy, ctx: ProbeContext) -> ProbeResult: ...

    def describe(self) -> dict[str, Any]: ...


PROBES: Registry[Any] = Registry("probe")
