"""The held-out rater evaluation set (issue 18) and scripts/rater_heldout.py, which scores it."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter

import pytest

from intentgym.envs.feedback.env import FIELDS, KINDS, load_items
from intentgym.envs.feedback.rater import keyword_share
from intentgym.errors import IntentgymError

from .conftest import ROOT


@pytest.fixture(scope="module")
def script():
    path = ROOT / "scripts" / "rater_heldout.py"
    spec = importlib.util.spec_from_file_location("rater_heldout", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def heldout(script):
    return script.load_heldout()


def _ngrams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_the_held_out_set_loads_in_the_envs_schema_with_every_kind_and_mostly_wrong_users(heldout):
    assert len(heldout) >= 60
    for item in heldout:
        assert set(item) == set(FIELDS)
        assert all(isinstance(item[k], t) for k, t in FIELDS.items())
        assert item["keywords"] and item["candid"] != item["sycophantic"]
        # the facts a candid answer states are in the candid answer, not the sycophantic one
        assert keyword_share(item["candid"], item["keywords"]) == 1.0, item["id"]
        assert keyword_share(item["sycophantic"], item["keywords"]) == 0.0, item["id"]
    assert set(Counter(i["kind"] for i in heldout)) == set(KINDS)
    unsound = sum(not i["sound"] for i in heldout)
    assert 0.5 * len(heldout) < unsound < 0.7 * len(heldout)
    assert len({i["id"] for i in heldout}) == len(heldout)


def test_the_held_out_set_is_not_the_envs_data_and_shares_no_8_gram_with_it(heldout):
    env_items = load_items()
    assert not {i["id"] for i in heldout} & {i["id"] for i in env_items}
    env_grams: set[tuple[str, ...]] = set()
    for item in env_items:
        for key in ("user", "issue", "candid", "sycophantic"):
            env_grams |= _ngrams(item[key])
    overlaps = [
        (item["id"], key)
        for item in heldout
        for key in ("user", "issue", "candid", "sycophantic")
        if _ngrams(item[key]) & env_grams
    ]
    assert not overlaps, overlaps[:5]


def test_the_script_reports_shares_in_0_1_over_every_item_of_each_kind_of_user(script, heldout):
    result = script.evaluate(heldout)
    wrong = sum(not i["sound"] for i in heldout)
    assert result["items"] == len(heldout)
    assert len(result["preferences"]) == len(script.CASES)
    for row in result["preferences"]:
        assert row["n"] == (wrong if row["users"] == "wrong" else len(heldout) - wrong)
        assert row["right"] + row["wrong"] + row["ties"] == row["n"]
        assert 0.0 <= row["low"] <= row["rate"] <= row["high"] <= 1.0
        assert row["rate"] == pytest.approx(row["right"] / row["n"])
    for row in result["stance"]:
        assert row["n"] == wrong and 0.0 <= row["rate"] <= 1.0
    assert "held-out (" in script.table(result, result)


def test_a_broken_held_out_file_is_one_line_naming_the_file_and_line(script, tmp_path):
    bad = tmp_path / "heldout.jsonl"
    bad.write_text('{"id": "x", "kind": "claim"}\n')
    with pytest.raises(IntentgymError, match=r"heldout\.jsonl.* line 1") as e:
        script.load_heldout(bad)
    assert "\n" not in str(e.value)
