from __future__ import annotations

import json

import pytest
import torch

from intentgym import steering
from intentgym.errors import IntentgymError
from intentgym.models import eval_mode
from intentgym.steering import Pair


def _pairs(n: int = 6) -> list[Pair]:
    return [
        Pair(f"p{i}", "toy", f"question number {i}", f"kind answer {i} here", f"rude reply {i} now")
        for i in range(n)
    ]


@pytest.mark.parametrize("trait", steering.TRAITS)
def test_builtin_pair_sets_have_100_pairs_each_and_a_held_out_split(trait):
    pairs = steering.load_pairs(trait)
    train, held = steering.split_pairs(pairs)
    assert len(pairs) >= 100 and len({p.id for p in pairs}) == len(pairs)
    assert {p.trait for p in pairs} == {trait}
    assert 0.1 * len(pairs) < len(held) < 0.3 * len(pairs)
    assert not {p.id for p in train} & {p.id for p in held}
    assert all(p.positive != p.negative for p in pairs)


def test_pair_files_by_path_and_bad_input_give_clear_errors(tmp_path):
    good = tmp_path / "mine.jsonl"
    rows = [
        {"id": p.id, "prompt": p.prompt, "positive": p.positive, "negative": p.negative}
        for p in _pairs(3)
    ]
    good.write_text("\n".join(json.dumps(r) for r in rows))
    assert [p.id for p in steering.load_pairs(str(good))] == ["p0", "p1", "p2"]
    with pytest.raises(IntentgymError, match=r"unknown trait 'honestly'.*honesty"):
        steering.load_pairs("honestly")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "prompt": "q", "positive": "a"}) + "\n")
    with pytest.raises(IntentgymError, match=r"bad.jsonl:1: missing negative"):
        steering.load_pairs(str(bad))
    with pytest.raises(IntentgymError, match="unknown direction method 'svd'"):
        steering.direction(torch.zeros(2, 4), torch.zeros(2, 4), "svd")


def test_layers_are_checked_and_negative_indices_count_from_the_end(tiny_policy):
    n = len(steering.decoder_layers(tiny_policy))
    assert steering.check_layers(tiny_policy, [-1, 0]) == [0, n - 1]
    with pytest.raises(IntentgymError, match=f"layer {n} does not exist.*0..{n - 1}"):
        steering.check_layers(tiny_policy, [n])


def test_reply_activations_average_the_reply_tokens_of_each_layer(tiny_policy):
    """Batched and padded activations equal a hand computation on each sequence alone."""
    prompts, replies = ["short", "a much longer question here"], [" yes", " no thanks at all"]
    got = steering.reply_activations(tiny_policy, prompts, replies, [0, -1], batch_size=2)
    contexts = steering.chat_prompts(
        tiny_policy, [[{"role": "user", "content": p}] for p in prompts]
    )
    last = len(steering.decoder_layers(tiny_policy)) - 1
    for i, (context, reply) in enumerate(zip(contexts, replies, strict=True)):
        c = tiny_policy.tokenizer(context, add_special_tokens=False)["input_ids"]
        r = tiny_policy.tokenizer(reply, add_special_tokens=False)["input_ids"]
        with eval_mode(tiny_policy), steering._recording(tiny_policy, [0, last]) as states:
            tiny_policy.model(input_ids=torch.tensor([c + r]))
        for layer in (0, last):
            want = states[layer][0, len(c) :].float().mean(0)
            assert torch.allclose(got[layer][i], want, atol=1e-5)


def test_mean_difference_and_pca_directions_on_known_differences():
    torch.manual_seed(0)
    signal = torch.tensor([3.0, 0.0, 0.0, 0.0])
    negative = torch.randn(40, 4)
    positive = negative + signal + 0.1 * torch.randn(40, 4)
    mean = steering.direction(positive, negative)
    pca = steering.direction(positive, negative, "pca")
    assert torch.allclose(mean, signal, atol=0.1)
    assert steering.cosine(pca, signal) > 0.99  # oriented along +signal, not -signal
    assert float(pca.norm()) == pytest.approx(float(torch.dot(mean, pca / pca.norm())), rel=1e-5)


def test_steering_adds_alpha_times_the_vector_at_the_layer_and_is_removed_after(tiny_policy):
    ids = tiny_policy.tokenizer("hello there", return_tensors="pt")["input_ids"]
    hidden = tiny_policy.model.config.hidden_size
    vector = torch.zeros(hidden)
    vector[0] = 1.0
    with eval_mode(tiny_policy):

        def states() -> torch.Tensor:
            with steering._recording(tiny_policy, [0]) as out:
                tiny_policy.model(input_ids=ids)
            return out[0]

        before = states()
        with steering.steering(tiny_policy, {0: vector}, 0.0):
            assert torch.equal(states(), before)
        with steering.steering(tiny_policy, {0: vector}, 2.5):
            shifted = states()
        assert torch.equal(states(), before)
    assert torch.allclose(shifted - before, (2.5 * vector).expand_as(before), atol=1e-5)


def test_directions_from_pairs_separate_the_two_sides(tiny_policy):
    pairs = _pairs()
    found = steering.directions(tiny_policy, pairs, [-1])
    pos, neg = steering.pair_activations(tiny_policy, pairs, [-1])
    layer = next(iter(found))
    unit = found[layer] / found[layer].norm()
    assert float((pos[layer] @ unit).mean()) > float((neg[layer] @ unit).mean())


def test_pair_activations_show_a_progress_bar_only_when_asked(tiny_policy, capsys):
    pairs = _pairs()
    quiet = steering.pair_activations(tiny_policy, pairs, [-1])
    assert capsys.readouterr().err == ""
    shown = steering.pair_activations(tiny_policy, pairs, [-1], desc="steering: activations")
    assert "steering: activations" in capsys.readouterr().err
    for q, s in zip(quiet, shown, strict=True):
        assert q.keys() == s.keys() and all(torch.equal(q[k], s[k]) for k in q)


@pytest.mark.slow
def test_steering_effect_script_pairs_every_alpha_with_alpha_zero(tiny_policy):
    """scripts/steering_effect.py: alpha 0 changes nothing; other alphas give paired changes."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "steering_effect.py"
    spec = importlib.util.spec_from_file_location("steering_effect", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def judge(prompts, completions):  # counts words: enough to check the plumbing
        return [float(len(c[0]["content"].split())) for c in completions]

    rows = module.steering_effect(
        tiny_policy, "kindness", [-1], [0.0, 64.0], max_new_tokens=8, judge=judge
    )
    assert [(r["layer"], r["alpha"]) for r in rows] == [(1, 0.0), (1, 0.0), (1, 64.0)]
    assert rows[0]["coherence"][0] == pytest.approx(rows[1]["coherence"][0])
    unsteered, steered = rows[1], rows[2]
    assert unsteered["set"] == "harmful_advice" and unsteered["n"] == 60
    # alpha 0 against alpha 0: no change, and an interval that says how little 60 items can
    # rule out (never a zero-width one)
    assert unsteered["delta"][0] == pytest.approx(0.0, abs=1e-9)
    assert unsteered["delta"][1] < 0 < unsteered["delta"][2]
    assert steered["delta"][0] == pytest.approx(
        steered["p_misaligned"] - steered["p_misaligned_alpha0"], abs=1e-9
    )
    assert steered["delta"] != unsteered["delta"]
