from __future__ import annotations

import subprocess
import sys
import zipfile

from .conftest import ROOT


def test_a_built_wheel_contains_the_configs_templates_and_probe_sets(tmp_path):
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
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("intentgym-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "intentgym/conf/config.yaml" in names
    assert "intentgym/__init__.py" in names and "intentgym/py.typed" in names
    assert "intentgym/envs/feedback/data/claims.v1.jsonl" in names
    assert "intentgym/envs/feedback/data/work.v1.jsonl" in names
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
