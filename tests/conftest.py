from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests never talk to W&B's servers and never wait on progress bars.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not present: {path}")
    return path


@pytest.fixture(scope="session")
def tiny_policy_factory():
    from intentgym.models import load_policy

    def make(dtype: str = "float32"):
        return load_policy("tiny-random", dtype=dtype)

    return make


@pytest.fixture
def tiny_policy(tiny_policy_factory):
    return tiny_policy_factory()


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "intentgym.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


@pytest.fixture
def run_composed():
    """Compose the Hydra config with ``overrides``, plan and execute it in ``run_dir``; the rows
    of its results.jsonl."""
    import json

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from intentgym.cli import CONF_DIR
    from intentgym.runner import execute, plan_run

    def run(overrides: list[str], run_dir: Path) -> list[dict]:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        plan = plan_run(OmegaConf.to_container(cfg, resolve=True))
        results = execute(plan, run_dir)
        return [json.loads(line) for line in results.read_text().splitlines()]

    return run
