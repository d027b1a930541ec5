"""Metrics of docs/model.md section 4 against brute-force loops."""

import numpy as np
import pytest

from khop.model.kernel import random_patterns
from khop.model.metrics import bit_accuracy, noisy_queries, recall_stats, stability_margin


def _network(seed=0, n=16, p=8):
    rng = np.random.default_rng(seed)
    x = random_patterns(rng, n, p)
    # Weights correlated with the patterns, plus noise: some bits right, some wrong.
    alpha = x + rng.normal(scale=1.5, size=x.shape)
    return x, alpha


def _h(s, x, alpha, gamma):
    n = len(s)
    return [sum(alpha[mu, i] * np.exp(-4 * gamma * np.sum(s != x[mu])) for mu in range(len(x)))
            for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bit_accuracy_and_margin_match_loops(seed):
    x, alpha = _network(seed)
    gamma = 0.1
    right, margin, count = 0, 0.0, 0
    for mu in range(len(x)):
        h = _h(x[mu], x, alpha, gamma)
        for i, hi in enumerate(h):
            new = x[mu, i] if hi == 0 else (1 if hi > 0 else -1)
            right += new == x[mu, i]
            margin += hi * x[mu, i]
            count += 1
    acc = bit_accuracy(x, alpha, gamma)
    assert acc == pytest.approx(right / count, abs=1e-15)
    assert 0 < acc < 1  # not vacuous
    assert stability_margin(x, alpha, gamma) == pytest.approx(margin / count, rel=1e-12)


def test_bit_accuracy_counts_a_tie_as_kept():
    x, alpha = _network(3)
    alpha[:, 0] = 0.0                               # h_0 == 0 from every pattern
    alpha[:, 1:] = -x[:, 1:] * 10                   # every other neuron flips its bit
    gamma = 1.0                                     # K ~ identity: h_i(xi^mu) ~ alpha[mu, i]
    assert bit_accuracy(x, alpha, gamma) == pytest.approx(1 / 16)


@pytest.mark.parametrize(("noise", "flips"), [(0.0, 0), (0.2, 6), (0.25, 8), (0.5, 15), (1.0, 30)])
def test_noisy_queries_flip_exactly_round_noise_n_bits(noise, flips):
    x = random_patterns(np.random.default_rng(4), 30, 20)
    q, t = noisy_queries(x, noise, 15, np.random.default_rng(5))
    assert q.dtype == np.int8 and q.shape == (15, 30) and t.shape == (15,)
    assert set(np.unique(q)) <= {-1, 1}
    np.testing.assert_array_equal(np.sum(q != x[t], axis=1), np.full(15, flips))
    assert len(set(t.tolist())) == 15                # no repeated target when count <= P


def test_noisy_queries_are_seeded_and_vary_the_flipped_bits():
    x = random_patterns(np.random.default_rng(4), 50, 10)
    q1, t1 = noisy_queries(x, 0.2, 40, np.random.default_rng(9))
    q2, t2 = noisy_queries(x, 0.2, 40, np.random.default_rng(9))
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(t1, t2)
    flipped = q1 != x[t1]
    assert flipped.any(axis=0).all()                 # every position gets flipped somewhere
    assert len(np.unique(t1)) > 1                    # more queries than patterns: reused targets


@pytest.mark.parametrize(("noise", "count", "match"), [(-0.1, 5, "noise"), (1.1, 5, "noise"),
                                                       (0.2, 0, "query count")])
def test_noisy_queries_reject_bad_arguments(noise, count, match):
    x = random_patterns(np.random.default_rng(0), 10, 5)
    with pytest.raises(ValueError, match=match):
        noisy_queries(x, noise, count, np.random.default_rng(0))


def test_recall_stats_on_a_network_that_recalls_everything():
    x = random_patterns(np.random.default_rng(3), 20, 3)
    q, t = noisy_queries(x, 0.1, 3, np.random.default_rng(1))
    stats = recall_stats(x, x.astype(float), 1.0, q, t)
    assert stats.recall_accuracy == 1.0 and stats.exact_recall == 1.0
    assert stats.converged == 1.0 and stats.mean_steps == 2.0


def test_recall_stats_bitwise_versus_exact():
    # Weights that pin neuron 0 to -1 whatever the state: every query ends one bit off when its
    # target has +1 there.
    x = random_patterns(np.random.default_rng(6), 20, 4)
    alpha = x.astype(float)
    alpha[:, 0] = -5.0
    q, t = noisy_queries(x, 0.0, 4, np.random.default_rng(0))
    stats = recall_stats(x, alpha, 1.0, q, t)
    wrong = np.sum(x[t, 0] == 1)
    assert 0 < wrong < 4
    assert stats.exact_recall == pytest.approx(1 - wrong / 4)
    assert stats.recall_accuracy == pytest.approx(1 - wrong / 80)
