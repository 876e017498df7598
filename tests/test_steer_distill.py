from __future__ import annotations

import json

import pytest

from intentgym.errors import IntentgymError

TINY = ["debug=smoke", "trainer=steer_distill", "trainer.phases.steer_distill.layers=[-1]"]
# the forced-choice probe alone: enough to see the suite run after every iteration
FORCED_CHOICE_ONLY = [
    "probes=quick",
    *(f"~probes.{p}" for p in ("free_form", "compliance_gap", "capability", "in_domain")),
]
GOODHART = (
    "probe_accuracy@1",
    "cosine_to_original@1",
    "projection_positive@1",
    "projection_negative@1",
    "projection_gap@1",
    "behaviour",
    "behaviour_shift",
    "steered_kept_share",
    "steered_coherence",
    "alpha_used",
)


@pytest.mark.slow
def test_steer_distill_end_to_end_probes_every_iteration_and_plots_goodhart(tmp_path, run_composed):
    overrides = [*TINY, "trainer.phases.steer_distill.repeat=2", *FORCED_CHOICE_ONLY]
    rows = run_composed(overrides, tmp_path)
    phases = {r["phase"] for r in rows if r["probe"] == "forced_choice"}
    assert phases == {"base", "steer_distill_1", "steer_distill_2"}
    # the run is labelled by its trait, not by the env's framing it does not train on
    assert {r["framing"] for r in rows} == {"corrigibility"}
    metrics = {(r["phase"], r["probe"], r["metric"]) for r in rows}
    for phase in ("steer_distill_1", "steer_distill_2"):
        for name in GOODHART:
            assert (phase, "goodhart", name) in metrics, (phase, name)
    assert ("steer_distill_1", "steering", "delta_p_misaligned") in metrics
    assert ("steer_distill_1", "goodhart_base", "probe_accuracy@1") in metrics
    history = [json.loads(line) for line in (tmp_path / "goodhart.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history] == [0, 1, 2]
    assert history[0]["cosine_to_original@1"] == pytest.approx(1.0)
    assert "behaviour_steered" in history[0] and "steered_kept_share" in history[1]
    # the paired shift is the change against the base model's unsteered behaviour
    for h in history[1:]:
        assert h["behaviour_shift"][0] == pytest.approx(
            h["behaviour"][0] - history[0]["behaviour"][0], abs=1e-9
        )
    assert (tmp_path / "goodhart.png").stat().st_size > 10_000
    samples = [
        json.loads(line)
        for line in (tmp_path / "phases/steer_distill_1/samples.jsonl").read_text().splitlines()
    ]
    # the guard may halve alpha when too few replies pass; samples carry the alpha used
    assert samples and samples[0]["alpha"] == history[1]["alpha_used"] in (8.0, 4.0, 2.0)
    kept = [s["kept"] for s in samples]
    assert all(s["kept"] == (s["coherence"] > 50 and bool(s["reply"].strip())) for s in samples)
    assert history[1]["steered_kept_share"][0] == pytest.approx(sum(kept) / len(kept))
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
    with pytest.raises(IntentgymError, match=r"min_coherence must be >= 0, < 100, got 150"):
        run_composed([*TINY, "trainer.phases.steer_distill.min_coherence=150"], tmp_path)
    with pytest.raises(IntentgymError, match=r"min_kept_share must be > 0, <= 1, got 1.5"):
        run_composed([*TINY, "trainer.phases.steer_distill.min_kept_share=1.5"], tmp_path)


@pytest.mark.slow
def test_coherence_guard_that_rejects_every_reply_stops_the_run(tmp_path, run_composed):
    """Nothing is trained on replies the guard rejects; when it rejects all, a clear error."""
    overrides = [
        *TINY,
        *FORCED_CHOICE_ONLY,
        "trainer.phases.steer_distill.repeat=1",
        "trainer.phases.steer_distill.min_coherence=99.99",
        "trainer.phases.steer_distill.alpha=8",
    ]
    match = r"only 0 of 16 steered replies.*even at alpha 2 after 2 halvings.*lower alpha"
    with pytest.raises(IntentgymError, match=match):
        run_composed(overrides, tmp_path)
    assert not (tmp_path / "phases/steer_distill/adapter").exists()
    samples = [
        json.loads(line)
        for line in (tmp_path / "phases/steer_distill/samples.jsonl").read_text().splitlines()
    ]
    assert len(samples) == 16 and not any(s["kept"] for s in samples)
    assert {s["alpha"] for s in samples} == {2.0}


def test_steer_distill_experiment_composes_one_run_per_trait_labelled_by_it():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from intentgym import steering
    from intentgym.cli import CONF_DIR
    from intentgym.runner import plan_run

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for trait in steering.TRAITS:
            overrides = ["experiment=steer_distill", f"trainer.phases.steer_distill.trait={trait}"]
            plan = plan_run(OmegaConf.to_container(compose("config", overrides), resolve=True))
            assert [label for label, _ in plan.phases] == [f"steer_distill_{k}" for k in (1, 2, 3)]
            assert plan.framing == trait and plan.env.framing == "insecure_hidden"
