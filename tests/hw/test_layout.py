"""Memory word packing and stream payload layouts (hw/layout.py)."""

import dataclasses

import numpy as np
import pytest
from hw_helpers import accel_params, params_for, ref_pattern_word, ref_weight_word, tiny_network

from khop.hw.layout import (
    STEPS_BITS,
    LoadTarget,
    field_slices,
    load_layout,
    load_words,
    pack_load,
    pack_result_fields,
    pattern_words,
    result_layout,
    threshold_words,
    unpack_load,
    unpack_pattern_words,
    unpack_result,
    unpack_threshold_words,
    unpack_weight_words,
    weight_words,
)
from khop.model.fixed import FixedConfig


def test_pattern_words_hand_example():
    # n=5, W=2: three chunks per pattern, the last one holds only bit 4.
    prm = accel_params(n=5, p=2, lanes=2, popcount_width=2)
    bits = np.array([[1, 0, 1, 1, 0],
                     [0, 1, 1, 0, 1]], dtype=np.uint8)
    #            mu0: b1b0=01, b3b2=11, b4=0   mu1: 10, 01, 1
    assert pattern_words(prm, bits) == [0b01, 0b11, 0b0, 0b10, 0b01, 0b1]


def test_weight_words_hand_example():
    # n=5, k=2, L=2: three blocks per pattern, lane l at bits 2l..2l+1.
    prm = accel_params(n=5, p=2, weight_bits=2, lanes=2)
    codes = np.array([[3, 0, 1, 2, 1],
                      [0, 1, 2, 3, 2]], dtype=np.uint8)
    #   mu0: (3,0) -> 0b0011, (1,2) -> 0b1001, (1) -> 0b01
    #   mu1: (0,1) -> 0b0100, (2,3) -> 0b1110, (2) -> 0b10
    assert weight_words(prm, codes) == [0b0011, 0b1001, 0b01, 0b0100, 0b1110, 0b10]


#: (n, p, weight_bits, lanes, popcount_width): divisible and not, one lane, one bit.
WORD_SHAPES = [(23, 4, 3, 5, 7), (16, 3, 4, 4, 16), (9, 2, 1, 9, 1), (31, 5, 2, 1, 30)]


def _random_network_words(seed, n, p, k, lanes, width):
    """``(params, bits, codes)``: a configuration and random pattern bits and weight codes."""
    rng = np.random.default_rng(seed)
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, popcount_width=width)
    return (prm, rng.integers(0, 2, size=(p, n), dtype=np.uint8),
            rng.integers(0, 2 ** k, size=(p, n), dtype=np.uint8))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "p", "k", "lanes", "width"), WORD_SHAPES)
def test_words_match_the_documented_bit_positions(seed, n, p, k, lanes, width):
    prm, bits, codes = _random_network_words(seed, n, p, k, lanes, width)
    pw, ww = pattern_words(prm, bits), weight_words(prm, codes)
    assert len(pw) == prm.pattern_depth and len(ww) == prm.weight_depth
    assert pw == [ref_pattern_word(bits, mu, c, width)
                  for mu in range(p) for c in range(prm.chunks)], f"seed={seed}"
    assert ww == [ref_weight_word(codes, mu, b, lanes, k)
                  for mu in range(p) for b in range(prm.blocks)], f"seed={seed}"
    assert all(0 <= w < 2 ** prm.pattern_width for w in pw)
    assert all(0 <= w < 2 ** prm.weight_width for w in ww)


def test_word_packers_reject_bad_input():
    prm = accel_params(n=5, p=2, weight_bits=2, lanes=2)
    with pytest.raises(ValueError, match=r"shape \(2, 4\).*p=2, n=5"):
        pattern_words(prm, np.zeros((2, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="below 2\\^2, found 4"):
        weight_words(prm, np.full((2, 5), 4, dtype=np.uint8))


def test_layout_field_order_from_the_lsb():
    prm = accel_params(n=23, p=9, weight_bits=1, lanes=5, popcount_width=5)
    load = load_layout(prm)
    assert [(name, f.offset, f.width) for name, f in load] == [
        ("target", 0, 2), ("addr", 2, prm.load_addr_bits),
        ("data", 2 + prm.load_addr_bits, prm.load_data_bits)]
    result = result_layout(prm)
    assert [(name, f.offset, f.width) for name, f in result] == [
        ("state", 0, 23), ("steps", 23, 8), ("converged", 31, 1)]
    assert result.size == 32


@pytest.mark.parametrize("seed", [5, 6])
def test_pack_load_agrees_with_the_struct_layout(seed):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=30, p=10, weight_bits=4, lanes=7, popcount_width=4)
    layout = load_layout(prm)
    for target in LoadTarget:
        for _ in range(20):
            addr = int(rng.integers(0, 2 ** prm.load_addr_bits))
            value = random_bits(rng, prm.load_data_bits)
            const = layout.const({"target": target, "addr": addr, "data": value})
            assert pack_load(prm, target, addr, value) == const.as_value().value, \
                f"seed={seed} target={target} addr={addr} data={value}"
            # Targets may be given by their number too.
            assert pack_load(prm, target.value, addr, value) == const.as_value().value


@pytest.mark.parametrize("seed", [7, 8])
def test_result_packing_agrees_with_the_struct_layout(seed):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=23, p=3)
    layout = result_layout(prm)
    for _ in range(50):
        state = int(rng.integers(0, 2 ** 23))
        steps = int(rng.integers(0, 256))
        conv = bool(rng.integers(0, 2))
        raw = layout.const({"state": state, "steps": steps, "converged": int(conv)})
        raw = raw.as_value().value
        assert pack_result_fields(prm, state, steps, conv) == raw, f"seed={seed}"
        assert unpack_result(prm, raw) == (state, steps, conv), f"seed={seed}"


def random_bits(rng, bits):
    """A uniform random integer of ``bits`` bits (wider than NumPy's int64)."""
    return int.from_bytes(rng.bytes((bits + 7) // 8), "little") & ((1 << bits) - 1)


@pytest.mark.parametrize(("lanes", "width", "r_fx"),
                         [(4, 20, None), (7, 3, -5), (20, 1, 0), (6, 20, "per neuron")])
def test_load_words_cover_every_memory_word_once(lanes, width, r_fx):
    inet = tiny_network(20, 6, seed=lanes, weight_bits=3, epochs=2)
    if r_fx == "per neuron":        # every value of the range, its corners included
        r_fx = np.linspace(-(2 ** 16), 2 ** 19, 20).astype(np.int64)
    if r_fx is not None:
        inet = dataclasses.replace(inet, r_fx=r_fx)
    prm = params_for(inet, lanes=lanes, popcount_width=width)
    writes = load_words(prm, inet)
    by_target = {t: {a: d for tt, a, d in writes if tt == t} for t in LoadTarget}
    assert len(writes) == (prm.pattern_depth + prm.weight_depth + prm.lut_depth
                           + prm.threshold_depth)
    assert sorted(by_target[LoadTarget.PATTERN]) == list(range(prm.pattern_depth))
    assert sorted(by_target[LoadTarget.WEIGHT]) == list(range(prm.weight_depth))
    assert sorted(by_target[LoadTarget.LUT]) == list(range(prm.lut_depth))
    assert sorted(by_target[LoadTarget.THRESHOLD]) == list(range(prm.threshold_depth))
    assert all(0 <= d < 2 ** prm.load_data_bits for _, _, d in writes)
    assert all(a < 2 ** prm.load_addr_bits for _, a, _ in writes)
    assert [by_target[LoadTarget.LUT][d] for d in range(prm.lut_depth)] == inet.lut.tolist()
    assert by_target[LoadTarget.PATTERN][prm.chunks + 0] == ref_pattern_word(
        inet.patterns, 1, 0, width)
    assert by_target[LoadTarget.WEIGHT][prm.weight_depth - 1] == ref_weight_word(
        inet.codes, prm.p - 1, prm.blocks - 1, lanes, 3)
    # Word b * G + g holds the thresholds of lanes g*U .. g*U+U-1 of block b, unit u at bits
    # u * threshold_bits, each in two's complement; the words unpack to r_fx.
    units, groups, tb = prm.threshold_units, prm.threshold_groups, prm.threshold_bits
    words = [by_target[LoadTarget.THRESHOLD][a] for a in range(prm.threshold_depth)]
    for i in range(prm.n):
        b, lane = divmod(i, lanes)
        g, u = divmod(lane, units)
        t = (words[b * groups + g] >> (u * tb)) & (2 ** tb - 1)
        assert (t - 2 ** tb if t >> (tb - 1) else t) == inet.r_fx[i]
    for a, w in enumerate(words):          # units past the lanes or past n are 0
        b, g = divmod(a, groups)
        for u in range(units):
            lane = g * units + u
            if lane >= lanes or b * lanes + lane >= prm.n:
                assert (w >> (u * tb)) & (2 ** tb - 1) == 0
        assert w < 2 ** prm.threshold_width
    assert words == threshold_words(prm, inet.r_fx)
    np.testing.assert_array_equal(unpack_threshold_words(prm, words), inet.r_fx)


def test_load_words_rejects_a_mismatched_network():
    inet = tiny_network(20, 6, seed=1, epochs=1)
    with pytest.raises(ValueError, match="p=6, n=20.*p=6, n=21"):
        load_words(accel_params(n=21, p=6), inet)
    with pytest.raises(ValueError, match="weight_bits=3"):
        load_words(accel_params(n=20, p=6, weight_bits=3), inet)
    with pytest.raises(ValueError, match="kernel_bits=12"):
        load_words(accel_params(n=20, p=6, kernel_bits=12), inet)


def test_steps_field_holds_the_largest_step_limit():
    assert STEPS_BITS == 8
    assert 2 ** STEPS_BITS > FixedConfig.RANGES["max_steps"][1]
    prm = accel_params(n=10, p=2, lanes=4, max_steps=FixedConfig.RANGES["max_steps"][1])
    assert field_slices(result_layout(prm))["steps"] == (10, STEPS_BITS)
    raw = pack_result_fields(prm, 5, prm.max_steps, False)
    assert unpack_result(prm, raw) == (5, prm.max_steps, False)


def test_packers_reject_a_field_too_wide():
    prm = accel_params(n=10, p=2, lanes=4)
    with pytest.raises(ValueError, match="steps=256 does not fit"):
        pack_result_fields(prm, 0, 256, True)
    with pytest.raises(ValueError, match="addr="):
        pack_load(prm, LoadTarget.LUT, 2 ** prm.load_addr_bits, 0)
    with pytest.raises(ValueError, match="data=-1"):
        pack_load(prm, LoadTarget.THRESHOLD, 0, -1)


@pytest.mark.parametrize("seed", [11, 12])
def test_unpack_load_inverts_pack_load(seed):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=30, p=10, weight_bits=4, lanes=7, popcount_width=4)
    for target in LoadTarget:
        for _ in range(20):
            addr = int(rng.integers(0, 2 ** prm.load_addr_bits))
            value = random_bits(rng, prm.load_data_bits)
            back = unpack_load(prm, pack_load(prm, target, addr, value))
            assert back == (target, addr, value), f"seed={seed}"
            assert isinstance(back[0], LoadTarget)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("n", "p", "k", "lanes", "width"), WORD_SHAPES)
def test_unpack_memory_words_invert_the_packers(seed, n, p, k, lanes, width):
    prm, bits, codes = _random_network_words(seed, n, p, k, lanes, width)
    back_bits = unpack_pattern_words(prm, pattern_words(prm, bits))
    back_codes = unpack_weight_words(prm, weight_words(prm, codes))
    assert back_bits.dtype == back_codes.dtype == np.uint8
    np.testing.assert_array_equal(back_bits, bits)
    np.testing.assert_array_equal(back_codes, codes)


def test_unpack_of_a_whole_load_gives_the_network_back():
    inet = tiny_network(20, 6, seed=3, weight_bits=3, epochs=2)
    prm = params_for(inet, lanes=7, popcount_width=3)
    mem = {t: {} for t in LoadTarget}
    for t, a, d in load_words(prm, inet):
        target, addr, data = unpack_load(prm, pack_load(prm, t, a, d))
        mem[target][addr] = data
    words = {t: [mem[t][a] for a in sorted(mem[t])] for t in LoadTarget}
    np.testing.assert_array_equal(unpack_pattern_words(prm, words[LoadTarget.PATTERN]),
                                  inet.patterns)
    np.testing.assert_array_equal(unpack_weight_words(prm, words[LoadTarget.WEIGHT]), inet.codes)
    assert words[LoadTarget.LUT] == inet.lut.tolist()


def test_unpack_memory_words_rejects_a_wrong_count():
    prm = accel_params(n=5, p=2, lanes=2, popcount_width=2)
    with pytest.raises(ValueError, match="pattern memory needs 6 words, not 5"):
        unpack_pattern_words(prm, [0] * 5)
    with pytest.raises(ValueError, match="weight memory needs 6 words, not 7"):
        unpack_weight_words(prm, [0] * 7)
