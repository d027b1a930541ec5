"""Sampling estimator of the Walsh influence (model/influence.py) against brute force."""

import itertools

import numpy as np
import pytest

from khop.model.influence import cross_influence_gini, cross_influences, walsh_influence
from khop.model.kernel import random_patterns
from khop.model.retrieval import potentials
from khop.model.stats import gini


def _tiny(seed=1, n=6, p=9, gamma=0.15):
    rng = np.random.default_rng(seed)
    x = random_patterns(rng, n, p)
    return x, rng.normal(scale=2.0, size=(p, n)), gamma


def _brute_force(states, x, a, gamma):
    """Inf[i, j] over ``states``, flipping each bit explicitly and recomputing every potential."""
    states = np.asarray(states, dtype=np.int8)
    n = x.shape[1]
    base = np.sign(potentials(states, x, a, gamma))
    inf = np.zeros((n, n))
    for j in range(n):
        flipped = states.copy()
        flipped[:, j] = -flipped[:, j]
        inf[:, j] = np.mean(np.sign(potentials(flipped, x, a, gamma)) != base, axis=0)
    return inf


def test_estimator_equals_brute_force_on_the_states_it_draws():
    x, a, gamma = _tiny()
    seed, samples = 7, 50
    states = 2 * np.random.default_rng(seed).integers(0, 2, size=(samples, x.shape[1])) - 1
    est = walsh_influence(x, a, gamma, samples, np.random.default_rng(seed), batch=samples)
    assert est.samples == samples
    np.testing.assert_allclose(est.matrix, _brute_force(states, x, a, gamma), atol=1e-12)


def test_batching_does_not_change_the_estimate():
    x, a, gamma = _tiny(2)
    one = walsh_influence(x, a, gamma, 60, np.random.default_rng(3), batch=60)
    many = walsh_influence(x, a, gamma, 60, np.random.default_rng(3), batch=7)
    # Batches of 7 draw the same states in the same order (rows of one stream).
    np.testing.assert_array_equal(one.matrix, many.matrix)


def test_estimate_converges_to_the_exact_influence_over_all_states():
    x, a, gamma = _tiny(4)
    everything = np.array(list(itertools.product([-1, 1], repeat=x.shape[1])))
    exact = _brute_force(everything, x, a, gamma)
    est = walsh_influence(x, a, gamma, 20_000, np.random.default_rng(5))
    tol = 5 * np.sqrt(exact * (1 - exact) / est.samples) + 1e-3
    assert np.all(np.abs(est.matrix - exact) <= tol)
    np.testing.assert_allclose(est.standard_error,
                               np.sqrt(est.matrix * (1 - est.matrix) / 20_000))


def test_cross_influences_drop_the_diagonal():
    m = np.arange(16, dtype=float).reshape(4, 4)
    c = cross_influences(m)
    assert c.shape == (4, 3)
    np.testing.assert_array_equal(c[0], [1, 2, 3])
    np.testing.assert_array_equal(c[2], [8, 9, 11])
    m[np.diag_indices(4)] = 1e6  # self-influence must not affect the Gini
    np.testing.assert_allclose(cross_influence_gini(m), gini(c, axis=1))


def test_sample_count_must_be_positive():
    x, a, gamma = _tiny()
    with pytest.raises(ValueError, match="samples"):
        walsh_influence(x, a, gamma, 0, np.random.default_rng(0))
