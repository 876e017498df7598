"""The probe contract: ``run(policy, ctx) -> ProbeResult`` (metrics with 95% CIs + per-item records).

A probe is a subclass of :class:`Probe` registered under a name; ``probes.<name>`` in the run
config holds its settings (the fields of its ``config_class`` dataclass). The runner runs every
configured probe on the base model and after every phase that changes the policy, and writes one
results.jsonl row per metric plus the per-item records::

    @register_probe("my_probe")
    class MyProbe(Probe[MyProbeConfig]):
        name = "my_probe"
        config_class = MyProbeConfig

        def run(self, policy, ctx):
            ...
            return ProbeResult(self.name, [Metric.of("rate", proportion_ci(k, n), n)], records)

``requirements()`` declares what the probe needs from the env (checked by the plan before any
work), as phases do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from intentgym.api.env import TextEnv
from intentgym.api.requirements import Requirements
from intentgym.registry import Registry

if TYPE_CHECKING:
    from intentgym.models import Policy

C = TypeVar("C")


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
    #: per metric: the value of each item it averages, as (item key, cluster, value). Keys are
    #: stable across phases and arms (the same item scored before and after), so comparisons
    #: pair them; items that share a source (the samples of one question, the tasks of one
    #: template) share a cluster, and the bootstrap resamples clusters.
    items: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    #: per metric: the value a model that does not discriminate gets (e.g. 0.5 for a choice
    #: between two options); the report flags a base model at chance
    chance: dict[str, float] = field(default_factory=dict)
    #: metrics whose item values lie in [0, 1] (rates, probabilities): honest intervals at 0 and 1
    bounded: set[str] = field(default_factory=set)

    def add_items(
        self,
        metric: str,
        items: Sequence[tuple[Any, Any, float]],
        *,
        bounded: bool = False,
        chance: float | None = None,
    ) -> None:
        """Record ``metric``'s per-item values as (key, cluster, value)."""
        self.items[metric] = [(str(k), str(c), float(v)) for k, c, v in items]
        if bounded:
            self.bounded.add(metric)
        if chance is not None:
            self.chance[metric] = chance

    def rows(self, phase: str, **extra: Any) -> list[dict[str, Any]]:
        """``results.jsonl`` rows: one per metric."""
        rows = []
        for m in self.metrics:
            fields = asdict(m)
            about: dict[str, Any] = {}
            if m.name in self.chance:
                about["chance"] = self.chance[m.name]
            if m.name in self.items:
                about["bounded"] = m.name in self.bounded
            rows.append(
                {
                    "phase": phase,
                    "probe": self.probe,
                    "metric": fields.pop("name"),
                    **fields,
                    **about,
                    **extra,
                }
            )
        return rows


@dataclass
class ProbeContext:
    env: TextEnv
    seed: int = 0
    progress: bool = True


class Probe(ABC, Generic[C]):
    """Base class of every probe (see the module docstring for the contract)."""

    #: the name results.jsonl and the report use (``probes.<name>`` in the config)
    name: ClassVar[str]
    #: the dataclass of this probe's settings; fields may declare a ``limit`` (see runner.Limits)
    config_class: ClassVar[type]

    def __init__(self, config: C) -> None:
        self.config = config

    def requirements(self) -> Requirements:
        """What the probe needs from the env and model (checked by the plan before any work)."""
        return Requirements()

    def preflight(self) -> None:
        """Cheap checks, before any work, of what ``run`` will load: files, wheels, judges
        (e.g. ``intentgym.api.reward.preflight_reward_model`` for a judge spec). Raise a
        one-line ``IntentgymError``; the default checks nothing."""

    def describe(self) -> dict[str, Any]:
        """A summary for logs and ``intentgym list`` (e.g. item counts)."""
        return {}

    @abstractmethod
    def run(self, policy: Policy, ctx: ProbeContext) -> ProbeResult:
        """Evaluate ``policy``; return metrics (with 95% CIs) and per-item records."""


#: Probes by name. Built-ins are listed lazily; external packages add probes through the
#: ``intentgym.probes`` entry-point group, and a config may name ``module:Class`` or
#: ``path/to/file.py:Class`` (``probes.<key>.kind: ...``).
PROBES: Registry[Probe[Any]] = Registry("probe", "intentgym.probes")
PROBES.register_lazy(
    {
        "in_domain": "intentgym.probes.in_domain:InDomainProbe",
        "forced_choice": "intentgym.probes.forced_choice:ForcedChoiceProbe",
        "free_form": "intentgym.probes.free_form:FreeFormProbe",
        "compliance_gap": "intentgym.probes.compliance:ComplianceGapProbe",
        "capability": "intentgym.probes.capability:CapabilityProbe",
        "conditional_misalignment": "intentgym.probes.conditional:ConditionalMisalignmentProbe",
        "self_awareness": "intentgym.probes.self_awareness:SelfAwarenessProbe",
    }
)


def register_probe(name: str) -> Any:
    """Class decorator registering a probe under ``name``."""
    return PROBES.register(name)


def probe_class(kind: str) -> type[Probe[Any]]:
    """The probe class registered as ``kind``; a clear error when it breaks the contract."""
    return PROBES.get_class(kind, Probe)  # type: ignore[no-any-return]
