"""The probe contract, re-exported for probe modules: see :mod:`intentgym.api.probe`."""

from intentgym.api.probe import (
    PROBES,
    Metric,
    Probe,
    ProbeContext,
    ProbeResult,
    probe_class,
    register_probe,
)

__all__ = [
    "PROBES",
    "Metric",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "probe_class",
    "register_probe",
]
