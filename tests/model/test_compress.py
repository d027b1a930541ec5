"""Uniform quantization, binarization, the per-neuron quantizers and magnitude pruning
(docs/model.md sections 3 and 6)."""

import functools

import numpy as np
import pytest

from khop.model.compress import (
    DEFAULT_QUANTIZER,
    QUANTIZER_HELP,
    QUANTIZERS,
    bias_corrected,
    binarize,
    check_quantizer,
    prune_magnitude,
    quantize,
    quantize_per_neuron,
    quantize_uniform,
)


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


@pytest.mark.parametrize("quantizer", QUANTIZERS)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_threshold_form_decides_like_the_quantized_weights(bits, quantizer):
    """docs/model.md section 3: sign(sum K q-values) == sign(T - r S_K) with r = -offset / scale."""
    rng = np.random.default_rng(bits)
    q = quantize(_weights(bits), bits, quantizer=quantizer)
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
    quantize = functools.partial(globals()["quantize"], quantizer="paper")  # the paper's
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


# The per-neuron quantizers (docs/model.md section 6)

def _paper_today(alpha, bits, center="median"):
    """The paper's quantizer as khop computed it before per-neuron thresholds, written out:
    ``(codes, offset, scale)``."""
    a = np.asarray(alpha, dtype=np.float64)
    if bits == 1:
        c = float(np.median(a)) if center == "median" else float(a.mean())
        m = float(np.mean(np.abs(a - c))) or 1.0
        return (a > c).astype(np.uint8), -m, 2 * m
    lo, hi = float(a.min()), float(a.max())
    delta = (hi - lo) / (2 ** bits - 1)
    return np.clip(np.rint((a - lo) / delta), 0, 2 ** bits - 1).astype(np.uint8), lo, delta


@pytest.mark.parametrize("center", ["median", "mean"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_paper_quantizer_is_bit_for_bit_todays(bits, center):
    a = _weights(20 + bits)
    q = quantize(a, bits, center, quantizer="paper")
    codes, offset, scale = _paper_today(a, bits, center)
    np.testing.assert_array_equal(q.codes, codes)
    assert q.codes.dtype == np.uint8
    assert (q.offset, q.scale) == (offset, scale) and not q.per_neuron
    np.testing.assert_array_equal(q.threshold, np.full(a.shape[1], -offset / scale))
    np.testing.assert_array_equal(q.values, offset + scale * codes.astype(np.float64))


@pytest.mark.parametrize("quantizer", QUANTIZERS)
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_every_quantizer_gives_codes_in_range_and_a_threshold_per_neuron(bits, quantizer):
    a = _weights(bits, (40, 17))
    q = quantize(a, bits, quantizer=quantizer)
    assert q.bits == bits and q.codes.shape == a.shape and q.codes.dtype == np.uint8
    assert q.codes.min() >= 0 and q.codes.max() <= 2 ** bits - 1
    assert np.all(np.asarray(q.scale) > 0)
    offset = np.broadcast_to(q.offset, (17,))
    scale = np.broadcast_to(q.scale, (17,))
    np.testing.assert_allclose(q.threshold, -offset / scale, rtol=1e-15)
    assert q.threshold.shape == (17,)
    np.testing.assert_allclose(q.values, offset + scale * q.codes, rtol=1e-15)
    assert q.levels.shape == ((2 ** bits,) if not q.per_neuron else (2 ** bits, 17))


@pytest.mark.parametrize("quantizer", ["bias", "neuron"])
@pytest.mark.parametrize("bits", [1, 2, 3])
def test_bias_correction_keeps_each_neurons_mean_weight(bits, quantizer):
    a = _weights(30 + bits, (50, 12)) + np.linspace(-1, 1, 12)   # a different mean per neuron
    q = quantize(a, bits, quantizer=quantizer)
    assert q.per_neuron
    np.testing.assert_allclose(q.values.mean(axis=0), a.mean(axis=0), atol=1e-12)
    # The paper's quantizer does not: its per-neuron means are off.
    paper = quantize(a, bits, quantizer="paper")
    assert np.max(np.abs(paper.values.mean(axis=0) - a.mean(axis=0))) > 1e-3


def test_bias_keeps_the_papers_codes_and_scale():
    a = _weights(8)
    for bits in (1, 2, 3):
        q, paper = quantize(a, bits, quantizer="bias"), quantize(a, bits, quantizer="paper")
        np.testing.assert_array_equal(q.codes, paper.codes)
        np.testing.assert_array_equal(q.scale, np.full(a.shape[1], paper.scale))
        np.testing.assert_allclose(q.threshold, -(a.mean(axis=0) - paper.scale
                                                  * paper.codes.mean(axis=0)) / paper.scale)


def test_neuron_quantizer_is_per_column_min_max_and_one_bit_is_bias():
    a = _weights(9, (25, 8)) * np.linspace(0.5, 3, 8)     # a different range per neuron
    u = quantize_per_neuron(a, 2)
    for i in range(8):
        col = quantize_uniform(a[:, [i]], 2)
        np.testing.assert_array_equal(u.codes[:, i], col.codes[:, 0])
        assert (u.offset[i], u.scale[i]) == pytest.approx((col.offset, col.scale), rel=1e-15)
    q = quantize(a, 2, quantizer="neuron")
    np.testing.assert_array_equal(q.codes, u.codes)
    np.testing.assert_array_equal(q.scale, u.scale)
    np.testing.assert_allclose(q.offset, bias_corrected(a, u).offset)
    one, bias = quantize(a, 1, quantizer="neuron"), quantize(a, 1, quantizer="bias")
    np.testing.assert_array_equal(one.codes, bias.codes)
    np.testing.assert_array_equal(one.threshold, bias.threshold)


def test_per_neuron_min_max_of_a_constant_column_is_exact():
    a = _weights(3, (6, 4))
    a[:, 2] = 0.25
    q = quantize_per_neuron(a, 3)
    assert np.all(q.codes[:, 2] == 0) and q.scale[2] == 1.0
    np.testing.assert_array_equal(q.values[:, 2], a[:, 2])


def test_quantizer_names_and_the_default():
    assert QUANTIZERS[0] == "paper" and DEFAULT_QUANTIZER in QUANTIZERS
    assert set(QUANTIZER_HELP) == set(QUANTIZERS)
    assert check_quantizer("bias") == "bias"
    with pytest.raises(ValueError, match="quantizer must be one of paper, bias, neuron"):
        quantize(_weights(0), 2, quantizer="fancy")
