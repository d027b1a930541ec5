"""Patterns, Hamming distances and the RBF kernel (docs/model.md section 1)."""

import itertools

import numpy as np
import pytest

from khop.model.kernel import gram_matrix, hamming, kernel_matrix, random_patterns


def _brute_hamming(a, b):
    return np.array([[sum(int(x != y) for x, y in zip(r, s, strict=True)) for s in b] for r in a])


def test_random_patterns_are_bipolar_int8_and_seeded():
    x = random_patterns(np.random.default_rng(7), 33, 12)
    assert x.shape == (12, 33) and x.dtype == np.int8
    assert set(np.unique(x)) == {-1, 1}
    assert np.array_equal(x, random_patterns(np.random.default_rng(7), 33, 12))
    assert not np.array_equal(x, random_patterns(np.random.default_rng(8), 33, 12))


def test_random_patterns_are_balanced():
    x = random_patterns(np.random.default_rng(0), 200, 200)
    assert abs(float(x.mean())) < 0.02  # 40000 fair coins: std of the mean is 0.005


@pytest.mark.parametrize(("n", "p"), [(0, 3), (3, 0), (-1, 2)])
def test_random_patterns_rejects_empty_shapes(n, p):
    with pytest.raises(ValueError, match="n >= 1 and p >= 1"):
        random_patterns(np.random.default_rng(0), n, p)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hamming_matches_a_brute_force_count(seed):
    rng = np.random.default_rng(seed)
    a = random_patterns(rng, 17, 6)
    b = random_patterns(rng, 17, 9)
    d = hamming(a, b)
    assert d.dtype == np.int64 and d.shape == (6, 9)
    assert np.array_equal(d, _brute_hamming(a, b))


def test_hamming_extremes():
    x = random_patterns(np.random.default_rng(3), 25, 4)
    assert np.array_equal(np.diag(hamming(x, x)), np.zeros(4))
    assert np.array_equal(np.diag(hamming(x, -x)), np.full(4, 25))


@pytest.mark.parametrize("gamma", [0.005, 0.02, 0.1, 0.7])
def test_kernel_is_the_rbf_of_bipolar_vectors(gamma):
    rng = np.random.default_rng(11)
    a = random_patterns(rng, 40, 8)
    b = random_patterns(rng, 40, 5)
    sq = np.array([[np.sum((x.astype(float) - y) ** 2) for y in b] for x in a])
    direct = np.exp(-gamma * sq)
    # The identity ||x - y||^2 = 4 hamming(x, y), checked on its own.
    assert np.array_equal(sq, 4 * _brute_hamming(a, b))
    np.testing.assert_allclose(kernel_matrix(a, b, gamma), direct, rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.exp(-4 * gamma * _brute_hamming(a, b)), direct, rtol=1e-13)


def test_kernel_matrix_dtype():
    x = random_patterns(np.random.default_rng(0), 10, 4)
    assert kernel_matrix(x, x, 0.1, np.float32).dtype == np.float32
    assert kernel_matrix(x, x, 0.1).dtype == np.float64


def test_gram_matrix_is_symmetric_with_unit_diagonal_and_positive_definite():
    x = random_patterns(np.random.default_rng(5), 30, 20)
    K = gram_matrix(x, 0.05)
    assert np.array_equal(K, K.T)
    assert np.array_equal(np.diag(K), np.ones(20))
    assert np.linalg.eigvalsh(K).min() > 0
    for i, j in itertools.combinations(range(20), 2):
        assert 0 < K[i, j] < 1
