"""KLR loss, gradients and training (docs/model.md section 2)."""

import dataclasses

import numpy as np
import pytest

from khop.model.kernel import gram_matrix, random_patterns
from khop.model.klr import TrainConfig, klr_gradient, klr_loss, train_klr


def _problem(seed=0, n=10, p=6, gamma=0.1):
    """A small problem with a non-trivial Gram matrix and random dual weights."""
    rng = np.random.default_rng(seed)
    x = random_patterns(rng, n, p)
    assert len(np.unique(x, axis=0)) == p, "repeated pattern: K would be singular"
    K = gram_matrix(x, gamma)
    Y = (x + 1) / 2
    A = rng.normal(scale=0.7, size=(p, n))
    return K, A, Y


def _loss_by_formula(K, A, Y, lam):
    """docs/model.md: sum over neurons of sum_mu [log(1 + e^H) - y H] + lam/2 a_i^T K a_i."""
    total = 0.0
    for i in range(A.shape[1]):
        a = A[:, i]
        h = K @ a
        total += np.sum(np.log1p(np.exp(h)) - Y[:, i] * h) + 0.5 * lam * a @ K @ a
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_the_formula(seed):
    K, A, Y = _problem(seed)
    assert klr_loss(K, A, Y, 0.03) == pytest.approx(_loss_by_formula(K, A, Y, 0.03), rel=1e-12)


def test_loss_at_zero_weights_is_p_n_log_2():
    K, A, Y = _problem(3, n=9, p=7)
    assert klr_loss(K, np.zeros_like(A), Y, 0.01) == pytest.approx(63 * np.log(2), rel=1e-14)


@pytest.mark.parametrize(("seed", "lam"), [(0, 0.01), (1, 0.0), (2, 0.5)])
def test_exact_gradient_matches_central_differences(seed, lam):
    K, A, Y = _problem(seed)
    g = klr_gradient(K, A, Y, lam, "exact")
    num = np.zeros_like(A)
    h = 1e-6
    for idx in np.ndindex(A.shape):
        up, down = A.copy(), A.copy()
        up[idx] += h
        down[idx] -= h
        num[idx] = (klr_loss(K, up, Y, lam) - klr_loss(K, down, Y, lam)) / (2 * h)
    assert np.linalg.norm(num - g) / np.linalg.norm(g) < 1e-5, f"seed {seed}"


@pytest.mark.parametrize("seed", [0, 1])
def test_functional_gradient_is_the_exact_one_without_the_leading_k(seed):
    K, A, Y = _problem(seed)
    exact = klr_gradient(K, A, Y, 0.01, "exact")
    functional = klr_gradient(K, A, Y, 0.01, "functional")
    np.testing.assert_allclose(functional, np.linalg.solve(K, exact), rtol=1e-8, atol=1e-10)
    # Its own definition: sigmoid(K A) - Y + lambda A.
    direct = 1 / (1 + np.exp(-(K @ A))) - Y + 0.01 * A
    np.testing.assert_allclose(functional, direct, rtol=1e-12, atol=1e-14)


def _small_patterns(seed=1):
    # gamma 0.05 at N=40: K is well conditioned enough for the author's eta = 0.1.
    return random_patterns(np.random.default_rng(seed), 40, 80)


@pytest.mark.parametrize("gradient", ["exact", "functional"])
def test_training_decreases_the_loss_every_epoch(gradient):
    x = _small_patterns()
    res = train_klr(x, TrainConfig(gamma=0.05, gradient=gradient))
    hist = res.loss_history
    assert len(hist) == 301 and res.epochs_run == 300 and not res.stopped_early
    assert hist[0] == pytest.approx(80 * 40 * np.log(2))
    assert np.all(np.diff(hist) < 0), f"first increase at epoch {np.argmax(np.diff(hist) >= 0)}"
    assert hist[-1] < 0.2 * hist[0]
    # The recorded history is the loss of the returned weights.
    K = gram_matrix(x, 0.05)
    assert hist[-1] == pytest.approx(klr_loss(K, res.alpha, (x + 1) / 2, 0.01), rel=1e-12)


def test_trained_network_classifies_its_own_patterns():
    x = _small_patterns()
    res = train_klr(x, TrainConfig(gamma=0.05))
    h = gram_matrix(x, 0.05) @ res.alpha
    assert np.array_equal(np.sign(h), x)


def test_tolerance_stops_early_at_the_first_small_relative_decrease():
    x = _small_patterns()
    tol = 1e-2
    res = train_klr(x, TrainConfig(gamma=0.05, tol=tol))
    hist = res.loss_history
    assert res.stopped_early and res.epochs_run < 300
    assert len(hist) == res.epochs_run + 1
    rel = (hist[:-1] - hist[1:]) / hist[:-1]
    assert rel[-1] <= tol and np.all(rel[:-1] > tol)
    # Same trajectory as the run without tolerance, cut short.
    full = train_klr(x, TrainConfig(gamma=0.05))
    np.testing.assert_array_equal(hist, full.loss_history[:len(hist)])


def test_progress_is_called_once_per_epoch_with_the_loss():
    calls = []
    res = train_klr(_small_patterns(), TrainConfig(gamma=0.05, epochs=7),
                    progress=lambda e, loss: calls.append((e, loss)))
    assert [e for e, _ in calls] == list(range(1, 8))
    np.testing.assert_array_equal([loss for _, loss in calls], res.loss_history[1:])


def test_float32_and_float64_training_agree():
    x = _small_patterns()
    a64 = train_klr(x, TrainConfig(gamma=0.05)).alpha
    a32 = train_klr(x, TrainConfig(gamma=0.05, dtype="float32")).alpha
    assert a64.dtype == np.float64 and a32.dtype == np.float32
    assert np.max(np.abs(a32 - a64)) < 1e-4 * np.max(np.abs(a64))


@pytest.mark.parametrize(("field", "value", "name"), [
    ("gamma", 0.0, "gamma"), ("gamma", float("nan"), "gamma"), ("gamma", -1.0, "gamma"),
    ("eta", 0.0, "eta"), ("eta", float("inf"), "eta"),
    ("lam", -0.01, "lambda"), ("lam", float("nan"), "lambda"),
    ("epochs", 0, "epochs"), ("epochs", 2.5, "epochs"),
    ("gradient", "newton", "gradient"), ("dtype", "float16", "dtype"),
    ("tol", 0.0, "tol"), ("tol", -1e-3, "tol"),
])
def test_bad_config_raises_naming_the_parameter(field, value, name):
    with pytest.raises(ValueError, match=rf"^{name} must .*{value!r}"):
        TrainConfig(**{field: value})


def test_default_config_is_the_authors_recipe():
    c = TrainConfig()
    assert dataclasses.astuple(c) == (0.02, 0.1, 0.01, 300, "exact", "float64", None)
