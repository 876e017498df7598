"""The statistics layer (intentgym/stats.py): coverage against a known truth, family-wise error,
and the edge cases where an honest interval is easy to get wrong.

The simulations use fixed seeds, so every run sees the same data sets; the bounds (93-97% for a
95% interval) come from the issue, and the measured value is in every assertion message.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from intentgym.errors import IntentgymError
from intentgym.stats import (
    Estimate,
    adjust,
    bootstrap_mean,
    hierarchical_difference,
    mean_ci,
    minimum_detectable_effect,
    paired_difference,
    proportion_ci,
    unpaired_difference,
    verdict,
)

N_DATASETS = 1000  # per coverage scenario: the binomial SE of a 95% coverage is then 0.7 points

# --------------------------------------------------------------------------- synthetic data
# Each generator returns (before, after, clusters, bounded) with E[after - before] = delta exactly.


def probabilities(rng: np.random.Generator, delta: float, n: int = 60):
    """Per-item probabilities in [0, 1]: after = (before + target) / 2, skewed Beta draws."""
    before = rng.beta(2, 5, n)
    target_mean = 2 / 7 + 2 * delta
    target = rng.beta(7 * target_mean, 7 * (1 - target_mean), n)
    after = 0.5 * before + 0.5 * target
    return dict(enumerate(before)), dict(enumerate(after)), None, True


def binary(rng: np.random.Generator, delta: float, n: int = 60):
    """0/1 items, before ~ Bernoulli(q_i), after ~ Bernoulli(q_i + delta), positively correlated."""
    q = rng.uniform(0.2, 0.6, n)
    u = rng.random(n)
    u_after = np.where(rng.random(n) < 0.6, u, rng.random(n))
    before = (u < q).astype(float)
    after = (u_after < q + delta).astype(float)
    return dict(enumerate(before)), dict(enumerate(after)), None, True


def clustered(rng: np.random.Generator, delta: float, k: int = 40, m: int = 4, icc: float = 0.3):
    """40 clusters x 4 samples; differences = delta + cluster effect + noise, both skewed
    (centred gamma), the cluster effect holding 30% of the variance (ICC 0.3)."""
    sd = 0.2
    cluster_effect = (rng.gamma(2.0, 1.0, k) - 2.0) / math.sqrt(2.0) * sd * math.sqrt(icc)
    noise = (rng.gamma(2.0, 1.0, (k, m)) - 2.0) / math.sqrt(2.0) * sd * math.sqrt(1 - icc)
    before = rng.normal(0.4, 0.1, k)[:, None] + rng.normal(0, 0.1, (k, m))
    after = before + delta + cluster_effect[:, None] + noise
    keys = [(j, i) for j in range(k) for i in range(m)]
    return (
        {key: before[key] for key in keys},
        {key: after[key] for key in keys},
        {key: key[0] for key in keys},
        False,
    )


def clustered_binary(rng: np.random.Generator, delta: float, k: int = 40, m: int = 4):
    """40 clusters x 4 samples of 0/1 outcomes sharing a cluster-level probability."""
    q = np.minimum(rng.beta(1.2, 1.8, k), 1 - delta)
    u = rng.random((k, m))
    u_after = np.where(rng.random((k, m)) < 0.5, u, rng.random((k, m)))
    before = (u < q[:, None]).astype(float)
    after = (u_after < q[:, None] + delta).astype(float)
    keys = [(j, i) for j in range(k) for i in range(m)]
    return (
        {key: before[key] for key in keys},
        {key: after[key] for key in keys},
        {key: key[0] for key in keys},
        True,
    )


def three_seeds(rng: np.random.Generator, delta: float, seed_sd: float, n: int = 60):
    """3 training seeds scored on the same 60 items: the base model's per-item probabilities
    (before) once; each seed's after values drawn afresh, with a seed-level shift of the
    expected difference (SD ``seed_sd``; mean 0, so the truth stays delta)."""
    before = rng.beta(2, 5, n)
    pairs = []
    for _ in range(3):
        target_mean = 2 / 7 + 2 * (delta + rng.normal(0, seed_sd))
        target = rng.beta(7 * target_mean, 7 * (1 - target_mean), n)
        after = 0.5 * before + 0.5 * target
        pairs.append((dict(enumerate(before)), dict(enumerate(after))))
    return pairs


def coverage(generator, delta: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(N_DATASETS):
        before, after, clusters, bounded = generator(rng, delta)
        # n_flips=1: the p-value is not looked at here (it is tested below)
        est = paired_difference(before, after, clusters, bounded=bounded, seed=i, n_flips=1)
        hits += est.low <= delta <= est.high
    return hits / N_DATASETS


# --------------------------------------------------------------------------- coverage


@pytest.mark.parametrize("delta", [0.0, 0.15])
@pytest.mark.parametrize(
    ("name", "generator", "seed"),
    [
        ("60 probabilities", probabilities, 101),
        ("60 binary items", binary, 102),
        ("40 clusters x 4, ICC 0.3", clustered, 103),
        ("40 clusters x 4 binary", clustered_binary, 104),
    ],
)
def test_paired_interval_covers_the_truth(name, generator, seed, delta):
    measured = coverage(generator, delta, seed + int(delta * 100))
    assert 0.93 <= measured <= 0.97, f"{name}, true Δ={delta}: coverage {measured:.3f}"


def test_hierarchical_interval_covers_the_truth_with_three_seeds():
    rng = np.random.default_rng(105)
    hits = 0
    for i in range(N_DATASETS):
        pairs = three_seeds(rng, 0.15, seed_sd=0.04)
        est = hierarchical_difference(pairs, bounded=True, seed=i, n_flips=1)
        assert est.n == 3 and est.method.startswith("hierarchical: 3 seeds")
        hits += est.low <= 0.15 <= est.high
    measured = hits / N_DATASETS
    assert 0.93 <= measured <= 0.97, f"3 seeds, seed SD 0.04: coverage {measured:.3f}"


def test_hierarchical_interval_is_conservative_not_narrow_when_seeds_agree():
    """With 3 seeds and no seed effect the interval errs wide (documented in stats.py: 2 degrees
    of freedom cannot rule out seed-to-seed variance); it must never err narrow."""
    rng = np.random.default_rng(106)
    reps = 500
    hits = sum(
        (est := hierarchical_difference(three_seeds(rng, 0.15, 0.0), seed=i, n_flips=1)).low
        <= 0.15
        <= est.high
        for i in range(reps)
    )
    assert 0.93 <= hits / reps <= 0.99, f"3 seeds, no seed effect: coverage {hits / reps:.3f}"


# --------------------------------------------------------------------------- multiplicity


def test_holm_keeps_the_family_wise_error_rate_over_20_null_metrics():
    """1000 families of 20 independent null metrics (10 of 60 per-item probabilities, 10 of
    12 clusters x 5 binary items), each tested with paired_difference's sign-flip p-value.

    Holm rejects anything exactly when the smallest p-value is <= 0.05 / 20, so with valid
    independent p-values the family-wise rate is at most 1 - (1 - 0.0025)^20 = 4.9%: the
    simulation must not show significantly more than 5% (one-sided binomial test at 1%), while
    without adjustment most families have a false positive.
    """
    rng = np.random.default_rng(107)
    families = 1000
    keys = [(j, i) for j in range(12) for i in range(5)]
    clusters = {key: key[0] for key in keys}
    any_holm = any_raw = 0
    for f in range(families):
        pvalues: list[float | None] = []
        for m in range(20):
            if m % 2:
                before, after, _, _ = probabilities(rng, 0.0)
                est = paired_difference(before, after, n_boot=100, n_flips=1999, seed=f)
            else:
                q = rng.beta(1.5, 1.5, 12).repeat(5)
                b = dict(zip(keys, (rng.random(60) < q).astype(float), strict=True))
                a = dict(zip(keys, (rng.random(60) < q).astype(float), strict=True))
                est = paired_difference(b, a, clusters, bounded=True, n_boot=100, seed=f)
            pvalues.append(est.p)
        holm = adjust(pvalues, "holm")
        any_holm += any(p is not None and p <= 0.05 for p in holm)
        any_raw += any(p is not None and p <= 0.05 for p in pvalues)
    fwer = any_holm / families
    excess = sps.binomtest(any_holm, families, 0.05, alternative="greater").pvalue
    assert excess > 0.01, f"Holm FWER {fwer:.3f} over {families} families is above 5%"
    assert fwer <= 0.065, f"Holm FWER {fwer:.3f}"
    assert any_raw / families > 0.5, f"unadjusted FWER only {any_raw / families:.3f}"


def test_adjust_matches_hand_computed_holm_and_bh():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    assert adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04; running min from the top
    assert adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust(p, "none") == p
    # None passes through and is not counted: a family of two
    assert adjust([0.01, None, 0.04], "holm") == [pytest.approx(0.02), None, pytest.approx(0.04)]
    assert adjust([0.01, None, 0.04], "bh") == [pytest.approx(0.02), None, pytest.approx(0.04)]
    assert adjust([None, None], "holm") == [None, None]
    # capped at 1 and monotone in the raw p-values
    assert adjust([0.5, 0.6, 0.9], "holm") == pytest.approx([1.0, 1.0, 1.0])
    raw = list(np.random.default_rng(1).random(15))
    for method in ("holm", "bh"):
        out = adjust(raw, method)
        order = np.argsort(raw)
        assert all(np.diff(np.array(out)[order]) >= 0)
        assert all(o >= r for o, r in zip(out, raw, strict=True))


def test_adjust_rejects_an_unknown_method_naming_the_valid_ones():
    with pytest.raises(IntentgymError, match=r"bonferroni.*valid choices: bh, holm, none"):
        adjust([0.01], "bonferroni")


# --------------------------------------------------------------------------- edges


def test_all_zero_binary_data_gets_a_bounded_interval():
    est = bootstrap_mean([0.0] * 60, bounded=True)
    assert est.value == 0.0 and est.low == 0.0
    assert est.high == pytest.approx(0.0602, abs=1e-4)  # Wilson upper bound of 0 out of 60
    assert est.method == "wilson" and "no spread in 60 values" in est.note
    assert est.p is None and est.n == 60


def test_all_equal_unbounded_data_gives_nan_with_a_note():
    est = bootstrap_mean([3.5] * 20)
    assert est.value == 3.5 and math.isnan(est.low) and math.isnan(est.high)
    assert est.note == "no spread in 20 values"


def test_identical_before_and_after_gives_zero_with_a_real_interval_and_p_one():
    rng = np.random.default_rng(3)
    before = dict(enumerate(rng.random(60)))
    est = paired_difference(before, dict(before), bounded=True)
    assert est.value == 0.0 and est.p == 1.0
    assert est.low == pytest.approx(-0.0602, abs=1e-4) and est.high == pytest.approx(
        0.0602, abs=1e-4
    )
    assert "Wilson upper bound of 0 discordant items out of 60" in est.note
    unbounded = paired_difference(before, dict(before))
    assert math.isnan(unbounded.low) and unbounded.note == "no spread in 60 values"
    assert unbounded.p == 1.0
    # clustered: 0 discordant clusters out of 12
    clusters = {k: k % 12 for k in before}
    est = paired_difference(before, dict(before), clusters, bounded=True)
    assert est.high == pytest.approx(proportion_ci(0, 12)[2]) and est.n == 12


def test_one_unit_gives_nan_with_the_note():
    est = bootstrap_mean([0.4])
    assert est.value == 0.4 and math.isnan(est.low) and est.note == "one item: no interval"
    est = paired_difference({"q": 0.2}, {"q": 0.7}, bounded=True)
    assert est.value == pytest.approx(0.5) and math.isnan(est.high)
    assert est.note == "one item: no interval"
    est = bootstrap_mean([0.1, 0.3, 0.5], clusters=["a", "a", "a"])
    assert est.n == 1 and est.note == "one cluster: no interval"


def test_sign_flip_p_value_is_never_zero():
    rng = np.random.default_rng(4)
    before = dict(enumerate(rng.random(60)))
    after = {k: v + 0.5 for k, v in before.items()}  # every item up: no flip reaches it
    est = paired_difference(before, after, n_flips=999)
    assert est.p == pytest.approx(1 / 1000)
    small = paired_difference({i: 0.0 for i in range(5)}, {i: 1.0 + i for i in range(5)})
    assert small.p == pytest.approx(2 / 32)  # exact: identity and all-flipped of 2^5
    hier = hierarchical_difference([(before, after), (before, after), (before, after)])
    assert hier.p is not None and hier.p > 0


def test_minimum_detectable_effect():
    # (1.95996 + 0.84162) * 0.2 / sqrt(60)
    assert minimum_detectable_effect(0.2, 60) == pytest.approx(0.07234, abs=1e-5)
    # worst case for a proportion: sd = sqrt(0.5 * 0.5) = 0.5
    assert minimum_detectable_effect(0.0, 100, bounded_p=0.5) == pytest.approx(0.14008, abs=1e-5)
    assert minimum_detectable_effect(float("nan"), 100, bounded_p=0.1) == pytest.approx(
        2.80158 * 0.3 / 10, abs=1e-5
    )
    assert math.isnan(minimum_detectable_effect(0.0, 100))
    assert minimum_detectable_effect(0.2, 60, power=0.9) > minimum_detectable_effect(0.2, 60)
    with pytest.raises(IntentgymError):
        minimum_detectable_effect(0.2, 0)


# --------------------------------------------------------------------------- API behaviour


def test_one_seed_hierarchical_equals_paired_difference():
    before, after, clusters, _ = clustered(np.random.default_rng(5), 0.1)
    assert hierarchical_difference([(before, after)], clusters) == paired_difference(
        before, after, clusters
    )


def test_paired_difference_uses_the_keys_in_both_and_is_deterministic():
    before = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.9}
    after = {"a": 0.3, "b": 0.5, "c": 0.4, "e": 0.0}
    est = paired_difference(before, after)
    assert est.value == pytest.approx((0.2 + 0.3 + 0.1) / 3) and est.n == 3
    assert est.method == "paired bootstrap over 3 items"
    assert est == paired_difference(before, after)
    assert est.as_tuple() == (est.value, est.low, est.high)
    assert est.low < est.value < est.high


def test_cluster_bootstrap_resamples_clusters():
    rng = np.random.default_rng(6)
    values = list(rng.random(40))
    labels = [i // 4 for i in range(40)]
    est = bootstrap_mean(values, labels)
    assert est.n == 10 and est.method == "cluster bootstrap over 10 clusters (40 items)"
    assert est.low < est.value < est.high and est.p is None
    assert bootstrap_mean(values).n == 40


def test_unpaired_difference():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.0, 1.0, 50), rng.normal(1.0, 1.0, 40)
    est = unpaired_difference(list(a), list(b))
    assert est.value == pytest.approx(b.mean() - a.mean()) and est.n == 90
    assert est.low < est.value < est.high and est.p is not None and est.p < 0.01
    assert verdict(est, est.p) == "higher"
    # both arms all zero, bounded: a widened interval around 0, never zero width
    flat = unpaired_difference([0.0] * 30, [0.0] * 30, bounded=True)
    assert flat.value == 0.0 and flat.low < 0 < flat.high and flat.p == 1.0
    assert "MOVER" in flat.note
    clustered_est = unpaired_difference(
        list(a), list(b), [i // 5 for i in range(50)], [i // 4 for i in range(40)]
    )
    assert clustered_est.n == 20 and "10 + 10 clusters" in clustered_est.method


def test_verdict():
    up = Estimate(0.2, 0.1, 0.3, 60, 0.001, "paired bootstrap over 60 items")
    assert verdict(up, 0.004) == "higher"
    assert verdict(up, 0.2) == "no detectable difference"
    assert verdict(up, None) == "higher"  # falls back to the estimate's own p
    down = Estimate(-0.2, -0.3, -0.1, 60, 0.001)
    assert verdict(down, 0.01) == "lower"
    # a p-value below alpha never overrides an interval that contains 0
    assert verdict(Estimate(0.05, -0.01, 0.11, 3, 0.001), 0.001) == "no detectable difference"
    assert verdict(Estimate(0.05, 0.01, 0.1, 60, None), None) == "higher"
    assert verdict(Estimate(math.nan, math.nan, math.nan, 0), None) == "no detectable difference"


def test_invalid_input_is_refused_with_a_message():
    with pytest.raises(IntentgymError, match="bounded=True needs values in"):
        bootstrap_mean([0.2, 1.5], bounded=True)
    with pytest.raises(IntentgymError, match="no cluster for 1 item"):
        paired_difference({"a": 0.1, "b": 0.2}, {"a": 0.2, "b": 0.4}, {"a": 0})
    with pytest.raises(IntentgymError, match="level"):
        bootstrap_mean([0.1, 0.2], level=95)


def test_mean_ci_never_returns_a_zero_width_interval():
    mean, low, high = mean_ci([0.5, 0.5])
    assert mean == 0.5 and (low, high) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    assert mean_ci([0.0] * 60)[1:] == pytest.approx((0.0, 0.0602), abs=1e-4)
    mean, low, high = mean_ci([2.0, 2.0])
    assert mean == 2.0 and math.isnan(low) and math.isnan(high)
    mean, low, high = mean_ci([0.0, 1.0, 0.5, 0.25])  # unchanged: Student t
    assert (low, high) == pytest.approx(
        sps.t.interval(0.95, 3, loc=0.4375, scale=sps.sem([0, 1, 0.5, 0.25]))
    )
    assert math.isnan(mean_ci([1.0])[1])
