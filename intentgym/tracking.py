"""Experiment tracking: W&B as the lab notebook (offline unless a key and network say otherwise),
or nothing (``logger=none``, the default).

The W&B mode, first match wins:

1. ``logger.mode`` in the config when it is ``online``, ``offline`` or ``disabled``;
2. the ``WANDB_MODE`` environment variable when set (``offline``/``dryrun``: offline,
   ``disabled``: disabled, ``online``/``run``: online), so an offline machine or CI that says
   ``WANDB_MODE=offline`` is never contacted;
3. auto-detection (``logger.mode=auto``, WANDB_MODE unset or empty): online with an API key
   (``WANDB_API_KEY`` or ``~/.netrc``) and a reachable api.wandb.ai, else offline.

An offline run lives in ``<run dir>/wandb/offline-run-*``; ``wandb sync <that dir>`` uploads it
later. What one intentgym run puts in its W&B run (``logger=wandb``):

* **the run**: name ``<trainer>-<framing>-s<seed>``, ``job_type="run"``, ``group`` =
  ``logger.group`` or, in a sweep, the multirun directory's name (every arm of a sweep shares
  it), ``tags`` = trainer, env, framing, model (its last path part when the name is longer than
  W&B's 64 characters), then ``logger.tags``; ``config`` = the resolved run config, plus
  ``reward_model`` once the run builds one (what ``reward_model.json`` holds).
* **metrics**: every ``results.jsonl`` row as ``<phase>/<probe>/<metric>`` with
  ``.../ci_low``, ``.../ci_high`` (the 95% interval) and ``.../n``, in the history (one step per
  batch of rows) and in the summary; a value that is not a finite number (NaN: a metric with no
  interval, e.g. ``health/input_dependence``) is left out, as W&B's summary would store it as
  null. The summary also holds
  ``final/<probe>/<metric>`` (with the same three companions): each metric at the last phase
  that measured it, i.e. the finished model, so that a sweep's arms line up in one column
  whatever their phases are called. The ``budget`` and ``health`` rows are logged the same way.
* **tables**: one ``wandb.Table`` per phase and probe, key ``records/<phase>/<probe>``: the
  per-item records of ``records/<phase>/<probe>.jsonl`` (question, answer, judge scores, chosen
  option, ... as the probe wrote them). Columns are the union of the records' keys in the order
  first seen; a value that is not a string, number, bool or null is JSON-encoded. At most
  ``logger.max_table_rows`` rows (default 200; 0: no tables) -- the first ones, the file keeps
  them all; ``records/<phase>/<probe>/total`` in the summary says how many there were. The
  per-metric item values (``<probe>.items.jsonl``) are not logged: they only feed the paired
  comparisons of ``intentgym report``.
* **artifacts** (``logger.artifacts``): after each phase, its ``phases/<label>/adapter``
  (type ``adapter``), ``phases/<label>/model`` (type ``model``, full fine-tuning) and the folder
  of a reward model it trained (``TrainedRewardModel``, type ``reward_model``), each as the
  artifact ``<run name>-<label>-<kind>``. ``reference`` (default): ``add_reference("file://...")``
  -- checksums and sizes, nothing copied or uploaded, so the artifact points at this machine's
  run directory; ``upload``: ``add_dir``, copied into W&B's staging area (``~/.local/share/wandb``)
  and uploaded by ``wandb sync``; ``none``: no artifacts. Lineage is recorded in each artifact's
  metadata -- ``phase``, ``base_model`` (``model.name``) and ``previous`` (the name of the
  artifact the run logged before it, or the base model's name for the first one) -- and the
  artifacts are logged in phase order. W&B's own lineage (``use_artifact``) is not used: wandb
  refuses it in offline mode, and a run consuming its own outputs would draw no useful graph.
  The same artifact name in another run (another sweep of the same arm) becomes a new version.
* **the sweep's report**: when a sweep used ``logger=wandb`` (its ``multirun.yaml``, or any
  job's ``config.yaml``), ``ReportCallback`` logs one more run to the same project and group,
  ``job_type="report"``, name ``report-<group>``, in ``<sweep dir>/wandb``: ``report/table``
  (``report.csv`` as a Table), ``report/plot`` (``report.png``) and, unless
  ``logger.artifacts=none``, the artifact ``report-<group>`` (type ``report``) holding copies of
  ``report.md``, ``report.csv`` and ``report.png`` (copied, not referenced: they are rewritten
  whenever the report is rebuilt).

A W&B call that fails is not swallowed: it stops the run with one line, ``W&B could not <what>:
<error>`` (the run's ``FAILED`` says the same); in offline mode such a failure is a bug.
Resuming a run (``resume=true``) starts a new W&B run that logs what the resumed part does.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, cast

from intentgym.errors import IntentgymError, invalid_choice

log = logging.getLogger(__name__)

#: ``logger.artifacts`` values (module docstring)
ARTIFACT_MODES = ("reference", "upload", "none")
#: W&B's longest tag and artifact name
_MAX_TAG, _MAX_NAME = 64, 128


class NullTracker:
    report_to = "none"

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        pass

    def log_records(self, phase: str, records: dict[str, list[Any]]) -> None:
        pass

    def log_phase(self, label: str, phase_dir: Path, reward_model: Path | None = None) -> None:
        pass

    def update_config(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, ok: bool = True) -> None:
        pass


@contextlib.contextmanager
def _wandb_call(what: str) -> Iterator[None]:
    """Turn a failing W&B call into a one-line IntentgymError naming what was being done."""
    try:
        yield
    except (IntentgymError, KeyboardInterrupt):
        raise
    except Exception as e:
        detail = " ".join(str(e).split()) or "(no message)"
        raise IntentgymError(f"W&B could not {what}: {type(e).__name__}: {detail}") from e


class WandbTracker:
    """One W&B run per intentgym run (or per sweep report); TRL's training metrics join it
    (``report_to="wandb"``). What it logs: the module docstring."""

    report_to = "wandb"

    def __init__(
        self,
        *,
        project: str,
        config: dict[str, Any],
        run_dir: Path,
        name: str,
        group: str | None,
        mode: str = "auto",
        tags: list[str] | None = None,
        job_type: str = "run",
        max_table_rows: int = 200,
        artifacts: str = "reference",
        base_model: str | None = None,
    ) -> None:
        import wandb

        if artifacts not in ARTIFACT_MODES:
            raise invalid_choice("logger.artifacts", artifacts, list(ARTIFACT_MODES))
        self.name = name
        self.max_table_rows = max_table_rows
        self.artifacts = artifacts
        self.base_model = base_model
        #: the name of the artifact logged last (lineage: the next one's ``previous``)
        self.previous: str | None = None
        resolved = _resolve_mode(mode)
        if resolved == "offline":
            log.info(
                "W&B offline (%s); upload later with `wandb sync %s`",
                _why(mode),
                run_dir / "wandb",
            )
        # So the trainer callbacks agree; restored by finish(), so that the next run of this
        # process (a sweep's next job) does not mistake this run's mode for the user's WANDB_MODE.
        self._previous_mode = os.environ.get("WANDB_MODE")
        os.environ["WANDB_MODE"] = resolved
        try:
            with _wandb_call(f"start the run {name!r} ({resolved})"):
                self.run = wandb.init(
                    project=project,
                    config=config,
                    dir=str(run_dir),
                    name=name,
                    group=group,
                    job_type=job_type,
                    mode=resolved,
                    tags=_tags(tags or []),
                    reinit="finish_previous",
                )
        except BaseException:
            self._restore_mode()
            raise

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        """Each row as ``<phase>/<probe>/<metric>`` with its interval and n: history and
        summary, and ``final/<probe>/<metric>`` in the summary."""
        flat: dict[str, Any] = {}
        final: dict[str, Any] = {}
        for r in rows:
            values = {k: r.get(k) for k in ("value", "ci_low", "ci_high", "n")}
            if not _is_number(values["value"]):
                continue
            name = f"{r['probe']}/{r['metric']}"
            for key, v in values.items():
                if _is_number(v):
                    suffix = "" if key == "value" else f"/{key}"
                    flat[f"{r['phase']}/{name}{suffix}"] = v
                    final[f"final/{name}{suffix}"] = v
        if not flat:
            return
        with _wandb_call("log metrics"):
            self.run.log(flat)
            self.run.summary.update({**flat, **final})

    def log_records(self, phase: str, records: dict[str, list[Any]]) -> None:
        """One Table per probe: ``records/<phase>/<probe>``, at most ``max_table_rows`` rows."""
        import wandb

        if self.max_table_rows <= 0:
            return
        for probe, recs in records.items():
            if probe.endswith(".items") or not recs:
                continue
            columns, data = records_table(recs, self.max_table_rows)
            key = f"records/{phase}/{probe}"
            if len(recs) > len(data):
                log.info("W&B table %s: the first %d of %d records", key, len(data), len(recs))
            with _wandb_call(f"log the table {key}"):
                table = wandb.Table(
                    columns=list[str | int](columns), data=data, allow_mixed_types=True
                )
                self.run.log({key: table})
                self.run.summary[f"{key}/total"] = len(recs)

    def log_phase(self, label: str, phase_dir: Path, reward_model: Path | None = None) -> None:
        """The phase's adapter or full weights and a reward model it trained, as artifacts."""
        if self.artifacts == "none":
            return
        folders = [(kind, phase_dir / kind) for kind in ("adapter", "model")]
        if reward_model is not None:
            folders.append(("reward_model", Path(reward_model)))
        for kind, folder in folders:
            if folder.is_dir():
                self._log_folder(label, kind, folder)

    def _log_folder(self, label: str, kind: str, folder: Path) -> None:
        import wandb

        name = _artifact_name(f"{self.name}-{label}-{kind}")
        metadata = {
            "phase": label,
            "kind": kind,
            "base_model": self.base_model,
            "previous": self.previous or self.base_model,
            "path": str(folder.resolve()),
            "stored": self.artifacts,
        }
        with _wandb_call(f"log the artifact {name} ({folder})"):
            artifact = wandb.Artifact(name, type=kind, metadata=metadata)
            if self.artifacts == "upload":
                artifact.add_dir(str(folder))
            else:
                artifact.add_reference(folder.resolve().as_uri())
            self.run.log_artifact(artifact, aliases=[label])
        self.previous = name

    def log_report(self, root: Path) -> None:
        """A sweep's report.csv (Table), report.png (Image) and, unless logger.artifacts=none,
        the three report files as an artifact."""
        import wandb

        files = [root / f for f in ("report.md", "report.csv", "report.png")]
        logged: dict[str, Any] = {}
        with _wandb_call(f"log the report of {root}"):
            csv_file, png = files[1], files[2]
            if csv_file.is_file():
                with csv_file.open(newline="") as stream:
                    header, *body = list(csv.reader(stream))
                data = [[_number_or_text(v) for v in row] for row in body]
                logged["report/table"] = wandb.Table(
                    columns=list[str | int](header), data=data, allow_mixed_types=True
                )
            if png.is_file():
                logged["report/plot"] = wandb.Image(str(png))
            if logged:
                self.run.log(logged)
            present = [f for f in files if f.is_file()]
            if self.artifacts != "none" and present:
                artifact = wandb.Artifact(
                    _artifact_name(self.name),
                    type="report",
                    metadata={"sweep": str(root.resolve())},
                )
                for f in present:
                    artifact.add_file(str(f))
                self.run.log_artifact(artifact)

    def update_config(self, values: dict[str, Any]) -> None:
        """Add to the run's config, e.g. the constructor arguments of a reward model it built."""
        with _wandb_call("update the run config"):
            self.run.config.update(values, allow_val_change=True)

    def finish(self, ok: bool = True) -> None:
        try:
            with _wandb_call("finish the run"):
                self.run.finish(exit_code=0 if ok else 1)
        finally:
            self._restore_mode()

    def _restore_mode(self) -> None:
        if self._previous_mode is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = self._previous_mode


def records_table(records: list[Any], max_rows: int) -> tuple[list[str], list[list[Any]]]:
    """The columns (union of the records' keys, first seen first) and rows of the first
    ``max_rows`` records; non-scalar values JSON-encoded, a missing key None. A record that is
    not a mapping becomes a ``record`` column."""
    kept = [
        {str(k): v for k, v in r.items()} if isinstance(r, dict) else {"record": r}
        for r in records[:max_rows]
    ]
    columns = list(dict.fromkeys(k for r in kept for k in r))
    data = [[_cell(r.get(c)) for c in columns] for r in kept]
    return columns, data


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _number_or_text(text: str) -> Any:
    """A report.csv cell: a finite number where it reads as one, None where empty, else the
    text (``nan`` stays text: strict JSON has no NaN)."""
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _is_number(value: Any) -> bool:
    """A finite number (W&B's summary turns NaN into null: a missing bound is left out)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _tags(tags: list[str]) -> list[str]:
    """Unique, non-empty tags of at most 64 characters (a long model path: its last part)."""
    out = []
    for tag in (str(t) for t in tags):
        if len(tag) > _MAX_TAG:
            tag = Path(tag).name or tag
        tag = tag[:_MAX_TAG]
        if tag and tag not in out:
            out.append(tag)
    return out


def _artifact_name(name: str) -> str:
    """``name`` with what W&B refuses in artifact names (all but letters, digits, - _ .) as -."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:_MAX_NAME]


def sweep_logger(root: Path) -> dict[str, Any] | None:
    """The logger settings of a sweep that used ``logger=wandb`` (its multirun.yaml, else the
    first job config.yaml that says so), else None."""
    from intentgym.files import read_yaml

    for config_file in [root / "multirun.yaml", *sorted(root.glob("*/config.yaml"))]:
        if not config_file.is_file():
            continue
        config = read_yaml(config_file, "sweep config")
        logger = config.get("logger") if isinstance(config, dict) else None
        if isinstance(logger, dict) and logger.get("name") == "wandb":
            return logger
    return None


def log_sweep_report(root: Path) -> bool:
    """Log a sweep's report to a W&B run of its own (job_type ``report``) when the sweep used
    ``logger=wandb``; whether it did."""
    settings = sweep_logger(root)
    if settings is None:
        return False
    group = settings.get("group") or root.name
    config = {"sweep": str(root.resolve()), "logger": settings}
    tracker = WandbTracker(
        project=str(settings.get("project") or "intentgym"),
        config=config,
        run_dir=root,
        name=f"report-{group}",
        group=group,
        mode=str(settings.get("mode") or "auto"),
        tags=[str(t) for t in settings.get("tags") or []],
        job_type="report",
        artifacts=str(settings.get("artifacts") or "reference"),
    )
    ok = False
    try:
        tracker.log_report(root)
        ok = True
    finally:
        tracker.finish(ok)
    return True


Mode = Literal["online", "offline", "disabled"]

#: WANDB_MODE values and the mode each selects (wandb's own names; ``dryrun`` is its old offline)
ENV_MODES: dict[str, Mode] = {
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
    "online": "online",
    "run": "online",
}


def _env_mode() -> Mode | None:
    """The mode the WANDB_MODE environment variable asks for (None: unset, empty or unknown)."""
    value = os.environ.get("WANDB_MODE", "").strip().lower()
    if value and value not in ENV_MODES:
        log.warning("ignoring WANDB_MODE=%r; valid values: %s", value, ", ".join(ENV_MODES))
    return ENV_MODES.get(value)


def _resolve_mode(mode: str) -> Mode:
    """The W&B mode of a run: ``logger.mode`` > ``WANDB_MODE`` > auto-detection (module docstring)."""
    if mode in ("online", "offline", "disabled"):
        return cast(Mode, mode)
    from_env = _env_mode()
    if from_env is not None:
        return from_env
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()):
        return "offline"
    return "online" if _reachable("api.wandb.ai", 443) else "offline"


def _why(mode: str) -> str:
    """Why a run is offline, for the log line."""
    if mode == "offline":
        return "logger.mode=offline"
    if _env_mode() == "offline":
        return f"WANDB_MODE={os.environ['WANDB_MODE']}"
    return "no API key or no network"


def _netrc_has_wandb() -> bool:
    netrc = Path.home() / ".netrc"
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
