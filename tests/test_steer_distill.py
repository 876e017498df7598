from __future__ import annotations

import json

import pytest

from intentgym.errors import IntentgymError

TINY = ["debug=smoke", "trainer=steer_distill", "trainer.phases.steer_distill.layers=[-1]"]


def test_steer_distill_end_to_end_probes_every_iteration_and_plots_goodhart(tmp_path, run_composed):
    rows = run_composed([*TINY, "trainer.phases.steer_distill.repeat=2", "probes=quick"], tmp_path)
    phases = {r["phase"] for r in rows if r["probe"] == "forced_choice"}
    assert phases == {"base", "steer_distill_1", "steer_distill_2"}
    metrics = {(r["phase"], r["probe"], r["metric"]) for r in rows}
    for phase in ("steer_distill_1", "steer_distill_2"):
        for name in ("probe_accuracy@1", "cosine_to_original@1", "projection_gap@1", "behaviour"):
            assert (phase, "goodhart", name) in metrics, (phase, name)
    assert ("steer_distill_1", "steering", "delta_p_misaligned") in metrics
    assert ("steer_distill_1", "goodhart_base", "probe_accuracy@1") in metrics
    history = [json.loads(line) for line in (tmp_path / "goodhart.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history] == [0, 1, 2]
    assert history[0]["cosine_to_original@1"] == pytest.approx(1.0)
    assert (tmp_path / "goodhart.png").stat().st_size > 10_000
    samples = (tmp_path / "phases/steer_distill_1/samples.jsonl").read_text().splitlines()
    assert samples and json.loads(samples[0])["alpha"] == 8.0
    assert (tmp_path / "phases/steer_distill_2/adapter").is_dir()
    from intentgym.report import build_report

    report = build_report(tmp_path)
    assert "## goodhart/probe_accuracy@1" in report and "](goodhart.png)" in report


def test_bad_steer_distill_settings_are_clear_errors(tmp_path, run_composed):
    with pytest.raises(IntentgymError, match=r"repeat must be a whole number >= 1, got 0"):
        run_composed([*TINY, "trainer.phases.steer_distill.repeat=0"], tmp_path)
    with pytest.raises(IntentgymError, match=r"unknown trait 'bravery'.*honesty"):
        run_composed([*TINY, "trainer.phases.steer_distill.trait=bravery"], tmp_path)
    with pytest.raises(IntentgymError, match=r"method .*'svd'"):
        run_composed([*TINY, "trainer.phases.steer_distill.method=svd"], tmp_path)
