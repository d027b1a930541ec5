"""Float retrieval: tie rule, step counting, batching (model/retrieval.py)."""

import numpy as np
import pytest

from khop.model.kernel import random_patterns
from khop.model.retrieval import potentials, retrieve, run_dynamics, sign_update


def _network(seed, n=24, p=10, zero_neuron=None):
    rng = np.random.default_rng(seed)
    x = random_patterns(rng, n, p)
    alpha = rng.normal(size=(p, n))
    if zero_neuron is not None:
        alpha[:, zero_neuron] = 0.0
    return x, alpha


def test_sign_update_keeps_the_previous_bit_on_a_tie():
    h = np.array([[2.5, -0.1, 0.0, 0.0, -0.0]])
    prev = np.array([[-1, 1, 1, -1, 1]], dtype=np.int8)
    out = sign_update(h, prev)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, [[1, -1, 1, -1, 1]])


def test_potentials_match_the_kernel_sum():
    x, alpha = _network(1)
    s = random_patterns(np.random.default_rng(2), 24, 3)
    gamma = 0.05
    expected = np.array([[sum(alpha[mu, i] * np.exp(-gamma * np.sum((q - x[mu]) ** 2.0))
                              for mu in range(len(x))) for i in range(24)] for q in s])
    np.testing.assert_allclose(potentials(s, x, alpha, gamma), expected, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neuron_without_weights_keeps_its_query_bit(seed):
    # h_j == 0 exactly for every state: bit j never changes, whatever the other neurons do.
    x, alpha = _network(seed, zero_neuron=5)
    queries = random_patterns(np.random.default_rng(seed + 10), 24, 8)
    res = retrieve(queries, x, alpha, 0.05, max_steps=10)
    np.testing.assert_array_equal(res.states[:, 5], queries[:, 5])
    # ... while the query does move elsewhere (the test is not vacuous).
    assert np.any(res.states != queries)


def _stable_network():
    # gamma = 1: a pattern sees itself with K = 1 and every other one with K <= e^-4 per bit
    # of distance, so alpha = patterns makes each stored pattern a fixed point.
    x = random_patterns(np.random.default_rng(3), 20, 3)
    return x, x.astype(np.float64), 1.0


def test_stored_stable_pattern_takes_one_step_and_converges():
    x, alpha, gamma = _stable_network()
    res = retrieve(x, x, alpha, gamma)
    np.testing.assert_array_equal(res.states, x)
    np.testing.assert_array_equal(res.steps, [1, 1, 1])
    assert res.converged.all()


def test_single_query_may_be_one_dimensional():
    x, alpha, gamma = _stable_network()
    res = retrieve(x[1], x, alpha, gamma)
    assert res.states.shape == (1, 20)
    np.testing.assert_array_equal(res.states[0], x[1])


def test_noisy_query_returns_to_its_pattern():
    x, alpha, gamma = _stable_network()
    q = x[2].copy()
    q[:3] *= -1
    res = retrieve(q, x, alpha, gamma)
    np.testing.assert_array_equal(res.states[0], x[2])
    assert res.steps[0] == 2 and res.converged[0]  # one correcting update, one confirming


def _flip_when_first_two_agree(s):
    # Queries with s0 == s1 flip every bit forever (flipping keeps s0 == s1): a 2-cycle.
    # The others are fixed points.
    return np.where((s[:, 0] == s[:, 1])[:, None], -s, s).astype(np.int8)


@pytest.mark.parametrize("max_steps", [1, 2, 7, 30])
def test_oscillation_stops_at_max_steps_unconverged(max_steps):
    start = np.array([[1, 1, -1, 1], [1, -1, 1, 1], [-1, -1, 1, -1]], dtype=np.int8)
    res = run_dynamics(start, _flip_when_first_two_agree, max_steps)
    np.testing.assert_array_equal(res.steps, [max_steps, 1, max_steps])
    np.testing.assert_array_equal(res.converged, [False, True, False])
    sign = -1 if max_steps % 2 else 1
    np.testing.assert_array_equal(res.states, [sign * start[0], start[1], sign * start[2]])


def _raise_first_minus(s):
    # Turns the first -1 of each state into +1: m minus bits take m changing updates.
    out = s.copy()
    for row in out:
        minus = np.flatnonzero(row < 0)
        if minus.size:
            row[minus[0]] = 1
    return out


def test_steps_count_the_updates_including_the_confirming_one():
    start = np.array([[1, 1, 1], [-1, 1, 1], [-1, -1, -1]], dtype=np.int8)
    res = run_dynamics(start, _raise_first_minus, max_steps=30)
    np.testing.assert_array_equal(res.steps, [1, 2, 4])
    assert res.converged.all()
    np.testing.assert_array_equal(res.states, np.ones((3, 3)))


def test_reaching_the_fixed_point_on_the_last_step_is_not_converged():
    start = np.array([[-1, -1, -1]], dtype=np.int8)
    res = run_dynamics(start, _raise_first_minus, max_steps=3)
    np.testing.assert_array_equal(res.states, [[1, 1, 1]])
    assert res.steps[0] == 3 and not res.converged[0]


def test_update_only_sees_the_running_queries():
    seen = []

    def update(s):
        seen.append(len(s))
        return _raise_first_minus(s)

    start = np.array([[1, 1], [-1, 1], [-1, -1]], dtype=np.int8)
    run_dynamics(start, update, max_steps=30)
    assert seen == [3, 2, 1]


@pytest.mark.parametrize("max_steps", [0, 256, -1, 2.0])
def test_bad_max_steps_raise(max_steps):
    with pytest.raises(ValueError, match="max_steps must be an integer in 1..255"):
        run_dynamics(np.ones((1, 3), dtype=np.int8), lambda s: s, max_steps)


def test_run_dynamics_leaves_its_input_alone():
    start = np.array([[1, 1, -1, 1]], dtype=np.int8)
    before = start.copy()
    run_dynamics(start, _flip_when_first_two_agree, 3)
    np.testing.assert_array_equal(start, before)


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_retrieval_equals_one_query_at_a_time(seed):
    rng = np.random.default_rng(seed)
    x, alpha = _network(seed, n=30, p=12)
    queries = random_patterns(rng, 30, 25)
    batch = retrieve(queries, x, alpha, 0.03, max_steps=12)
    for k, q in enumerate(queries):
        one = retrieve(q[None], x, alpha, 0.03, max_steps=12)
        np.testing.assert_array_equal(batch.states[k], one.states[0], err_msg=f"query {k}")
        assert batch.steps[k] == one.steps[0] and batch.converged[k] == one.converged[0]
    # Random weights give a mix of outcomes, so the comparison covers both kinds of stop.
    assert len(set(batch.steps.tolist())) > 1
