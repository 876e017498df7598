"""The CLI's own commands, in process: --version, every command's --help, `config`, and the
versioned probe data files. Nothing here loads a model or runs an experiment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from intentgym.cli import main
from intentgym.config_view import config_text

COMMANDS = ("run", "config", "report", "list", "export-probes")


def _section(text: str, title: str) -> list[str]:
    """The lines of one section of `intentgym config` (from its title to the next blank line)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1 : end]


def _row(section: list[str], field: str) -> str:
    (row,) = [line for line in section if line[4:].split(" ")[0] == field]
    return row


def test_version_prints_the_installed_version_and_exits_0(capsys):
    import intentgym

    main(["--version"])  # returns: exit status 0
    assert capsys.readouterr().out.strip() == f"intentgym {intentgym.__version__}"
    assert intentgym.__version__ not in ("", "0+unknown")  # read from the installed metadata


def test_importing_intentgym_stays_light():
    code = "import sys, intentgym; print(intentgym.__version__, 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    version, torch_loaded = proc.stdout.split()
    assert version and torch_loaded == "False"


def test_top_level_help_lists_every_command_and_the_version_flag(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(f"  {command} " in out for command in COMMANDS)
    assert "--version" in out and "COMMAND --help" in out


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_that_exits_0(command, flag, capsys):
    try:
        main([command, flag])
    except SystemExit as e:  # argparse's help exits; run's returns
        assert e.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: intentgym {command}")


def test_run_help_explains_overrides_sweeps_and_config_groups(capsys):
    main(["run", "--help"])
    out = capsys.readouterr().out
    assert "overrides" in out and "-m " in out and "config groups" in out
    assert "trainer  " in out and "rlhf" in out and "smoke" in out  # each group's options
    assert "--hydra-help" in out and "--cfg job" in out and "intentgym config" in out


def test_hydra_knows_the_app_as_intentgym(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # run hands its arguments over in sys.argv
    main(["run", "--cfg", "hydra"])  # prints Hydra's config, runs nothing
    assert "    name: intentgym\n" in capsys.readouterr().out


def test_config_shows_each_phase_field_with_value_default_and_help():
    text = config_text(["trainer=rlhf"])
    assert "trainer: rlhf (sft -> reward -> rl)" in text
    rl = _section(text, "phase rl ")
    num_prompts = _row(rl, "num_prompts")  # rlhf.yaml keeps RLPhaseConfig's default, 48
    assert num_prompts.split()[:3] == ["num_prompts", "48", "48"]
    assert num_prompts.endswith("  Env prompts in the RL dataset.")
    beta = _row(rl, "beta")
    assert not beta.startswith("  *") and "KL coefficient to the reference policy." in beta
    reward = _section(text, "phase reward ")
    # conf/trainer/rlhf.yaml sets num_pairs: 64 (with a comment why); the default is 256
    assert _row(reward, "num_pairs").split()[:4] == ["*", "num_pairs", "64", "256"]
    assert _row(reward, "epochs").startswith("  * ")  # shared TrainingSettings fields too
    assert {"phase sft (SFTPhase)", "phase reward (RewardPhase)"} <= set(text.splitlines())
    # the probes, and the run's other settings
    assert "Held-out tasks to answer." in _row(_section(text, "probe in_domain"), "n_items")
    for title in ("run", "model (smollm2-135m)", "env (insecure_code", "limits", "logger (none)"):
        assert _section(text, title)
    assert "reward_model (none)" in text
    assert _row(_section(text, "run"), "seed").split() == ["seed", "0", "0"]


def test_config_with_debug_smoke_shows_the_limits_applied(capsys):
    main(["config", "trainer=rlhf", "debug=smoke"])
    out = capsys.readouterr().out
    assert out.startswith("# intentgym config trainer=rlhf debug=smoke")
    model = _row(_section(out, "model "), "name").split()
    assert model[:4] == ["*", "name", "tiny-random", "smollm2-135m"]
    limit = _row(_section(out, "limits"), "train_examples").split()
    assert limit == ["*", "train_examples", "16", "null"]
    # limits.train_examples=16 caps the rl phase's 48 prompts
    num_prompts = _row(_section(out, "phase rl "), "num_prompts").split()
    assert num_prompts[:4] == ["*", "num_prompts", "16", "48"]


def test_config_names_the_sweep_an_experiment_declares():
    text = config_text(["experiment=emergent_misalignment"])
    assert "# This config is a sweep (run -m): env.framing=secure,insecure_hidden," in text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["trainer=rlhf", "trainer.phases.rl.beta=abc"], "trainer.phases.rl.beta must be float"),
        (["trainer=nope"], "unknown trainer 'nope'"),
        (["trainer.phases.sft.bogus=1"], "Could not override 'trainer.phases.sft.bogus'"),
        (["env.framing=secure,insecure_hidden"], "sweeps are for `intentgym run -m`"),
        (["seed=["], "no viable alternative at input"),
    ],
)
def test_config_with_a_bad_override_exits_2_with_one_line(overrides, expected, capsys):
    with pytest.raises(SystemExit) as e:
        main(["config", *overrides])
    assert e.value.code == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], captured.err
    assert not captured.out


def test_report_without_a_directory_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report"])
    assert e.value.code == 2 and "usage: intentgym report" in capsys.readouterr().err


def test_probe_data_files_pick_the_numerically_newest_version(tmp_path):
    from intentgym.probes.data_files import builtin, version_key

    for name in ("items.v2.jsonl", "items.v10.jsonl", "items.v9.jsonl", "other.v1.jsonl"):
        (tmp_path / name).write_text("{}\n")
    files = builtin(tmp_path)
    assert files == {"items": tmp_path / "items.v10.jsonl", "other": tmp_path / "other.v1.jsonl"}
    ordered = sorted(tmp_path.glob("items.*"), key=version_key)
    assert [p.name for p in ordered] == ["items.v2.jsonl", "items.v9.jsonl", "items.v10.jsonl"]
    assert set(builtin()) >= {"first_plot", "open_questions"}  # the packaged files still resolve


def test_run_dry_run_prints_the_plan_and_runs_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["run", "--dry-run", "trainer=rlhf", "env=feedback"])
    out = capsys.readouterr().out
    assert "probes, run 3x (base, sft, rl):" in out
    assert "reward           RewardPhase: 64 examples" in out and "makes TrainedRewardModel" in out
    assert "rl               RLPhase: 48 examples, 1 epoch(s), ~12 optimiser steps of 16" in out
    assert "estimated time: ~" in out
    assert not (tmp_path / "outputs").exists()
    with pytest.raises(SystemExit) as exit_info:  # a config that cannot work fails the same way
        main(["run", "--dry-run", "trainer=deliberative"])
    assert exit_info.value.code == 2
    assert "needs tasks labelled with category, harmful" in capsys.readouterr().err
