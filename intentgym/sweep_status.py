"""Every job a sweep planned, and what became of it: done, failed (with its one-line error) or
missing (never started, or killed before it wrote anything).

The plan is read back from the sweep's own ``multirun.yaml`` (Hydra writes it when the sweep
starts): its command-line overrides are expanded the way Hydra's basic sweeper expands them
(the cartesian product of the sweep axes, in the order given), so a job that never started is
listed too. The report shows the table; ``intentgym report`` exits non-zero when a job failed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

DONE, FAILED, MISSING = "done", "failed", "missing"

#: run dirs of sweep jobs that failed, as seen by this process (``intentgym run`` exits 2 when any)
FAILED_JOBS: set[str] = set()


@dataclass(frozen=True)
class Job:
    num: int
    overrides: tuple[str, ...]
    status: str
    error: str = ""


def planned_jobs(sweep_dir: Path) -> list[tuple[str, ...]] | None:
    """Each job's overrides, in job-number order; None when ``sweep_dir`` is not a sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config = sweep_dir / "multirun.yaml"
    if not config.is_file():
        return None
    try:
        data = yaml.safe_load(config.read_text()) or {}
        task = [str(o) for o in data["hydra"]["overrides"]["task"]]
        params = (data["hydra"].get("sweeper") or {}).get("params") or {}
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    # the experiment's own sweep axes, unless the command line overrides the same key
    given = {o.split("=", 1)[0].lstrip("+~") for o in task}
    task += [f"{k}={v}" for k, v in params.items() if k not in given]
    axes: list[list[str]] = []
    for override in OverridesParser.create().parse_overrides(task):
        key = override.get_key_element()
        if override.is_sweep_override():
            try:
                values = [str(v) for v in override.sweep_string_iterator()]
            except Exception:  # glob or range sweeps: leave the job list to Hydra's dirs
                return None
            axes.append([f"{key}={v}" for v in values])
        else:
            axes.append([str(override.input_line)])
    return [tuple(job) for job in itertools.product(*axes)]


def sweep_jobs(sweep_dir: Path) -> list[Job] | None:
    """The status of every planned job of a sweep (None when the dir is not a sweep)."""
    jobs = planned_jobs(sweep_dir)
    if jobs is None:
        return None
    out = []
    for num, overrides in enumerate(jobs):
        job_dir = sweep_dir / str(num)
        if (job_dir / "results.jsonl").is_file():
            out.append(Job(num, overrides, DONE))
        elif (job_dir / "FAILED").is_file():
            lines = (job_dir / "FAILED").read_text(errors="replace").strip().splitlines()
            out.append(Job(num, overrides, FAILED, lines[0] if lines else "(no message)"))
        else:
            out.append(Job(num, overrides, MISSING))
    return out


def markdown(jobs: list[Job]) -> str:
    """The report's table of jobs (only the overrides that vary between jobs are shown)."""
    varying = [
        k for k in range(len(jobs[0].overrides)) if len({j.overrides[k] for j in jobs}) > 1
    ] if jobs else []  # fmt: skip
    lines = [
        f"## Sweep jobs: {sum(j.status == DONE for j in jobs)} done, "
        f"{sum(j.status == FAILED for j in jobs)} failed, "
        f"{sum(j.status == MISSING for j in jobs)} missing (of {len(jobs)} planned)\n",
        "| job | overrides | status | error |",
        "|---|---|---|---|",
    ]
    for job in jobs:
        shown = " ".join(job.overrides[k] for k in varying) or " ".join(job.overrides)
        error = job.error.replace("|", "\\|")
        lines.append(f"| {job.num} | {shown} | {job.status} | {error} |")
    return "\n".join(lines) + "\n"
