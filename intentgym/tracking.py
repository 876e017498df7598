"""Experiment tracking: W&B (online, or offline when there is no API key or network) or nothing.

The W&B mode, first match wins:

1. ``logger.mode`` in the config when it is ``online``, ``offline`` or ``disabled``;
2. the ``WANDB_MODE`` environment variable when set (``offline``/``dryrun``: offline,
   ``disabled``: disabled, ``online``/``run``: online), so an offline machine or CI that says
   ``WANDB_MODE=offline`` is never contacted;
3. auto-detection (``logger.mode=auto``, WANDB_MODE unset or empty): online with an API key
   (``WANDB_API_KEY`` or ``~/.netrc``) and a reachable api.wandb.ai, else offline.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Literal, cast

log = logging.getLogger(__name__)


class NullTracker:
    report_to = "none"

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        pass

    def update_config(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, ok: bool = True) -> None:
        pass


class WandbTracker:
    """One W&B run per intentgym run; TRL's training metrics join it (``report_to="wandb"``)."""

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
    ) -> None:
        import wandb

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
            self.run = wandb.init(
                project=project,
                config=config,
                dir=str(run_dir),
                name=name,
                group=group,
                mode=resolved,
                tags=tags,
                reinit="finish_previous",
            )
        except BaseException:
            self._restore_mode()
            raise

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        flat = {f"probe/{r['phase']}/{r['probe']}/{r['metric']}": r["value"] for r in rows}
        self.run.log(flat)
        self.run.summary.update(flat)

    def update_config(self, values: dict[str, Any]) -> None:
        """Add to the run's config, e.g. the constructor arguments of a reward model it built."""
        self.run.config.update(values, allow_val_change=True)

    def finish(self, ok: bool = True) -> None:
        try:
            self.run.finish(exit_code=0 if ok else 1)
        finally:
            self._restore_mode()

    def _restore_mode(self) -> None:
        if self._previous_mode is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = self._previous_mode


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
