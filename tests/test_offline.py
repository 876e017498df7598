"""Offline by default: W&B honours WANDB_MODE, telemetry is off, a smoke run makes no network call."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest

from intentgym import offline, tracking

_VARS = (*offline.TELEMETRY_ENV, *offline.OFFLINE_ENV, "DISABLE_TELEMETRY", "WANDB_MODE")


@pytest.fixture
def clean_env():
    """The process environment (and the Hub flags derived from it) as it was, after the test."""
    saved = dict(os.environ)
    set_here = dict(offline._SET_HERE)
    for name in _VARS:
        os.environ.pop(name, None)
    offline._SET_HERE.clear()
    yield
    os.environ.clear()
    os.environ.update(saved)
    offline._SET_HERE.clear()
    offline._SET_HERE.update(set_here)
    offline._refresh_imported()


# --- W&B mode: logger.mode > WANDB_MODE > auto-detection ----------------------------------------


@pytest.fixture
def online_machine(monkeypatch, clean_env):
    """A machine where auto-detection would pick online: a key and a reachable api.wandb.ai."""
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    probes: list[str] = []
    monkeypatch.setattr(tracking, "_reachable", lambda host, port: probes.append(host) or True)
    return probes


@pytest.mark.parametrize(
    ("env", "expected"),
    [("offline", "offline"), ("dryrun", "offline"), ("disabled", "disabled"), ("online", "online")],
)
def test_an_explicit_wandb_mode_wins_over_auto_detection(
    online_machine, monkeypatch, env, expected
):
    monkeypatch.setenv("WANDB_MODE", env)
    assert tracking._resolve_mode("auto") == expected
    assert online_machine == []  # no probe of the network either


def test_the_config_mode_wins_over_wandb_mode(online_machine, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking._resolve_mode("online") == "online"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert tracking._resolve_mode("disabled") == "disabled"
    assert tracking._resolve_mode("offline") == "offline"


@pytest.mark.parametrize("env", ["", "bogus"])
def test_an_empty_or_unknown_wandb_mode_leaves_auto_detection(online_machine, monkeypatch, env):
    monkeypatch.setenv("WANDB_MODE", env)
    assert tracking._resolve_mode("auto") == "online"
    assert online_machine == ["api.wandb.ai"]
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setattr(tracking, "_netrc_has_wandb", lambda: False)
    assert tracking._resolve_mode("auto") == "offline"  # no key: offline without probing


def test_a_run_does_not_leave_its_mode_for_the_next_one(monkeypatch, tmp_path, clean_env):
    """A sweep's jobs share a process: job 1's resolved mode must not become job 2's WANDB_MODE."""
    modes: list[str] = []

    class FakeRun:
        def finish(self, exit_code: int = 0) -> None:
            pass

    def init(**kwargs):
        modes.append(kwargs["mode"])
        assert os.environ["WANDB_MODE"] == kwargs["mode"]  # the trainer callbacks agree
        return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    settings = {"project": "p", "config": {}, "run_dir": tmp_path, "name": "n", "group": None}
    tracking.WandbTracker(**settings, mode="disabled").finish()
    assert "WANDB_MODE" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "offline")
    tracking.WandbTracker(**settings, mode="disabled").finish()
    assert os.environ["WANDB_MODE"] == "offline"
    tracking.WandbTracker(**settings, mode="auto").finish()
    assert modes == ["disabled", "disabled", "offline"]


# --- telemetry and Hub access -------------------------------------------------------------------


def test_disable_telemetry_sets_the_opt_outs_and_keeps_the_users(clean_env):
    import huggingface_hub.constants as hub

    os.environ["DO_NOT_TRACK"] = "0"  # the user's own choice stays
    offline.disable_telemetry()
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] == "1"
    assert os.environ["WANDB_ERROR_REPORTING"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "0"
    # huggingface_hub read its flags when it was imported, before the call: they follow anyway
    assert hub.HF_HUB_DISABLE_TELEMETRY is True
    assert hub.HF_HUB_DISABLE_IMPLICIT_TOKEN is True


def test_offline_unless_hub_goes_offline_only_without_hub_models(clean_env, tmp_path):
    import huggingface_hub.constants as hub

    assert offline.hub_ids("tiny-random", {"env": {"demonstrations_path": "data/x.jsonl"}}) == []
    assert offline.offline_unless_hub("tiny-random") is True
    assert all(os.environ[n] == "1" for n in offline.OFFLINE_ENV)
    assert hub.HF_HUB_OFFLINE is True and hub.is_offline_mode()
    # The next run of the process (a sweep job) names a hub judge: the switches this module set
    # are taken back.
    cfg = {"reward_model": {"name": "llm_judge", "model": "Org/judge-7b"}}
    assert offline.hub_ids("tiny-random", cfg) == ["Org/judge-7b"]
    assert offline.offline_unless_hub("tiny-random", cfg) is False
    assert not any(n in os.environ for n in offline.OFFLINE_ENV)
    assert hub.HF_HUB_OFFLINE is False
    # A local folder is no hub id; a user's own setting is never touched.
    assert offline.offline_unless_hub(str(tmp_path)) is True
    os.environ.pop("HF_HUB_OFFLINE")
    os.environ.pop("TRANSFORMERS_OFFLINE")
    offline._SET_HERE.clear()
    os.environ["HF_HUB_OFFLINE"] = "1"
    assert offline.offline_unless_hub("Org/policy", cfg) is True
    assert os.environ["HF_HUB_OFFLINE"] == "1"


# --- a whole run with the network unplugged -----------------------------------------------------


@pytest.mark.slow
def test_a_smoke_run_with_wandb_needs_no_network(run_composed, tmp_path, monkeypatch, clean_env):
    import pytest_socket

    attempts: list[str] = []
    original = pytest_socket.SocketBlockedError.__init__

    def record(self, *args, **kwargs):  # also the attempts a library catches and hides
        attempts.append(str(args[0]) if args else "socket.socket")
        original(self, *args, **kwargs)

    monkeypatch.setattr(pytest_socket.SocketBlockedError, "__init__", record)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run_dir = tmp_path / "run"  # the runner itself turns telemetry off and the hub offline
    import requests  # noqa: F401  urllib3 opens a local IPv6 socket at import; nothing is sent

    pytest_socket.disable_socket(allow_unix_socket=True)  # W&B talks to wandb-core over AF_UNIX
    try:
        rows = run_composed(["debug=smoke", "trainer=sft", "logger=wandb"], run_dir)
    finally:
        pytest_socket.enable_socket()
    assert attempts == []
    assert {r["phase"] for r in rows} == {"base", "sft"}
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert results == rows and not (run_dir / "FAILED").exists()
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    assert os.environ["WANDB_MODE"] == "offline"  # the run restored what it found
