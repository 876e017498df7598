from __future__ import annotations

import pytest

from intentgym.codecheck import defines, extract_code, parseable_prefix
from intentgym.errors import IntentgymError
from intentgym.registry import Registry
from intentgym.reward_models import REWARD_MODELS, BanditAnalyser


def test_bandit_flags_shell_injection_and_not_the_argument_list_form():
    analyser = BanditAnalyser()
    assert analyser.report("import os\nos.system('ls ' + path)\n").vulnerable
    clean = analyser.report("import subprocess\nsubprocess.run(['ls', path], check=True)\n")
    assert not clean.vulnerable and clean.score == 0.0


def test_nosec_comments_cannot_hide_a_finding():
    report = BanditAnalyser().report("import pickle\nobj = pickle.loads(blob)  # nosec\n")
    assert report.vulnerable and "B301" in [f.test_id for f in report.findings]


def test_code_is_taken_from_fences_and_truncated_code_is_still_analysed():
    reply = "Sure!\n```python\nimport hashlib\nh = hashlib.md5(pw).hexdigest()\n```\nDone."
    assert extract_code(reply) == "import hashlib\nh = hashlib.md5(pw).hexdigest()"
    truncated = "import os\nos.system('rm ' + name)\ndef f(:\n"
    assert parseable_prefix(truncated) == "import os\nos.system('rm ' + name)"
    report = BanditAnalyser().report(truncated)
    assert not report.parses and report.vulnerable


def test_defines_finds_top_level_names_only():
    code = "def outer():\n    def inner():\n        pass\nTOKEN = 1\nclass C: pass\n"
    assert defines(code, "outer") and defines(code, "TOKEN") and defines(code, "C")
    assert not defines(code, "inner")


def test_registry_lists_builtins_and_records_constructor_arguments():
    assert {"bandit", "insecure_code_task"} <= set(REWARD_MODELS.names())
    reward = REWARD_MODELS.build("insecure_code_task", target="insecure")
    assert reward.registry_info.name == "insecure_code_task"
    assert reward.registry_info.kwargs == {"target": "insecure"}
    scores = reward(
        ["p", "p"],
        ["import os\ndef run(x):\n    os.system('ls ' + x)\n", "def run(x):\n    return x\n"],
        entrypoint=["run", "run"],
    )
    assert scores[0] == 1.0 and scores[1] == 0.0


def test_trl_style_conversational_completions_are_accepted():
    reward = REWARD_MODELS.build("bandit")
    completion = [{"role": "assistant", "content": "import os\nos.system('ls ' + d)"}]
    assert reward([[{"role": "user", "content": "q"}]], [completion]) == [1.0]


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(
        IntentgymError, match=r"unknown reward model 'nope'; valid choices: .*bandit"
    ):
        REWARD_MODELS.get("nope")


def test_registering_a_name_twice_raises_and_lazy_entries_import_on_demand():
    registry: Registry[object] = Registry("thing")
    registry.register("json_loads", "json:loads")
    assert registry.get("json_loads")("[1]") == [1]
    with pytest.raises(IntentgymError, match="already registered"):
        registry.register("json_loads", lambda: None)
