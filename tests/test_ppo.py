"""PPO (trainers/ppo.py): GAE against hand computation, the clipped losses, and learning a toy
reward whose optimum is known."""

from __future__ import annotations

import pytest
import torch

from intentgym.trainers.ppo import PPOSettings, PPOTrainer, gae, ppo_losses


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.2, 0.4, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last position is padding
    gamma, lam = 0.9, 0.8
    adv, ret = gae(rewards, values, mask, gamma, lam)
    d2 = 1.0 - 0.4  # terminal: no bootstrap from the padded position
    d1 = 0.0 + gamma * 0.4 - 0.2
    d0 = 0.0 + gamma * 0.2 - 0.5
    a2 = d2
    a1 = d1 + gamma * lam * a2
    a0 = d0 + gamma * lam * a1
    expected = torch.tensor([[a0, a1, a2, 0.0]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values * mask, atol=1e-6)


def test_clipped_surrogate_stops_pushing_past_the_clip():
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    adv = torch.tensor([[1.0, -1.0]])
    values = returns = torch.zeros(1, 2)
    # ratio e^0.5 > 1.2 with a positive advantage: clipped, so no gradient to go further
    new = torch.tensor([[0.5, 0.0]], requires_grad=True)
    pg, vf, stats = ppo_losses(new, old, adv, values, values, returns, mask, 0.2, 0.2)
    pg.backward()
    assert new.grad is not None
    assert new.grad[0, 0] == 0.0
    assert new.grad[0, 1] > 0.0  # negative advantage: lowering the log-prob lowers the loss
    assert stats["clipfrac"] == pytest.approx(0.5)
    assert float(vf) == 0.0


def test_value_loss_is_clipped_around_the_old_values():
    z = torch.zeros(1, 1)
    returns = torch.tensor([[1.0]])
    new_values = torch.tensor([[0.5]], requires_grad=True)
    _, vf, _ = ppo_losses(z, z, z, new_values, z, returns, torch.ones(1, 1), 0.2, 0.2)
    # max((0.5-1)^2, (0.2-1)^2) / 2: the clipped value is further from the return
    assert float(vf.detach()) == pytest.approx(0.5 * 0.8**2)


def test_ppo_learns_a_toy_reward_with_a_known_optimum(tiny_policy):
    """Reward = share of completion tokens from the lower half of the vocabulary. The random
    model starts near 0.5; the optimum (1.0) is known. PPO must approach it while the KL to the
    reference grows from zero."""
    torch.manual_seed(0)
    half = tiny_policy.model.config.vocab_size // 2

    def lower_half(prompts, completions, completion_ids, **_):
        return [sum(t < half for t in ids) / max(len(ids), 1) for ids in completion_ids]

    prompts = [[{"role": "user", "content": f"Say anything {i}."}] for i in range(8)]
    settings = PPOSettings(
        iterations=30,
        rollout_batch_size=8,
        minibatch_size=8,
        update_epochs=4,
        learning_rate=3e-3,
        max_new_tokens=6,
        beta=0.01,
        seed=0,
    )
    history = PPOTrainer(tiny_policy, prompts, [lower_half], settings).train()
    start = sum(r["reward"] for r in history[:5]) / 5
    end = sum(r["reward"] for r in history[-5:]) / 5
    assert 0.3 < start < 0.7
    assert end > 0.85, f"mean reward {start:.2f} -> {end:.2f}"
    assert history[-1]["kl"] > 0
    for row in history:
        assert {"reward", "kl", "entropy", "completion_length", "value_loss"} <= set(row)


def test_ppo_shows_a_progress_bar_over_iterations_only_when_asked(tiny_policy, capsys):
    prompts = [[{"role": "user", "content": "Say anything."}]] * 2
    settings = PPOSettings(
        iterations=2, rollout_batch_size=2, minibatch_size=2, update_epochs=1, max_new_tokens=2
    )

    def constant(prompts, completions, **_):
        return [1.0] * len(completions)

    PPOTrainer(tiny_policy, prompts, [constant], settings, desc="rl: ppo").train()
    err = capsys.readouterr().err
    assert "rl: ppo" in err and "2/2" in err
    PPOTrainer(tiny_policy, prompts, [constant], settings).train()
    assert "rl: ppo" not in capsys.readouterr().err
