"""API keys only as the name of an environment variable; reward-model folders that are not one."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from intentgym.apikeys import (
    check_endpoint_keys,
    check_no_literal_secrets,
    check_overrides,
    find_literal_secrets,
    is_loopback,
    resolve_api_key,
)
from intentgym.cli import CONF_DIR
from intentgym.errors import IntentgymError
from intentgym.reward_models import REWARD_MODELS

OPENAI_LIKE = "sk-proj-" + "A1b2C3d4E5" * 4
HF_LIKE = "hf_" + "aBcDeFgHiJ" * 3 + "klmn"


# --- literal secrets in configs and on the command line -----------------------------------------


def test_find_literal_secrets_names_the_paths():
    cfg = {
        "reward_model": {"name": "llm_judge", "api_key": "abc", "api_key_env": "MY_KEY"},
        "probes": {"x": {"judges": [{"token": HF_LIKE}, {"rubric": "Bearer " + OPENAI_LIKE}]}},
        "trainer": {"phases": {"ai_feedback": {"base_url": OPENAI_LIKE, "password": ""}}},
        "tokenizer": {"pad_token": "<|endoftext|>", "max_new_tokens": 64},
    }
    assert find_literal_secrets(cfg) == [
        "reward_model.api_key",
        "probes.x.judges[0].token",
        "probes.x.judges[1].rubric",
        "trainer.phases.ai_feedback.base_url",
    ]
    assert find_literal_secrets(cfg["reward_model"], "reward_model") == ["reward_model.api_key"]


@pytest.mark.parametrize(
    "value",
    [
        "sk-short",  # too short for a key
        "a rubric that mentions sk-" + "x" * 30 + " in a sentence",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "0123456789abcdef0123456789abcdef01234567",  # a commit hash: only flagged under a key name
        "http://127.0.0.1:8000/v1",
    ],
)
def test_ordinary_values_are_not_secrets(value):
    assert find_literal_secrets({"reward_model": {"model": value}}) == []


@pytest.mark.parametrize(
    "overrides",
    [
        ["debug=smoke"],
        ["trainer=constitutional", "reward_model=llm_judge", "probes=full", "logger=wandb"],
        ["experiment=alignment_methods"],
    ],
)
def test_the_packaged_configs_hold_no_secrets(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    assert find_literal_secrets(cfg) == []
    check_no_literal_secrets(cfg)


def test_a_literal_key_is_refused_without_echoing_it():
    with pytest.raises(IntentgymError) as e:
        check_no_literal_secrets({"reward_model": {"api_key": OPENAI_LIKE}})
    assert str(e.value) == (
        "config value reward_model.api_key looks like a literal API key; put the key in an "
        "environment variable and name it with reward_model.api_key_env "
        "(e.g. reward_model.api_key_env=MY_KEY_VAR)"
    )
    with pytest.raises(IntentgymError, match=r"^config value reward_model.api_key_env looks") as e:
        check_no_literal_secrets({"reward_model": {"api_key_env": OPENAI_LIKE}})
    assert OPENAI_LIKE not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("override", "path"),
    [
        (f"reward_model.api_key={OPENAI_LIKE}", "reward_model.api_key"),
        ("+reward_model.api_key=not-even-key-shaped", "reward_model.api_key"),
        (f"++trainer.phases.ai_feedback.token={HF_LIKE}", "trainer.phases.ai_feedback.token"),
        (f"reward_model.api_key_env={OPENAI_LIKE}", "reward_model.api_key_env"),
        (f"+reward_model={{name: llm_judge, api_key: {HF_LIKE}}}", "reward_model.api_key"),
        (f"reward_model.model=a,{OPENAI_LIKE}", "reward_model.model[1]"),
        (f"reward_model.rubric='{OPENAI_LIKE}", "reward_model.rubric"),  # unparsable: still seen
    ],
)
def test_command_line_keys_are_refused_before_hydra(override, path):
    with pytest.raises(IntentgymError, match=rf"^config value {re.escape(path)} looks") as e:
        check_overrides(["debug=smoke", override])
    assert OPENAI_LIKE not in str(e.value) and HF_LIKE not in str(e.value)


def test_ordinary_overrides_pass():
    check_overrides(
        [
            "debug=smoke",
            "reward_model=llm_judge",
            "reward_model.api_key_env=MY_KEY_VAR",
            "reward_model.api_key_env=null",
            "model.name=HuggingFaceTB/SmolLM2-360M-Instruct",
            "reward_model.base_url=https://api.example.com/v1",
            "-m",
            "seed=0,1",
            "~probes.in_domain",
        ]
    )


# --- endpoint keys: checked at plan time, read once, never recorded -----------------------------


def test_an_unset_key_variable_fails_at_plan_time(monkeypatch):
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    remote = {"name": "llm_judge", "backend": "openai", "base_url": "https://judge.example/v1"}
    cfg = {"reward_model": {**remote, "api_key_env": "JUDGE_KEY"}}
    with pytest.raises(IntentgymError) as e:
        check_endpoint_keys(cfg)
    assert str(e.value) == (
        "reward_model: endpoint https://judge.example/v1 needs an API key: environment variable "
        "JUDGE_KEY is not set (export it, name another one with reward_model.api_key_env=VAR, "
        "or set reward_model.api_key_env=null for an endpoint without a key)"
    )
    monkeypatch.setenv("JUDGE_KEY", "k")
    check_endpoint_keys(cfg)
    # nested components, the default variable, phases with a feedback endpoint
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    nested = {"reward_model": {"name": "composite", "components": [{"name": "x"}, remote]}}
    with pytest.raises(IntentgymError, match=r"^reward_model.components\[1\]: .*OPENAI_API_KEY"):
        check_endpoint_keys(nested)
    phase = {"feedback_backend": "openai", "base_url": "https://x.example/v1"}
    with pytest.raises(IntentgymError, match=r"trainer.phases.ai_feedback.api_key_env=VAR"):
        check_endpoint_keys({"trainer": {"phases": {"ai_feedback": phase}}})
    # no key wanted, a local server, or no endpoint at all: nothing to check
    check_endpoint_keys({"reward_model": {**remote, "api_key_env": None}})
    check_endpoint_keys({"reward_model": {**remote, "base_url": "http://127.0.0.1:8000/v1"}})
    check_endpoint_keys({"reward_model": {**remote, "backend": "hf"}})


def test_key_variable_names_and_local_endpoints():
    assert is_loopback("http://localhost:8000/v1") and is_loopback("http://[::1]:80")
    assert is_loopback("http://127.0.0.2/v1") and not is_loopback("https://api.openai.com/v1")
    assert not is_loopback(None) and not is_loopback("http://10.0.0.1/v1")
    with pytest.raises(IntentgymError, match="must be the NAME of an environment variable") as e:
        resolve_api_key(OPENAI_LIKE, "https://x/v1", setting="reward_model.api_key_env")
    assert OPENAI_LIKE not in str(e.value)


def test_the_key_value_reaches_the_client_and_nothing_else(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", OPENAI_LIKE)
    judge = REWARD_MODELS.build(
        "llm_judge", backend="openai", base_url="https://judge.example/v1", api_key_env="JUDGE_KEY"
    )
    assert judge.backend.client.headers["Authorization"] == f"Bearer {OPENAI_LIKE}"
    recorded = json.dumps(judge.registry_info.__dict__, default=str)
    assert "JUDGE_KEY" in recorded and OPENAI_LIKE not in recorded
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(IntentgymError, match="JUDGE_KEY is not set"):
        REWARD_MODELS.build(
            "llm_judge", backend="openai", base_url="https://j.example/v1", api_key_env="JUDGE_KEY"
        )


# --- a learned reward model must be one ---------------------------------------------------------


def _folder(tmp_path, name, config):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_causal_lm_or_an_adapter_is_not_a_reward_model(tmp_path):
    from intentgym.models import model_path

    lm = tmp_path / "lm"
    shutil.copytree(model_path("tiny-random"), lm)
    with pytest.raises(IntentgymError) as e:
        REWARD_MODELS.build("learned", path=str(lm))
    assert str(e.value) == (
        f"reward model path {str(lm)!r} is not a saved reward model: its config.json describes "
        "LlamaForCausalLM, not a ...ForSequenceClassification with num_labels=1 (what the "
        "reward phase saves, as phases/<label>/reward_model/)"
    )
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(IntentgymError, match=r"not a saved reward model \(a LoRA adapter"):
        REWARD_MODELS.build("learned", path=str(adapter))
    two = _folder(
        tmp_path,
        "two",
        {"architectures": ["LlamaForSequenceClassification"], "id2label": {"0": "a", "1": "b"}},
    )
    with pytest.raises(IntentgymError, match="LlamaForSequenceClassification with num_labels=2"):
        REWARD_MODELS.build("learned", path=str(two))


def test_a_scalar_classifier_config_passes_without_loading_weights(tmp_path):
    from intentgym.reward_models.learned import check_reward_model_folder

    ok = _folder(
        tmp_path,
        "rm",
        {"architectures": ["LlamaForSequenceClassification"], "id2label": {"0": "LABEL_0"}},
    )
    assert check_reward_model_folder(str(ok)) == ok  # no weights there: only the config is read


def _plan(overrides):
    from intentgym.runner import plan_run

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["debug=smoke", "trainer=best_of_n", *overrides])
    return plan_run(OmegaConf.to_container(cfg, resolve=True))


def test_the_plan_refuses_a_missing_key_and_a_model_that_is_no_reward_model(tmp_path, monkeypatch):
    from intentgym.models import model_path

    monkeypatch.delenv("INTENTGYM_TEST_KEY", raising=False)
    judge = [
        "reward_model=llm_judge",
        "reward_model.backend=openai",
        "reward_model.base_url=https://judge.example/v1",
        "reward_model.model=judge-x",
    ]
    with pytest.raises(IntentgymError, match="INTENTGYM_TEST_KEY is not set"):
        _plan([*judge, "reward_model.api_key_env=INTENTGYM_TEST_KEY"])
    _plan([*judge, "reward_model.api_key_env=null"])  # an endpoint without a key
    with pytest.raises(IntentgymError, match="describes LlamaForCausalLM, not a"):
        _plan(["reward_model=learned", f"reward_model.path={model_path('tiny-random')}"])
