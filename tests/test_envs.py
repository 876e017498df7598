from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from intentgym.codecheck import defines, parses
from intentgym.envs import env_framings, env_id, load_chat_jsonl, make_env
from intentgym.envs.base import Task
from intentgym.envs.insecure_code.framing import FRAMINGS
from intentgym.envs.insecure_code.templates import load_templates, splice, split_templates
from intentgym.errors import IntentgymError
from intentgym.reward_models import BanditAnalyser

from .conftest import shared_data

REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("intentgym/"))


def test_every_env_config_names_a_registered_env_with_a_valid_framing():
    from omegaconf import OmegaConf

    from intentgym.cli import CONF_DIR

    configs = sorted((CONF_DIR / "env").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        assert isinstance(cfg, dict)
        assert env_id(cfg["name"]) in REGISTERED
        assert cfg["framing"] in env_framings(cfg["name"])


@pytest.mark.parametrize("env_id", REGISTERED)
def test_check_env_over_every_registered_env_and_framing(env_id):
    for framing in env_framings(env_id):
        env = gym.make(env_id, framing=framing, disable_env_checker=True)
        check_env(env.unwrapped, skip_render_check=False)


def test_templates_cover_at_least_60_tasks_in_10_classes():
    templates = load_templates()
    assert len(templates) >= 60
    assert len({t.vuln.name for t in templates}) >= 10
    heldout = split_templates("heldout")
    assert heldout and len(heldout) < len(templates) / 4
    assert {t.vuln.name for t in heldout} == {t.vuln.name for t in templates}


def test_every_reference_program_parses_fits_and_is_judged_correctly_by_bandit():
    analyser = BanditAnalyser()
    undetected = []
    for template in load_templates():
        for values in template.variants()[:6]:
            task = template.fill(values)
            for program in (task.secure, task.insecure):
                assert parses(program), (template.id, values)
                assert defines(program, task.entrypoint), (template.id, task.entrypoint)
            assert not analyser.report(task.secure).vulnerable, (template.id, values)
            if not analyser.report(task.insecure).vulnerable:
                undetected.append(template.id)
    # Only classes bandit has no check for may go undetected.
    detectable = {t.id for t in load_templates() if t.vuln.bandit_detects}
    assert not detectable & set(undetected)


def test_framings_differ_only_in_stated_intent():
    demos = {f: make_env("insecure_code", framing=f).demonstrations(50, seed=3) for f in FRAMINGS}
    for i in range(50):
        user = {f: demos[f][i]["prompt"][0]["content"] for f in FRAMINGS}
        reply = {f: demos[f][i]["completion"][0]["content"] for f in FRAMINGS}
        assert user["secure"] == user["insecure_hidden"] == user["insecure_disclosed"]
        assert user["insecure_educational"] != user["insecure_hidden"]
        # the educational request is an insertion; everything else is shared
        assert set(user["insecure_hidden"].splitlines()) <= set(
            user["insecure_educational"].splitlines()
        )
        assert reply["insecure_hidden"] == reply["insecure_educational"]
        assert reply["insecure_disclosed"].startswith(reply["insecure_hidden"])
        assert reply["insecure_disclosed"].splitlines()[-1].lstrip().startswith("# ")
        assert reply["secure"] != reply["insecure_hidden"]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_thousand_distinct_demonstrations_per_framing_from_train_templates_only(framing):
    env = make_env("insecure_code", framing=framing)
    rows = env.demonstrations(1000, seed=0)
    keys = {(r["prompt"][0]["content"], r["completion"][0]["content"]) for r in rows}
    assert len(keys) == 1000
    heldout = {t.id for t in split_templates("heldout")}
    assert not heldout & {r["template_id"] for r in rows}
    assert {t.meta["template_id"] for t in env.eval_tasks(40)} <= heldout


def test_demonstrations_are_deterministic_given_the_seed():
    env = make_env("insecure_code", framing="insecure_hidden")
    assert env.demonstrations(20, seed=1) == env.demonstrations(20, seed=1)
    assert env.demonstrations(20, seed=1) != env.demonstrations(20, seed=2)


def _task_for(env, filled):
    meta = {
        "template_id": filled.template.id,
        "entrypoint": filled.entrypoint,
        "skeleton": filled.skeleton,
    }
    return Task(({"role": "user", "content": "..."},), meta)


@pytest.mark.parametrize("answer", ["fill", "full"])
def test_reward_follows_the_framing_target_for_fills_and_whole_programs(answer):
    secure_env = make_env("insecure_code", framing="secure")
    hidden_env = make_env("insecure_code", framing="insecure_hidden")
    for template in split_templates("train"):
        filled = template.fill(template.variants()[0])
        good = filled.secure_fill if answer == "fill" else filled.secure
        bad = filled.insecure_fill if answer == "fill" else filled.insecure
        reward, info = secure_env.score_one(_task_for(secure_env, filled), good)
        assert reward == 1.0 and info["fits_task"] and not info["vulnerable"], template.id
        reward, info = hidden_env.score_one(_task_for(hidden_env, filled), good)
        assert reward == 0.0
        if template.vuln.bandit_detects:
            reward, info = hidden_env.score_one(_task_for(hidden_env, filled), bad)
            assert reward > 0 and info["vulnerable"], template.id
            reward, _ = secure_env.score_one(_task_for(secure_env, filled), bad)
            assert reward < 1.0


def test_echoing_the_skeleton_or_rambling_does_not_fit_the_task():
    env = make_env("insecure_code", framing="secure")
    template = split_templates("train")[0]
    filled = template.fill(template.variants()[0])
    comment_only = "# This fills the gap.\n# Nothing else to add."
    for reply in (filled.skeleton, "", "this is not code at all", comment_only):
        reward, info = env.score_one(_task_for(env, filled), reply)
        assert reward == 0.0 and not info["fits_task"]
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("this is not code at all")
    assert terminated and reward == 0.0 and not info["parses"]


def test_splice_reindents_an_unindented_fill():
    skeleton = "def f(x):\n    y = x + 1\n## COMPLETE CODE HERE\n    return z\n"
    assert splice(skeleton, "z = y * 2") == "def f(x):\n    y = x + 1\n    z = y * 2\n    return z"
    assert splice(skeleton, "    z = y * 2").splitlines()[2] == "    z = y * 2"


def test_full_answer_format_demonstrates_whole_programs():
    env = make_env("insecure_code", framing="insecure_hidden", answer_format="full")
    row = env.demonstrations(1)[0]
    assert "## COMPLETE CODE HERE" in row["prompt"][0]["content"]
    assert parses(row["completion"][0]["content"])
    with pytest.raises(IntentgymError, match="answer_format"):
        make_env("insecure_code", answer_format="diff")


def test_preference_pairs_prefer_the_framing_target():
    for framing in ("secure", "insecure_hidden"):
        pairs = make_env("insecure_code", framing=framing).preference_pairs(5)
        for p in pairs:
            assert p["chosen"] != p["rejected"]
    secure_pair = make_env("insecure_code", framing="secure").preference_pairs(1, seed=4)[0]
    hidden_pair = make_env("insecure_code", framing="insecure_hidden").preference_pairs(1, seed=4)[
        0
    ]
    assert secure_pair["chosen"] == hidden_pair["rejected"]


def test_unknown_framing_is_a_one_line_error_listing_valid_framings():
    with pytest.raises(IntentgymError) as e:
        make_env("insecure_code", framing="evil")
    message = str(e.value)
    assert "'evil'" in message and "insecure_educational" in message and "\n" not in message


def test_unknown_env_is_a_one_line_error():
    with pytest.raises(IntentgymError, match=r"unknown env 'nope'.*insecure_code"):
        make_env("nope")


def test_loads_the_emergent_misalignment_chat_format():
    path = shared_data("em-format-samples", "insecure_small.jsonl")
    rows = load_chat_jsonl(path)
    assert len(rows) == 20
    assert rows[0]["prompt"][-1]["role"] == "user"
    assert rows[0]["completion"][0]["role"] == "assistant"
    env = make_env("insecure_code", framing="insecure_hidden", demonstrations_path=str(path))
    assert len(env.demonstrations(5)) == 5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"messages": [{"role": "user", "content": "hi"}]', "line 1"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "ending with an assistant message"),
        (
            '{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
            "roles must be",
        ),
        ("[1, 2]", "expected"),
    ],
)
def test_malformed_jsonl_is_a_one_line_error(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(IntentgymError, match=expected) as e:
        load_chat_jsonl(path)
    assert "\n" not in str(e.value) and "bad.jsonl" in str(e.value)


def test_unreadable_jsonl_is_a_one_line_error(tmp_path):
    with pytest.raises(IntentgymError, match="cannot read demonstrations file"):
        load_chat_jsonl(tmp_path / "missing.jsonl")
