"""The generalisation probe suite: each probe is ``run(policy, ctx) -> ProbeResult``."""

from intentgym.probes.base import PROBES, Metric, Probe, ProbeContext, ProbeResult
from intentgym.probes.capability import CapabilityProbe
from intentgym.probes.compliance import ComplianceGapProbe
from intentgym.probes.forced_choice import (
    ForcedChoiceProbe,
    available_sets,
    load_anthropic,
    load_set,
)
from intentgym.probes.free_form import FreeFormProbe
from intentgym.probes.in_domain import InDomainProbe

__all__ = [
    "PROBES",
    "CapabilityProbe",
    "ComplianceGapProbe",
    "ForcedChoiceProbe",
    "FreeFormProbe",
    "InDomainProbe",
    "Metric",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "available_sets",
    "load_anthropic",
    "load_set",
]
