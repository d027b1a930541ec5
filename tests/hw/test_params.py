"""Parameter validation and derived figures of the accelerator (hw/params.py)."""

import dataclasses
import json
import re

import numpy as np
import pytest
from hw_helpers import accel_params, params_for, rejected, tiny_network

from khop.hw.accelerator import RetrievalAccelerator
from khop.hw.params import (
    GENERIC_DEFAULTS,
    HARDWARE_OPTIONS,
    MAX_BATCH,
    STEP_CYCLE_TERMS,
    AccelParams,
    HardwareDefaults,
    configure,
    hardware_params,
    step_cycle_formula,
)
from khop.model.errors import ParameterError
from khop.model.fixed import FixedConfig
from khop.model.netfile import Network

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
    ("batch", 0, "1..32"),
    ("batch", 33, "1..32"),
    ("batch", -1, "1..32"),
])
def test_bad_value_raises_naming_parameter_and_value(name, value, allowed):
    with pytest.raises(ValueError, match=re.escape(name)) as info:
        accel_params(**{**GOOD, name: value})
    msg = str(info.value)
    assert msg.startswith(name), msg
    assert repr(value) in msg, msg
    assert allowed.rstrip(".") in msg, msg


@pytest.mark.parametrize(("name", "value"), [
    ("n", 20.0), ("p", "12"), ("lanes", None), ("popcount_width", 4.0), ("n", np.float64(20)),
    ("batch", 2.0), ("batch", None), ("batch", True),
])
def test_non_integer_raises_type_error(name, value):
    with pytest.raises(TypeError) as info:
        accel_params(**{**GOOD, name: value})
    msg = str(info.value)
    assert msg.startswith(name) and repr(value) in msg, msg


@pytest.mark.parametrize(("name", "value"), [
    ("weight_bits", 2.5), ("max_steps", True), ("kernel_bits", 16.0), ("threshold_frac_bits", "8"),
])
def test_non_integer_arithmetic_raises_naming_it(name, value):
    """The arithmetic fields belong to :class:`FixedConfig`, which rejects a non-integer as a
    value outside its range (``ValueError``), naming the field and the value."""
    with pytest.raises(ValueError) as info:
        accel_params(**{**GOOD, name: value})
    msg = str(info.value)
    assert msg.startswith(name) and repr(value) in msg, msg


def test_numpy_integers_are_accepted_as_plain_ints():
    prm = AccelParams(n=np.int64(20), p=np.int32(12), lanes=np.uint8(4))
    assert (prm.n, prm.p, prm.lanes) == (20, 12, 4)
    assert type(prm.n) is int


def test_popcount_width_defaults_to_n():
    assert AccelParams(n=23, p=3).popcount_width == 23


def test_batch_defaults_to_one_and_takes_its_whole_range():
    assert MAX_BATCH == 32
    assert AccelParams(n=23, p=3).batch == 1
    for batch in (1, 2, 7, MAX_BATCH):
        assert accel_params(**GOOD, batch=batch).batch == batch
    assert type(AccelParams(n=20, p=3, batch=np.int64(4)).batch) is int


def test_params_are_frozen():
    prm = accel_params(**GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prm.lanes = 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        prm.fixed.weight_bits = 3
    with pytest.raises(AttributeError):
        prm.weight_bits = 3                 # a read-only view of prm.fixed


def test_ridge_figures_by_hand():
    # n=100, p=300, k=2, L=16, W=n, kernel_bits=16 (F=15), R=16.
    prm = accel_params(n=100, p=300, weight_bits=2, lanes=16)
    assert prm.blocks == 7                      # ceil(100 / 16)
    assert prm.chunks == 1
    assert prm.distance_bits == 7               # 100 < 128
    # T <= 300 * 3 * 2^15 = 29_491_200 < 2^25; S_K <= 300 * 2^15 = 9_830_400 < 2^24.
    assert prm.acc_bits == 25
    assert prm.sum_bits == 24
    assert prm.threshold_bits == 20             # k + R + 2
    assert prm.product_bits == 44
    assert prm.memory_bits == {"pattern": 300 * 100, "weight": 300 * 7 * 32, "lut": 101 * 16,
                               "threshold": (7 * 4) * (4 * 20)}
    assert (prm.threshold_units, prm.threshold_groups) == (4, 4)
    assert prm.multiplier_shape == (20, 24)
    assert prm.compare_bits == 44 + 1               # T * 2^16 is 41 bits, theta 44 signed
    # Block-outer: lanes accumulators per query (no ring of blocks words), batch 1.
    assert prm.batch == 1
    assert prm.accumulator_bits == 16 * 25
    assert prm.kernel_buffer_shape == (300, 16)       # p kernels of one query
    assert prm.bound_cycles_per_step == 2100
    assert prm.bound_cycles_per_query_step == 2100
    # 1 + 5 + 300 * 1 + 4 + 6 * (300 + 3) + 7 * 1 * (4 + 1) + 3
    assert prm.cycles_per_step == 2166
    # Over the bound: 3 cycles per later block, a beat per block, 13 fixed.
    assert prm.cycles_per_step - prm.bound_cycles_per_step == 6 * 3 + 7 * (4 + 1) + 13
    assert prm.cycles_per_query(3) == 3 * 2166
    assert prm.query_interval(3) == 3 * 2166 + 2


def test_ridge_figures_with_a_batch_by_hand():
    # The ridge shape with 4 queries in flight: the weight reads are shared, the accumulators,
    # the kernel buffer and the sign-update beats are per query.
    prm = accel_params(n=100, p=300, weight_bits=2, lanes=16, batch=4)
    assert prm.blocks == 7 and prm.chunks == 1
    assert prm.accumulator_bits == 4 * 16 * 25
    assert prm.kernel_buffer_shape == (300, 4 * 16)
    assert prm.bound_cycles_per_step == 2100            # whatever the batch
    assert prm.bound_cycles_per_query_step == 525.0
    # 1 + 5 + 300 + 4 + 6 * 303 + 7 * 4 * 5 + 3
    assert prm.cycles_per_step == 2271
    assert prm.cycles_per_step / prm.batch < prm.bound_cycles_per_step
    # The memories do not depend on the batch.
    assert prm.memory_shapes == accel_params(n=100, p=300, weight_bits=2,
                                             lanes=16).memory_shapes
    # A query finding it idle waits the join window of batch - 1 cycles.
    assert (prm.join_cycles, prm.rejoin_cycles) == (3, 4)
    assert prm.cycles_per_query(2) == 3 + 2 * 2271


@pytest.mark.parametrize("batch", [1, 3, 32])
def test_kernel_buffer_only_with_more_than_one_block(batch):
    assert accel_params(n=20, p=7, lanes=20, batch=batch).kernel_buffer_shape is None
    assert accel_params(n=20, p=7, lanes=19, batch=batch, kernel_bits=12).kernel_buffer_shape \
        == (7, batch * 12)
    prm = accel_params(n=20, p=7, lanes=3, batch=batch, weight_bits=3)
    assert prm.accumulator_bits == batch * 3 * prm.acc_bits


def test_chunked_figures_by_hand():
    # n=23, W=5: chunks 5 (the last one 3 bits); L=5: blocks 5 (the last one 3 neurons).
    prm = accel_params(n=23, p=9, weight_bits=1, lanes=5, popcount_width=5, kernel_bits=10,
                       threshold_frac_bits=8)
    assert (prm.blocks, prm.chunks) == (5, 5)
    assert (prm.pattern_depth, prm.pattern_width) == (45, 5)
    assert (prm.weight_depth, prm.weight_width) == (45, 5)
    assert prm.lut_depth == 24
    # T <= 9 * 1 * 2^9 = 4608 < 2^13; S_K <= 9 * 2^9 = 4608.
    assert (prm.acc_bits, prm.sum_bits) == (13, 13)
    assert prm.threshold_bits == 11
    assert (prm.threshold_units, prm.threshold_groups) == (4, 2)   # 5 lanes: 4 + 1
    # Thresholds: 5 blocks * 2 groups, words of 4 units * 11 bits (two's complement).
    assert (prm.threshold_depth, prm.threshold_width) == (10, 44)
    assert prm.memory_bits == {"pattern": 225, "weight": 225, "lut": 240, "threshold": 440}
    assert prm.load_addr_bits == 6               # addresses 0..44 (thresholds: 0..9)
    assert prm.load_data_bits == 44              # the threshold word is the widest word
    # 1 + 5 + 9 * 5 + 4 + 4 * (9 + 3) + 5 * 1 * (2 + 1) + 3
    assert prm.cycles_per_step == 121
    assert prm.kernel_buffer_shape == (9, 10)
    assert prm.accumulator_bits == 5 * 13


def test_distance_bound_figures():
    # W=4 with L=7 on n=30: the distance unit (8 cycles) is slower than the MAC (5 cycles).
    prm = accel_params(n=30, p=10, weight_bits=4, lanes=7, popcount_width=4)
    assert (prm.blocks, prm.chunks, prm.threshold_groups) == (5, 8, 2)   # ceil(7 / 4)
    assert prm.bound_cycles_per_step == 50
    # Block 0 runs at the distance unit's rate, the later blocks at one pattern per cycle:
    # 1 + 5 + 10 * 8 + 4 + 4 * (10 + 3) + 5 * 1 * (2 + 1) + 3
    assert prm.cycles_per_step == 160


@pytest.mark.parametrize(("n", "p", "k", "kernel_bits"), [
    (20, 12, 2, 16), (23, 9, 1, 10), (17, 30, 3, 12), (30, 10, 4, 16), (10, 1, 2, 6),
])
def test_widths_agree_with_the_integer_model(n, p, k, kernel_bits):
    inet = tiny_network(n, p, seed=n + p, weight_bits=k, kernel_bits=kernel_bits, epochs=1)
    prm = params_for(inet, lanes=3)
    assert prm.acc_bits == inet.config.acc_bits(inet.p)
    assert prm.sum_bits == inet.config.sum_bits(inet.p)
    assert prm.threshold_bits == inet.config.threshold_bits
    # The worst case of the accumulator and of S_K fits, one more does not.
    worst_t = p * (2 ** k - 1) * 2 ** (kernel_bits - 1)
    assert worst_t < 2 ** prm.acc_bits <= 2 * worst_t
    assert int(inet.lut.max()) < 2 ** prm.kernel_bits


def _bad_network(inet, **changes):
    cfg = dataclasses.replace(inet.config, **changes)
    return dataclasses.replace(inet, config=cfg)


def test_accelerator_rejects_a_network_of_another_shape():
    inet = tiny_network(20, 12, seed=3, epochs=1)
    for prm in (accel_params(n=21, p=12), accel_params(n=20, p=11)):
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


@pytest.mark.parametrize(("batch", "terms"), [
    (1, [1, 5, 9 * 5, 4, 4 * (9 + 3), 5 * 1 * (2 + 1), 3]),
    (3, [1, 5, 9 * 5, 4, 4 * (9 + 3), 5 * 3 * (2 + 1), 3]),
])
def test_cycles_per_step_is_the_sum_of_its_named_terms(batch, terms):
    prm = accel_params(n=23, p=9, weight_bits=1, lanes=5, popcount_width=5, kernel_bits=10,
                       threshold_frac_bits=8, batch=batch)
    assert prm.cycle_names() == {"chunks": 5, "blocks": 5, "p": 9, "batch": batch,
                                 "threshold_groups": 2, "max": max}
    names = {**prm.cycle_names(), "__builtins__": {}}
    assert [eval(expr, names) for _, expr in STEP_CYCLE_TERMS] == terms
    assert sum(terms) == prm.cycles_per_step
    assert step_cycle_formula() == ("cycles_per_step = p * chunks "
                                    "+ (blocks - 1) * (p + 3) "
                                    "+ blocks * batch * (threshold_groups + 1) + 13")
    formula = step_cycle_formula().split("=", 1)[1]
    assert eval(formula, names) == prm.cycles_per_step


@pytest.mark.parametrize(("n", "p", "lanes", "width", "units", "batch"), [
    (23, 9, 5, 5, 4, 1), (100, 300, 16, None, 4, 4), (30, 10, 7, 4, 1, 2), (17, 1, 17, 1, 3, 32),
    (12, 1, 5, 6, 2, 3), (40, 20, 1, 40, 1, 5), (100, 300, 100, None, 50, 10),
])
def test_cycles_per_step_is_the_block_outer_closed_form(n, p, lanes, width, units, batch):
    """``p*chunks + (blocks-1)*(p+3) + blocks*batch*(threshold_groups+1) + 13``, computed here
    from n, lanes, popcount_width and the threshold units, not from the params' own figures."""
    prm = accel_params(n=n, p=p, lanes=lanes, popcount_width=width, threshold_units=units,
                       batch=batch)
    blocks = -(-n // lanes)
    chunks = -(-n // (n if width is None else width))
    groups = -(-lanes // units)
    assert (prm.blocks, prm.chunks, prm.threshold_groups) == (blocks, chunks, groups)
    assert prm.cycles_per_step == (p * chunks + (blocks - 1) * (p + 3)
                                   + blocks * batch * (groups + 1) + 13)
    assert prm.cycles_per_query(3) == prm.batch - 1 + 3 * prm.cycles_per_step


# The configuration object: FixedConfig inside AccelParams -------------------------------------

def test_accel_params_contains_its_fixed_config():
    fixed = FixedConfig(weight_bits=3, kernel_bits=12, threshold_frac_bits=10, max_steps=7,
                        center="mean")
    prm = AccelParams(40, 20, fixed, lanes=8)
    assert prm.fixed is fixed
    assert (prm.weight_bits, prm.kernel_bits, prm.threshold_frac_bits, prm.max_steps) == \
        (3, 12, 10, 7)
    assert prm.kernel_frac_bits == fixed.kernel_frac_bits == 11
    assert prm.acc_bits == fixed.acc_bits(20)
    assert prm.sum_bits == fixed.sum_bits(20)
    assert prm.threshold_bits == fixed.threshold_bits == 3 + 10 + 2
    assert prm.product_bits == fixed.product_bits(20)
    assert AccelParams(40, 20).fixed == FixedConfig()


def test_accel_params_rejects_a_fixed_of_another_type():
    with pytest.raises(TypeError, match="fixed must be a FixedConfig"):
        AccelParams(20, 12, {"weight_bits": 2})
    with pytest.raises(TypeError, match="fixed must be a FixedConfig"):
        AccelParams(20, 12, 2)          # the old positional weight_bits


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("weight_bits", 0, "1..4"), ("kernel_bits", 25, "2..24"), ("threshold_frac_bits", 25, "1..24"),
    ("max_steps", 256, "1..255"),
])
def test_fixed_config_message_names_field_range_and_value(name, value, allowed):
    with pytest.raises(ValueError) as info:
        FixedConfig(**{name: value})
    assert str(info.value) == f"{name} must be an integer in {allowed}, not {value!r}"
    assert allowed == "{}..{}".format(*FixedConfig.RANGES[name])


def test_fixed_config_rejects_an_unknown_center():
    with pytest.raises(ValueError, match="center must be one of median, mean, not 'mode'"):
        FixedConfig(center="mode")


@pytest.mark.parametrize("prm", [
    AccelParams(20, 12),
    AccelParams(23, 9, FixedConfig(weight_bits=1, kernel_bits=10, threshold_frac_bits=8,
                                   max_steps=5, center="mean"), lanes=5, popcount_width=7),
    AccelParams(23, 9, lanes=5, batch=7),
])
def test_as_dict_round_trip(prm):
    d = prm.as_dict()
    assert d == {"n": prm.n, "p": prm.p, "weight_bits": prm.weight_bits,
                 "kernel_bits": prm.kernel_bits, "threshold_frac_bits": prm.threshold_frac_bits,
                 "max_steps": prm.max_steps, "center": prm.fixed.center,
                 "quantizer": prm.fixed.quantizer, "lanes": prm.lanes,
                 "popcount_width": prm.popcount_width,
                 "threshold_units": prm.threshold_units, "batch": prm.batch}
    assert AccelParams.from_dict(d) == prm
    assert AccelParams.from_dict(json.loads(json.dumps(d))) == prm


def test_from_dict_rejects_unknown_keys_and_bad_values():
    with pytest.raises(TypeError, match="colour"):
        AccelParams.from_dict({"n": 20, "p": 12, "colour": 1})
    with pytest.raises(ValueError, match="weight_bits must be an integer in 1..4"):
        AccelParams.from_dict({"n": 20, "p": 12, "weight_bits": 7})


# hardware_params and configure ------------------------------------------------------------------

def test_hardware_params_defaults():
    assert HARDWARE_OPTIONS == ("bits", "lanes", "batch", "popcount_width", "kernel_bits",
                                "threshold_frac_bits", "max_steps", "quantizer")
    assert GENERIC_DEFAULTS.batch == 1
    assert not hasattr(GENERIC_DEFAULTS, "narrow_popcount")
    prm = hardware_params(100, 300)
    assert prm == AccelParams(100, 300, FixedConfig(), lanes=GENERIC_DEFAULTS.lanes)
    assert (prm.lanes, prm.popcount_width, prm.batch) == (16, 100, 1)
    assert hardware_params(100, 300, batch=6).batch == 6
    # lanes is capped at n.
    assert hardware_params(10, 3).lanes == 10
    # Every option given is taken as it is.
    prm = hardware_params(40, 20, bits=3, lanes=8, popcount_width=5, kernel_bits=12,
                          threshold_frac_bits=10, max_steps=9, center="mean")
    assert prm == AccelParams(40, 20, FixedConfig(3, 12, 10, 9, "mean"), lanes=8,
                              popcount_width=5)


def test_hardware_params_target_defaults():
    target = HardwareDefaults(lanes=8, kernel_bits=12, threshold_units=2, batch=4)
    prm = hardware_params(100, 300, defaults=target)
    assert (prm.lanes, prm.kernel_bits, prm.threshold_units, prm.batch) == (8, 12, 2, 4)
    # No target chooses the popcount any more: one pattern per cycle unless the user sets it.
    assert prm.popcount_width == 100 and prm.chunks == 1
    # A user's option beats the target's.
    prm = hardware_params(100, 300, lanes=32, kernel_bits=16, popcount_width=20, batch=1,
                          defaults=target)
    assert (prm.lanes, prm.kernel_bits, prm.popcount_width, prm.batch) == (32, 16, 20, 1)
    with pytest.raises(TypeError):
        HardwareDefaults(narrow_popcount=True)


@pytest.mark.parametrize(("options", "name", "allowed"), [
    ({"bits": 5}, "weight_bits", "1..4"),
    ({"lanes": 0}, "lanes", "1..20"),
    ({"lanes": 21}, "lanes", "1..20"),
    ({"popcount_width": 30}, "popcount_width", "1..20"),
    ({"kernel_bits": 1}, "kernel_bits", "2..24"),
    ({"threshold_frac_bits": 30}, "threshold_frac_bits", "1..24"),
    ({"max_steps": 0}, "max_steps", "1..255"),
    ({"batch": 0}, "batch", "1..32"),
    ({"batch": 33}, "batch", "1..32"),
])
def test_hardware_params_error_names_the_option_and_the_shape(options, name, allowed):
    with pytest.raises(ParameterError) as info:
        hardware_params(20, 12, **options)
    msg = str(info.value)
    value = next(iter(options.values()))
    assert msg.startswith(name), msg
    assert allowed in msg and repr(value) in msg, msg
    assert msg.endswith("(network N=20, P=12)"), msg
    assert isinstance(info.value, ValueError)


def _trained(n=20, p=12, seed=3):
    inet = tiny_network(n, p, seed=seed, epochs=1)
    rng = np.random.default_rng(seed)
    patterns = np.where(inet.patterns == 1, 1, -1).astype(np.int8)
    alpha = rng.normal(size=(p, n)) + 2 * patterns
    return Network(patterns=patterns, alpha=alpha, gamma=1.0 / n)


def test_configure_builds_the_network_with_the_params_own_arithmetic():
    net = _trained()
    prm, inet = configure(net, bits=3, lanes=4, kernel_bits=12, threshold_frac_bits=10,
                          max_steps=7)
    assert inet.config is prm.fixed
    assert prm == hardware_params(20, 12, bits=3, lanes=4, kernel_bits=12,
                                  threshold_frac_bits=10, max_steps=7)
    prm.check_network(inet)
    assert int(inet.codes.max()) < 2 ** 3
    assert int(inet.lut[0]) == 2 ** 11
    # The same arithmetic as integer_network with that FixedConfig.
    from khop.model.fixed import integer_network
    ref = integer_network(net.patterns, net.alpha, net.gamma, prm.fixed)
    np.testing.assert_array_equal(inet.codes, ref.codes)
    np.testing.assert_array_equal(inet.lut, ref.lut)
    np.testing.assert_array_equal(inet.r_fx, ref.r_fx)
    # Target defaults apply to the network too.
    prm, inet = configure(net, defaults=HardwareDefaults(lanes=8, kernel_bits=10))
    assert (prm.lanes, prm.kernel_bits, inet.config.kernel_bits) == (8, 10, 10)


@pytest.mark.parametrize("options", [
    {"bits": 1, "lanes": 5, "popcount_width": 3, "kernel_bits": 9, "threshold_frac_bits": 4,
     "max_steps": 3, "center": "mean"},
    {"bits": 4, "lanes": 20, "kernel_bits": 24},
    {"bits": 2, "lanes": 6, "batch": 5},
])
def test_options_reproduce_the_configuration(options):
    """A board reports its AccelParams; the host configures the network with params.options()
    and must get the same configuration, whatever the defaults would have been."""
    net = _trained()
    prm, _ = configure(net, **options)
    again, inet = configure(net, **prm.options())
    assert again == prm
    # The batch is carried too: the defaults' batch does not override it.
    again, _ = configure(net, defaults=HardwareDefaults(batch=3), **prm.options())
    assert again == prm and again.batch == options.get("batch", 1)
    prm.check_network(inet)
    assert set(prm.options()) >= set(HARDWARE_OPTIONS)


def test_a_target_without_a_kernel_width_takes_the_widest_without_crosstalk():
    """``HardwareDefaults.kernel_bits`` None: :func:`sharp_kernel_bits` of the network's N, P
    and gamma (the training default's without a network); an option beats it."""
    from khop.model.fixed import sharp_kernel_bits
    follow = HardwareDefaults(lanes=8, kernel_bits=None)
    assert hardware_params(100, 300, defaults=follow).kernel_bits == 4
    assert hardware_params(256, 768, defaults=follow).kernel_bits == 11
    assert hardware_params(100, 300, gamma=0.05, defaults=follow).kernel_bits == \
        sharp_kernel_bits(0.05, 100, 300) != 4
    assert hardware_params(100, 300, kernel_bits=7, defaults=follow).kernel_bits == 7
    net = _trained()
    prm, inet = configure(net, defaults=follow)
    assert prm.kernel_bits == inet.config.kernel_bits == sharp_kernel_bits(net.gamma, net.n,
                                                                             net.p)
    # A bad shape is named as without the rule.
    with pytest.raises(ParameterError, match=r"^n must be .*, not 1 \(network N=1, P=3\)$"):
        hardware_params(1, 3, defaults=follow)
    with pytest.raises(ParameterError, match=r"^p must be .*, not 0 \(network N=8, P=0\)$"):
        hardware_params(8, 0, defaults=follow)


def test_configure_reports_a_bad_option_naming_the_network():
    with pytest.raises(ParameterError, match=r"^weight_bits .*\(network N=20, P=12\)$"):
        configure(_trained(), bits=9)


def test_check_network_names_the_first_mismatch():
    inet = tiny_network(20, 12, seed=4, epochs=1)
    params_for(inet).check_network(inet)
    with pytest.raises(ValueError, match=r"network is p=12, n=20 but .* p=12, n=21"):
        accel_params(n=21, p=12).check_network(inet)
    with pytest.raises(ValueError, match=r"network has kernel_bits=16 .* kernel_bits=12"):
        accel_params(n=20, p=12, kernel_bits=12).check_network(inet)


def test_check_network_takes_per_neuron_thresholds_in_range():
    inet = tiny_network(20, 12, seed=4, epochs=1)
    prm = params_for(inet)
    lo, hi = prm.threshold_range
    r = np.clip(inet.r_fx, lo, hi - 1)
    r[3] += 1
    prm.check_network(dataclasses.replace(inet, r_fx=r))
    for bad in (lo - 1, hi + 1):
        r[5] = bad
        with pytest.raises(ValueError, match=r"thresholds r_fx must be 20 values in -65536\.\."):
            prm.check_network(dataclasses.replace(inet, r_fx=r))


@pytest.mark.parametrize("n, p, options", [
    (7, 1, {"bits": 2, "kernel_bits": 3, "threshold_frac_bits": 1}),
    (7, 1, {"bits": 1, "kernel_bits": 2, "threshold_frac_bits": 8}),
])
def test_narrow_accumulators_elaborate(n, p, options):
    """Small kernel widths with few patterns: accumulators narrower than the threshold's
    fraction (the digit-serial sign update refused these; the threshold units compare the
    whole product and take them)."""
    from amaranth.back import rtlil

    prm = hardware_params(n, p, **options)
    assert prm.acc_bits < prm.threshold_frac_bits or prm.acc_bits <= 4
    rtlil.convert(RetrievalAccelerator(prm))
