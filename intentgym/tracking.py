"""Experiment tracking: W&B (online, or offline when there is no API key or network) or nothing."""

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
                "W&B offline (no API key or no network); upload later with `wandb sync %s`",
                run_dir / "wandb",
            )
        os.environ["WANDB_MODE"] = resolved  # so the trainer callbacks agree
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

    def log_rows(self, rows: list[dict[str, Any]]) -> None:
        flat = {f"probe/{r['phase']}/{r['probe']}/{r['metric']}": r["value"] for r in rows}
        self.run.log(flat)
        self.run.summary.update(flat)

    def update_config(self, values: dict[str, Any]) -> None:
        """Add to the run's config, e.g. the constructor arguments of a reward model it built."""
        self.run.config.update(values, allow_val_change=True)

    def finish(self, ok: bool = True) -> None:
        self.run.finish(exit_code=0 if ok else 1)


def _resolve_mode(mode: str) -> Literal["online", "offline", "disabled"]:
    if mode in ("online", "offline", "disabled"):
        return cast(Literal["online", "offline", "disabled"], mode)
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()):
        return "offline"
    return "online" if _reachable("api.wandb.ai", 443) else "offline"


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
