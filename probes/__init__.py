"""The generalisation probe suite: each probe is ``run(policy, ctx) -> ProbeResult``."""

from intentgym.probes.base import PROBES, Metric, Probe, ProbeContext, ProbeResult
from intentgym.probes.forced_choice import ForcedChoiceProbe, available_sets, load_set
from intentgym.probes.in_domain import InDomainProbe

__all__ = [
    "PROBES",
    "ForcedChoiceProbe",
    "InDomainProbe",
    "Metric",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "available_sets",
    "load_set",
]
