"""Uniform quantization, binarization and magnitude pruning (docs/model.md section 3)."""

import numpy as np
import pytest

from khop.model.compress import binarize, prune_magnitude, quantize, quantize_uniform


def _weights(seed, shape=(30, 20)):
    return np.random.default_rng(seed).normal(scale=2.0, size=shape)


@pytest.mark.parametrize("bits", range(2, 17))
@pytest.mark.parametrize("seed", [0, 1])
def test_uniform_quantizer_properties(bits, seed):
    a = _weights(seed)
    q = quantize_uniform(a, bits)
    x_min, x_max = a.min(), a.max()
    delta = (x_max - x_min) / (2 ** bits - 1)
    assert q.bits == bits
    assert q.codes.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert q.codes.min() >= 0 and q.codes.max() <= 2 ** bits - 1
    assert len(np.unique(q.values)) <= 2 ** bits
    assert np.all(np.abs(q.values - a) <= delta / 2 * (1 + 1e-9))
    # The extremes are levels: x_min exactly (code 0), x_max up to rounding of x_min + L Delta.
    assert q.values.flat[np.argmin(a)] == x_min
    assert q.codes.flat[np.argmin(a)] == 0 and q.codes.flat[np.argmax(a)] == 2 ** bits - 1
    assert q.values.flat[np.argmax(a)] == pytest.approx(x_max, rel=1e-14, abs=1e-14)
    np.testing.assert_allclose(q.levels, x_min + delta * np.arange(2 ** bits), rtol=1e-14)


def test_uniform_codes_are_the_nearest_level():
    a = _weights(4, (12, 9))
    q = quantize_uniform(a, 3)
    dist = np.abs(a[..., None] - q.levels)          # distance to every level
    best = dist.min(axis=-1)
    assert np.allclose(np.abs(q.values - a), best, rtol=0, atol=1e-12)


def test_quantizing_representable_values_is_the_identity():
    levels = -1.5 + 0.5 * np.arange(4)              # exact binary fractions
    a = np.random.default_rng(2).choice(levels, size=(10, 10))
    a[0, 0], a[0, 1] = levels[0], levels[-1]
    np.testing.assert_array_equal(quantize_uniform(a, 2).values, a)


def test_constant_matrix_quantizes_exactly():
    a = np.full((4, 5), -0.75)
    q = quantize_uniform(a, 2)
    assert np.all(q.codes == 0)
    np.testing.assert_array_equal(q.values, a)


@pytest.mark.parametrize("bits", [0, 1, 17, 2.0, "2"])
def test_uniform_rejects_bad_bit_counts(bits):
    with pytest.raises(ValueError, match="bits must be an integer in 2..16"):
        quantize_uniform(_weights(0), bits)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_threshold_form_decides_like_the_quantized_weights(bits):
    """docs/model.md section 3: sign(sum K q-values) == sign(T - r S_K) with r = -offset / scale."""
    rng = np.random.default_rng(bits)
    q = quantize(_weights(bits), bits)
    K = rng.random((50, q.codes.shape[0]))          # 50 positive kernel vectors
    h = K @ q.values
    T = K @ q.codes.astype(np.float64)
    S = K.sum(axis=1, keepdims=True)
    assert np.array_equal(np.sign(h), np.sign(T - q.threshold * S))


@pytest.mark.parametrize("center", ["median", "mean"])
def test_binarize_signs_relative_to_the_center(center):
    a = _weights(5) + 0.3
    q = binarize(a, center)
    c = np.median(a) if center == "median" else a.mean()
    assert q.bits == 1 and set(np.unique(q.codes)) == {0, 1}
    np.testing.assert_array_equal(q.codes, (a > c).astype(np.uint8))
    assert np.all(q.threshold == 0.5) and q.threshold.shape == (a.shape[1],)
    m = np.mean(np.abs(a - c))
    np.testing.assert_allclose(q.levels, [-m, m], rtol=1e-14)
    np.testing.assert_allclose(q.values, np.where(a > c, m, -m), rtol=1e-14)


def test_binarize_hand_case_with_a_weight_on_the_median():
    a = np.array([[-2.0, 0.0, 1.0], [3.0, -1.0, 5.0], [0.5, 2.0, -3.0]])
    q = binarize(a)                                  # median 0.5: that weight is not above it
    np.testing.assert_array_equal(q.codes, [[0, 0, 1], [1, 0, 1], [0, 1, 0]])
    m = 17 / 9                                       # mean |a - 0.5|
    np.testing.assert_allclose(q.levels, [-m, m], rtol=1e-15)
    np.testing.assert_allclose(q.values, np.where(q.codes == 1, m, -m), rtol=1e-15)


def test_median_binarization_splits_the_weights_in_half():
    q = binarize(_weights(6, (10, 10)))
    assert int(q.codes.sum()) == 50


def test_quantize_dispatches_one_bit_to_binarize():
    a = _weights(7)
    assert np.array_equal(quantize(a, 1).codes, binarize(a).codes)
    assert np.array_equal(quantize(a, 1, "mean").codes, binarize(a, "mean").codes)
    assert np.array_equal(quantize(a, 3).codes, quantize_uniform(a, 3).codes)


def test_binarize_rejects_unknown_center():
    with pytest.raises(ValueError, match="center must be one of median, mean"):
        binarize(_weights(0), "mode")


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 0.333, 0.5, 0.9, 1.0])
def test_prune_hits_the_sparsity_and_keeps_the_largest(sparsity):
    a = _weights(8, (30, 20))                        # 600 weights, none zero
    pruned = prune_magnitude(a, sparsity)
    k = int(np.floor(sparsity * a.size))
    zero = pruned == 0
    assert int(zero.sum()) == k
    assert np.mean(zero) == pytest.approx(k / a.size)
    np.testing.assert_array_equal(pruned[~zero], a[~zero])
    if 0 < k < a.size:
        assert np.abs(a[~zero]).min() >= np.abs(a[zero]).max()


def test_prune_leaves_its_input_alone():
    a = _weights(9)
    before = a.copy()
    prune_magnitude(a, 0.5)
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("sparsity", [-0.1, 1.5])
def test_prune_rejects_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match="sparsity must be in"):
        prune_magnitude(_weights(0), sparsity)
