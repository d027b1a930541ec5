"""The bit-exact integer model (model/fixed.py) against hand values and a pure-Python loop."""

import dataclasses

import numpy as np
import pytest

from khop.model.compress import QUANTIZERS, quantize
from khop.model.fixed import (
    KERNEL_CROSSTALK,
    WIDE_KERNEL_BITS,
    FixedConfig,
    IntegerNetwork,
    integer_network,
    kernel_lut,
    kernel_reach,
    pack_bits,
    random_within,
    sharp_kernel_bits,
    threshold_fixed,
    to_bipolar,
    to_bits,
    unpack_bits,
)
from khop.model.kernel import random_patterns
from khop.model.retrieval import potentials, sign_update


def test_kernel_lut_hand_values():
    # gamma = 1/4: LUT[d] = round(8 e^-d) with kernel_bits 4 (3 fractional bits).
    # 8, 2.943, 1.083, 0.398, 0.147
    np.testing.assert_array_equal(kernel_lut(0.25, 4, 4), [8, 3, 1, 0, 0])
    # gamma = 0.02, 16 bits: 32768 e^{-0.08 d} = 32768, 30248.68, 27923.05, 25776.22
    lut = kernel_lut(0.02, 3, 16)
    assert lut.dtype == np.int64
    np.testing.assert_array_equal(lut, [32768, 30249, 27923, 25776])


def test_kernel_reach_is_the_last_nonzero_entry():
    # gamma = 1/4, 4 bits: [8, 3, 1, 0, 0] (above); 2 bits: round(2 e^-d) = [2, 1, 0, 0, 0].
    assert kernel_reach(0.25, 4, 4) == 2 and kernel_reach(0.25, 4, 2) == 1
    # gamma 5: 2 e^-20d is 0 past distance 0.
    assert kernel_reach(5.0, 4, 2) == 0


def test_random_within_is_the_binomial_distribution_function():
    assert random_within(4, 0) == 1 / 16 and random_within(4, 2) == 11 / 16
    assert random_within(4, 4) == random_within(4, 9) == 1 and random_within(4, -1) == 0


@pytest.mark.parametrize("n, p, bits, reach", [(100, 300, 4, 34), (128, 384, 5, 43),
                                               (256, 768, 11, 95), (64, 192, 2, 17)])
def test_sharp_kernel_bits_is_the_widest_table_without_crosstalk(n, p, bits, reach):
    # gamma 0.02: LUT[d] > 0 while 2^(k-1) e^(-0.08 d) > 1/2, i.e. d < (k ln 2) / 0.08.
    assert sharp_kernel_bits(0.02, n, p) == bits
    assert kernel_reach(0.02, n, bits) == reach
    assert (p - 1) * random_within(n, reach) <= KERNEL_CROSSTALK
    assert (p - 1) * random_within(n, kernel_reach(0.02, n, bits + 1)) > KERNEL_CROSSTALK


def test_sharp_kernel_bits_without_a_sharp_table():
    # N=32: even 2 bits reach 17 bits, a third of the random patterns: the wide default.
    assert (95 * random_within(32, kernel_reach(0.02, 32, 2)) > KERNEL_CROSSTALK
            and sharp_kernel_bits(0.02, 32, 96) == WIDE_KERNEL_BITS)
    # A kernel so sharp that no table reaches a random pattern: the widest up to the default.
    assert sharp_kernel_bits(0.5, 100, 300) == FixedConfig.kernel_bits


def test_kernel_lut_is_decreasing_from_one():
    lut = kernel_lut(0.02, 100, 12)
    assert lut[0] == 2 ** 11 and len(lut) == 101
    assert np.all(np.diff(lut) <= 0) and lut[-1] >= 0


@pytest.mark.parametrize(("r", "k", "frac", "expected"), [
    (0.5, 1, 4, 8),                 # the 1-bit threshold
    (1.25, 2, 4, 20),
    (33 / 32, 2, 4, 16),            # 16.5 rounds half to even
    (35 / 32, 2, 4, 18),            # 17.5 rounds half to even
    (-3.0, 2, 4, -16),              # clamped at -2^R
    (-1.0, 2, 4, -16),              # exactly the lower clamp
    (100.0, 2, 4, 64),              # clamped at 2^(k+R)
    (1.4999, 3, 8, 384),
])
def test_threshold_fixed_hand_values(r, k, frac, expected):
    assert threshold_fixed(r, k, frac) == expected


def test_bits_and_bipolar_convert_both_ways():
    s = np.array([[1, -1, -1, 1]], dtype=np.int8)
    np.testing.assert_array_equal(to_bits(s), [[1, 0, 0, 1]])
    np.testing.assert_array_equal(to_bipolar(to_bits(s)), s)
    assert to_bits(s).dtype == np.uint8 and to_bipolar([[1, 0]]).dtype == np.int8


def test_pack_bits_puts_column_i_in_bit_i():
    assert pack_bits([1, 0, 1, 1]) == [0b1101]
    assert pack_bits([[0] * 9 + [1], [1] + [0] * 9]) == [512, 1]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 100, 257])
def test_pack_unpack_round_trip(n):
    bits = np.random.default_rng(n).integers(0, 2, size=(5, n), dtype=np.uint8)
    packed = pack_bits(bits)
    assert all(0 <= v < 2 ** n for v in packed)
    for row, v in zip(bits, packed, strict=True):
        assert v == sum(int(b) << i for i, b in enumerate(row))
    np.testing.assert_array_equal(unpack_bits(packed, n), bits)


def _reference_step(inet, bits):
    """The arithmetic of docs/architecture.md, one neuron and one pattern at a time, in Python
    ints."""
    R = inet.config.threshold_frac_bits
    out = []
    for s in bits.tolist():
        Ks = [int(inet.lut[sum(a != b for a, b in zip(s, xi, strict=True))])
              for xi in inet.patterns.tolist()]
        S = sum(Ks)
        row = []
        for i in range(inet.n):
            T = sum(int(inet.codes[mu, i]) * Ks[mu] for mu in range(inet.p))
            lhs, rhs = T * 2 ** R, int(inet.r_fx[i]) * S
            row.append(1 if lhs > rhs else 0 if lhs < rhs else s[i])
        out.append(row)
    return np.array(out, dtype=np.uint8)


def _trained_like(seed, n, p):
    rng = np.random.default_rng(seed)
    x = random_patterns(rng, n, p)
    alpha = 2.5 * x + rng.normal(scale=1.0, size=x.shape)   # bimodal, like trained weights
    return x, alpha


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_integer_network_construction_follows_the_spec(k):
    x, alpha = _trained_like(k, 12, 9)
    cfg = FixedConfig(weight_bits=k, kernel_bits=10, threshold_frac_bits=8, quantizer="paper")
    inet = integer_network(x, alpha, 0.05, cfg)
    np.testing.assert_array_equal(inet.patterns, (x > 0).astype(np.uint8))
    if k == 1:
        codes = (alpha > np.median(alpha)).astype(int)
        r = 0.5
    else:
        lo, hi = alpha.min(), alpha.max()
        delta = (hi - lo) / (2 ** k - 1)
        codes = np.rint((alpha - lo) / delta).astype(int)
        r = -lo / delta
    np.testing.assert_array_equal(inet.codes, codes)
    assert inet.uniform_threshold == round(r * 2 ** 8)   # in range here, so no clamp
    np.testing.assert_array_equal(inet.lut, np.rint(2 ** 9 * np.exp(-0.2 * np.arange(13))))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_integer_step_equals_the_python_reference(k, seed):
    x, alpha = _trained_like(seed, 14, 11)
    inet = integer_network(x, alpha, 0.05,
                           FixedConfig(weight_bits=k, kernel_bits=12, threshold_frac_bits=10))
    rng = np.random.default_rng(seed + 100)
    states = np.vstack([inet.patterns, rng.integers(0, 2, size=(6, 14), dtype=np.uint8)])
    out = inet.step(states)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _reference_step(inet, states))


def _tie_network(r_fx, column):
    rng = np.random.default_rng(0)
    cfg = FixedConfig(weight_bits=2, kernel_bits=8, threshold_frac_bits=6)
    codes = rng.integers(0, 4, size=(6, 10)).astype(np.uint8)
    codes[:, 3] = column
    return IntegerNetwork(patterns=rng.integers(0, 2, size=(6, 10), dtype=np.uint8),
                          codes=codes, lut=kernel_lut(0.05, 10, 8), r_fx=r_fx, config=cfg)


@pytest.mark.parametrize(("r_fx", "column"), [(0, 0), (64, 1), (128, 2)])
def test_integer_tie_keeps_the_previous_bit(r_fx, column):
    # Column 3 of the codes is constant c and r = c: T_3 = c S_K = r S_K for every state.
    inet = _tie_network(r_fx, column)
    states = np.random.default_rng(1).integers(0, 2, size=(20, 10), dtype=np.uint8)
    T, S = inet.sums(states)
    assert np.all(T[:, 3] * 2 ** 6 == r_fx * S)
    np.testing.assert_array_equal(inet.step(states)[:, 3], states[:, 3])
    res = inet.retrieve(states, max_steps=5)
    np.testing.assert_array_equal(res.states[:, 3], states[:, 3])


def test_float_and_integer_tie_rules_agree_on_a_silent_neuron():
    x, alpha = _trained_like(3, 12, 8)
    alpha[:, 4] = 0.0
    h = potentials(x, x, alpha, 0.05)
    assert np.all(h[:, 4] == 0)
    flipped = x.copy()
    flipped[:, 4] *= -1
    np.testing.assert_array_equal(sign_update(potentials(flipped, x, alpha, 0.05), flipped)[:, 4],
                                  flipped[:, 4])


@pytest.mark.parametrize(("r", "clamped"), [(-7.3, -64), (-1.01, -64), (9.0, 256), (40.0, 256)])
def test_threshold_clamp_changes_no_decision(r, clamped):
    inet = _tie_network(0, 1)
    raw = int(np.rint(r * 64))
    assert threshold_fixed(r, 2, 6) == clamped
    states = np.random.default_rng(2).integers(0, 2, size=(30, 10), dtype=np.uint8)
    a = dataclasses.replace(inet, r_fx=raw).step(states)
    b = dataclasses.replace(inet, r_fx=clamped).step(states)
    np.testing.assert_array_equal(a, b)
    # Below 0 every neuron fires, above 2^k - 1 none does (S_K > 0 here).
    assert np.all(a == (1 if r < 0 else 0))


def test_integer_retrieval_of_stable_patterns_takes_one_step():
    x = random_patterns(np.random.default_rng(3), 20, 3)
    inet = integer_network(x, x.astype(float), 1.0, FixedConfig(weight_bits=2))
    res = inet.retrieve(inet.patterns)
    np.testing.assert_array_equal(res.states, inet.patterns)
    np.testing.assert_array_equal(res.steps, [1, 1, 1])
    assert res.converged.all()
    assert inet.bit_accuracy() == 1.0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_integer_model_tracks_the_quantized_float_model(k):
    x, alpha = _trained_like(5, 40, 60)
    gamma = 0.05
    inet = integer_network(x, alpha, gamma, FixedConfig(weight_bits=k))
    states = np.vstack([x, random_patterns(np.random.default_rng(6), 40, 40)])
    q = quantize(alpha, k)
    flt = to_bits(sign_update(potentials(states, x, q.values, gamma), states))
    assert np.mean(inet.step(to_bits(states)) == flt) > 0.995


def test_register_widths_hold_the_worst_case():
    x, alpha = _trained_like(0, 10, 300)
    inet = integer_network(x, alpha, 0.02, FixedConfig(weight_bits=2, kernel_bits=16))
    acc_bits, sum_bits = inet.config.acc_bits(inet.p), inet.config.sum_bits(inet.p)
    assert 2 ** acc_bits > 300 * 3 * 2 ** 15 >= 2 ** (acc_bits - 1)
    assert 2 ** sum_bits > 300 * 2 ** 15 >= 2 ** (sum_bits - 1)


@pytest.mark.parametrize(("field", "value"), [
    ("weight_bits", 0), ("weight_bits", 5), ("weight_bits", True), ("kernel_bits", 1),
    ("kernel_bits", 25), ("threshold_frac_bits", 0), ("max_steps", 0), ("max_steps", 256),
])
def test_fixed_config_rejects_bad_values_naming_them(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be an integer in"):
        FixedConfig(**{field: value})


@pytest.mark.parametrize("quantizer", QUANTIZERS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_integer_model_with_per_neuron_thresholds_decides_like_the_float_quantized_model(
        k, quantizer):
    """docs/model.md section 6: r_fx[i] from the quantizer's threshold of neuron i; the float
    quantized weights offset_i + scale_i codes give the same sign updates up to the rounding of
    K and r (none left at 24 bits on these states)."""
    x, alpha = _trained_like(11, 40, 60)
    alpha = alpha + np.linspace(-0.8, 0.8, 40)          # a different mean weight per neuron
    gamma = 0.05
    states = np.vstack([x, random_patterns(np.random.default_rng(12), 40, 200)])
    q = quantize(alpha, k, quantizer=quantizer)
    flt = to_bits(sign_update(potentials(states, x, q.values, gamma), states))
    fine = integer_network(x, alpha, gamma, FixedConfig(weight_bits=k, kernel_bits=24,
                                                        threshold_frac_bits=24,
                                                        quantizer=quantizer))
    np.testing.assert_array_equal(fine.codes, q.codes)
    np.testing.assert_array_equal(fine.r_fx, threshold_fixed(q.threshold, k, 24))
    assert (fine.uniform_threshold is None) == (quantizer != "paper")
    np.testing.assert_array_equal(fine.step(to_bits(states)), flt)
    coarse = integer_network(x, alpha, gamma, FixedConfig(weight_bits=k, quantizer=quantizer))
    assert np.mean(coarse.step(to_bits(states)) == flt) > 0.995
