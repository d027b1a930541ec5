"""Parameter validation and derived figures of the accelerator (hw/params.py)."""

import dataclasses
import re

import numpy as np
import pytest
from hw_helpers import params_for, rejected, tiny_network

from khop.hw.accelerator import RetrievalAccelerator
from khop.hw.params import AccelParams

GOOD = {"n": 20, "p": 12, "weight_bits": 2, "lanes": 4, "popcount_width": 5}


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("n", 1, "2.."),
    ("n", 0, "2.."),
    ("p", 0, "1.."),
    ("p", -3, "1.."),
    ("weight_bits", 0, "1..4"),
    ("weight_bits", 5, "1..4"),
    ("lanes", 0, "1..20"),
    ("lanes", 21, "1..20"),
    ("popcount_width", 0, "1..20"),
    ("popcount_width", 21, "1..20"),
    ("max_steps", 0, "1..255"),
    ("max_steps", 256, "1..255"),
    ("kernel_bits", 1, "2..24"),
    ("threshold_frac_bits", 0, "1..24"),
])
def test_bad_value_raises_naming_parameter_and_value(name, value, allowed):
    with pytest.raises(ValueError, match=re.escape(name)) as info:
        AccelParams(**{**GOOD, name: value})
    msg = str(info.value)
    assert msg.startswith(name), msg
    assert repr(value) in msg, msg
    assert allowed.rstrip(".") in msg, msg


@pytest.mark.parametrize(("name", "value"), [
    ("n", 20.0), ("p", "12"), ("weight_bits", 2.5), ("lanes", None), ("popcount_width", 4.0),
    ("max_steps", True), ("kernel_bits", 16.0), ("n", np.float64(20)),
])
def test_non_integer_raises_type_error(name, value):
    with pytest.raises(TypeError) as info:
        AccelParams(**{**GOOD, name: value})
    msg = str(info.value)
    assert msg.startswith(name) and repr(value) in msg, msg


def test_numpy_integers_are_accepted_as_plain_ints():
    prm = AccelParams(n=np.int64(20), p=np.int32(12), lanes=np.uint8(4))
    assert (prm.n, prm.p, prm.lanes) == (20, 12, 4)
    assert type(prm.n) is int


def test_popcount_width_defaults_to_n():
    assert AccelParams(n=23, p=3).popcount_width == 23


def test_params_are_frozen():
    prm = AccelParams(**GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prm.lanes = 8


def test_ridge_figures_by_hand():
    # n=100, p=300, k=2, L=16, W=n, kernel_bits=16 (F=15), R=16.
    prm = AccelParams(n=100, p=300, weight_bits=2, lanes=16)
    assert prm.blocks == 7                      # ceil(100 / 16)
    assert prm.chunks == 1
    assert prm.distance_bits == 7               # 100 < 128
    # T <= 300 * 3 * 2^15 = 29_491_200 < 2^25; S_K <= 300 * 2^15 = 9_830_400 < 2^24.
    assert prm.acc_bits == 25
    assert prm.sum_bits == 24
    assert prm.threshold_bits == 20             # k + R + 2
    assert prm.product_bits == 44
    assert prm.memory_bits == {"pattern": 300 * 100, "weight": 300 * 7 * 32, "lut": 101 * 16}
    assert prm.accumulator_bits == 7 * 16 * 25
    assert prm.bound_cycles_per_step == 2100
    # 1 + (1 + 4) + 299 * 7 + 7 + 4 + 20 + 1 + 7 + 2
    assert prm.cycles_per_step == 2140
    assert prm.cycles_per_query(3) == 3 * 2140


def test_chunked_figures_by_hand():
    # n=23, W=5: chunks 5 (the last one 3 bits); L=5: blocks 5 (the last one 3 neurons).
    prm = AccelParams(n=23, p=9, weight_bits=1, lanes=5, popcount_width=5, kernel_bits=10,
                      threshold_frac_bits=8)
    assert (prm.blocks, prm.chunks) == (5, 5)
    assert (prm.pattern_depth, prm.pattern_width) == (45, 5)
    assert (prm.weight_depth, prm.weight_width) == (45, 5)
    assert prm.lut_depth == 24
    # T <= 9 * 1 * 2^9 = 4608 < 2^13; S_K <= 9 * 2^9 = 4608.
    assert (prm.acc_bits, prm.sum_bits) == (13, 13)
    assert prm.threshold_bits == 11
    assert prm.memory_bits == {"pattern": 225, "weight": 225, "lut": 240}
    assert prm.load_addr_bits == 6               # addresses 0..44
    assert prm.load_data_bits == 11              # the threshold is the widest word
    # 1 + (5 + 4) + 8 * 5 + 5 + 4 + 11 + 1 + 5 + 2
    assert prm.cycles_per_step == 78


def test_distance_bound_figures():
    # W=4 with L=7 on n=30: the distance unit (8 cycles) is slower than the MAC (5 cycles).
    prm = AccelParams(n=30, p=10, weight_bits=4, lanes=7, popcount_width=4)
    assert (prm.blocks, prm.chunks, prm.cycles_per_pattern) == (5, 8, 8)
    assert prm.bound_cycles_per_step == 50
    # 1 + (8 + 4) + 9 * 8 + 5 + 4 + 22 + 1 + 5 + 2
    assert prm.cycles_per_step == 124


@pytest.mark.parametrize(("n", "p", "k", "kernel_bits"), [
    (20, 12, 2, 16), (23, 9, 1, 10), (17, 30, 3, 12), (30, 10, 4, 16), (10, 1, 2, 6),
])
def test_widths_agree_with_the_integer_model(n, p, k, kernel_bits):
    inet = tiny_network(n, p, seed=n + p, weight_bits=k, kernel_bits=kernel_bits, epochs=1)
    prm = params_for(inet, lanes=3)
    assert prm.acc_bits == inet.acc_bits
    assert prm.sum_bits == inet.sum_bits
    assert prm.threshold_bits == inet.threshold_bits
    # The worst case of the accumulator and of S_K fits, one more does not.
    worst_t = p * (2 ** k - 1) * 2 ** (kernel_bits - 1)
    assert worst_t < 2 ** prm.acc_bits <= 2 * worst_t
    assert int(inet.lut.max()) < 2 ** prm.kernel_bits


def _bad_network(inet, **changes):
    cfg = dataclasses.replace(inet.config, **changes)
    return dataclasses.replace(inet, config=cfg)


def test_accelerator_rejects_a_network_of_another_shape():
    inet = tiny_network(20, 12, seed=3, epochs=1)
    for prm in (AccelParams(n=21, p=12), AccelParams(n=20, p=11)):
        msg = rejected(ValueError, r"p=12, n=20.*p=\d+, n=\d+",
                       lambda prm=prm: RetrievalAccelerator(prm, inet))
        assert f"p={prm.p}, n={prm.n}" in msg


@pytest.mark.parametrize(("name", "value"), [
    ("weight_bits", 3), ("kernel_bits", 12), ("threshold_frac_bits", 10),
])
def test_accelerator_rejects_a_network_of_other_arithmetic(name, value):
    inet = tiny_network(20, 12, seed=4, epochs=1)
    prm = params_for(inet, lanes=4)
    bad = _bad_network(inet, **{name: value})
    rejected(ValueError, f"network has {name}={value}.*built for {name}={getattr(prm, name)}",
             lambda: RetrievalAccelerator(prm, bad))


def test_accelerator_rejects_params_of_another_type():
    rejected(TypeError, "params must be an AccelParams", lambda: RetrievalAccelerator(GOOD))
