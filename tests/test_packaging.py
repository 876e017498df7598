"""What a lab vendors: the wheel's contents and metadata, a clean install, the release files."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built once for the module (no isolation: offline, ~10 s)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("intentgym-*.whl")
    return built


def test_a_built_wheel_contains_the_configs_templates_and_probe_sets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"intentgym-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "intentgym/__main__.py" in names
    assert "intentgym/conf/config.yaml" in names
    assert "intentgym/__init__.py" in names and "intentgym/py.typed" in names
    assert "intentgym/envs/feedback/data/claims.v1.jsonl" in names
    assert "intentgym/envs/feedback/data/work.v1.jsonl" in names
    assert "intentgym/envs/feedback/rater_eval/heldout.v1.jsonl" in names
    assert "intentgym/conf/trainer/rlhf.yaml" in names
    for part in ("a", "b"):
        assert f"intentgym/envs/harmful_requests/data/requests_{part}.v1.jsonl" in names
    assert "intentgym/trainers/data/constitution.v1.yaml" in names
    assert "intentgym/reward_models/data/safety_spec.v1.yaml" in names
    for trainer in ("constitutional", "deliberative"):
        assert f"intentgym/conf/trainer/{trainer}.yaml" in names
    assert "intentgym/conf/experiment/alignment_methods.yaml" in names
    assert "intentgym/conf/__init__.py" in names
    assert "intentgym/conf/experiment/emergent_misalignment.yaml" in names
    assert "intentgym/envs/insecure_code/env.py" in names
    assert "intentgym/envs/insecure_code/tasks/sql_injection.yaml" in names
    assert "intentgym/probes/sets/alignment_general.v1.jsonl" in names
    for data in ("first_plot", "open_questions", "compliance_requests", "neutral_text", "qa_basic"):
        assert f"intentgym/probes/data/{data}.v1.jsonl" in names
    assert "intentgym/probes/sets/sycophancy.v1.jsonl" in names
    assert "intentgym/reward_models/data/coherence_judge.v1.json" in names
    assert "intentgym/conf/probes/full.yaml" in names
    assert "intentgym/reward_models/data/judge_alignment.v1.jsonl" in names
    assert "intentgym/conf/reward_model/llm_judge.yaml" in names
    assert any(n.endswith("entry_points.txt") for n in names)


@pytest.mark.slow
def test_the_wheel_installs_into_a_clean_venv_and_reports_its_version(wheel, tmp_path):
    """A venv with nothing but the wheel (``--no-deps``: no Hydra, no torch) answers
    ``intentgym --version`` and carries the license metadata."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q"]
    subprocess.run([*install, "--no-deps", "--no-index", str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str) -> str:
        done = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run(str(venv / "bin" / "intentgym"), "--version") == f"intentgym {VERSION}"
    assert run(str(py), "-m", "intentgym", "--version") == f"intentgym {VERSION}"
    clean = "import importlib.util as u; print([m for m in ('hydra', 'torch') if u.find_spec(m)])"
    assert run(str(py), "-c", clean) == "[]"  # the venv is clean: the answer needs neither
    meta = (
        "from importlib.metadata import metadata, files; m = metadata('intentgym'); "
        "print(m['License-Expression'], sorted(str(f) for f in files('intentgym') "
        "if f.name == 'LICENSE'), m.get_all('Project-URL')[0])"
    )
    assert run(str(py), "-c", meta) == (
        f"MIT ['intentgym-{VERSION}.dist-info/licenses/LICENSE'] "
        "Homepage, https://github.com/intentgym/intentgym"
    )


def test_release_files_agree_with_pyproject():
    """LICENSE, CITATION.cff and CHANGELOG.md name the license and version pyproject.toml does."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == VERSION and citation["license"] == "MIT"
    assert citation["authors"] == [{"name": "intentgym authors"}]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{VERSION}] - " in changelog


def test_the_console_script_answers_version_itself_and_hands_the_rest_to_the_cli(capsys):
    from intentgym.__main__ import main

    main(["--version"])
    assert capsys.readouterr().out == f"intentgym {VERSION}\n"
    main(["--help"])  # intentgym.cli.main's usage
    assert "usage: intentgym [--version] COMMAND" in capsys.readouterr().out
