"""The host driver against the device emulator (the bridge's executable specification)."""

import dataclasses

import numpy as np
import pytest

from khop.boards.emulator import EmulatedDevice
from khop.boards.host import Device, DeviceError, LinkError, check_against_model, run_network
from khop.boards.protocol import END, Command, ErrorCode, encode_frame
from khop.hw.params import AccelParams
from khop.model.fixed import FixedConfig, integer_network, to_bits
from khop.model.kernel import random_patterns
from khop.model.metrics import noisy_queries


def params_for(inet, lanes):
    """The accelerator configuration of integer network ``inet`` (its own arithmetic)."""
    return AccelParams(inet.n, inet.p, inet.config, lanes=lanes)


def _network(seed, n=24, p=30):
    rng = np.random.default_rng(seed)
    patterns = random_patterns(rng, n, p)
    alpha = rng.normal(0, 2.5, size=(p, n))
    return integer_network(patterns, alpha, 0.05, FixedConfig()), patterns


@pytest.fixture
def setup():
    inet, patterns = _network(1)
    params = params_for(inet, lanes=8)
    return EmulatedDevice(params, clock_hz=12_000_000), inet, patterns


def test_params_and_status(setup):
    emu, inet, _ = setup
    dev = Device(transport=emu)
    assert dev.params() == emu.params and dev.clock_hz == 12_000_000
    st = dev.status()
    assert st.idle and not st.loaded and st.frames == 2 and st.errors == 0


def test_load_then_recall_equals_the_integer_model(setup):
    emu, inet, patterns = setup
    dev = Device(transport=emu)
    writes = dev.load(inet)
    assert writes == emu.params.pattern_depth + emu.params.weight_depth + emu.params.lut_depth \
        + emu.params.threshold_depth   # one word per block and threshold digit
    queries, _ = noisy_queries(patterns, 0.2, 10, np.random.default_rng(0))
    figures = check_against_model(dev, inet, to_bits(queries))
    assert figures["mismatches"] == 0 and figures["queries"] == 10
    assert dev.status().loaded


def test_a_network_of_the_wrong_shape_is_refused(setup):
    emu, _, _ = setup
    other, _ = _network(2, n=20)
    with pytest.raises(LinkError, match="does not fit"):
        Device(transport=emu).load(other)


def test_error_replies_raise_device_error(setup):
    emu, _, _ = setup
    dev = Device(transport=emu)
    with pytest.raises(DeviceError, match="COMMAND") as e:
        dev.request(0x42)
    assert e.value.code == ErrorCode.COMMAND
    with pytest.raises(DeviceError, match="LENGTH"):
        dev.request(Command.QUERY, b"\x00")


def test_sync_after_garbage(setup):
    emu, _, _ = setup
    dev = Device(transport=emu)
    emu.write(bytes(range(256)) + bytes((END, 0x12)))
    st = dev.sync()
    assert st.errors >= 1
    assert dev.status().nonce == (st.nonce + 1) & 0xFF


def test_timeout_is_a_link_error():
    class Silent:
        def write(self, data):
            return len(data)

        def read(self, size=1):
            return b""

    with pytest.raises(LinkError, match="timeout"):
        Device(transport=Silent()).status()


def test_open_missing_port_is_one_clear_error():
    with pytest.raises(LinkError, match="/dev/nonexistent-khop"):
        Device("/dev/nonexistent-khop")


def test_wrong_reply_is_detected(setup):
    emu, _, _ = setup

    class Mixed:
        def __init__(self):
            self.sent = False

        def write(self, data):
            return len(data)

        def read(self, size=1):
            if self.sent:
                return b""
            self.sent = True
            return encode_frame(Command.PARAMS | 0x80, b"")

    with pytest.raises(LinkError, match="reply 0x82 to command 0x01"):
        Device(transport=Mixed()).status()


def test_per_neuron_thresholds_load_and_recall_equal_the_model(setup):
    """A threshold per neuron (corners of the range included) through the emulated link: the
    emulator's memories hold them exactly and every result equals the model's."""
    emu, inet, patterns = setup
    prm = emu.params
    lo, hi = prm.threshold_range
    rng = np.random.default_rng(3)
    r_fx = np.clip(inet.r_fx + rng.integers(-(2 ** 13), 2 ** 13, size=inet.n), lo, hi)
    r_fx[:3] = [lo, hi, -1]
    net = dataclasses.replace(inet, r_fx=r_fx)
    dev = Device(transport=emu)
    dev.load(net)
    np.testing.assert_array_equal(emu.network().r_fx, r_fx)
    queries, _ = noisy_queries(patterns, 0.2, 20, np.random.default_rng(4))
    figures = check_against_model(dev, net, to_bits(queries))
    assert figures["mismatches"] == 0 and figures["queries"] == 20


@pytest.mark.parametrize(("file_quantizer", "option", "used"), [
    ("paper", None, "paper"),        # what a network file of format version 1 means
    ("neuron", None, "neuron"),
    ("paper", "bias", "bias"),
])
def test_run_quantizes_with_the_network_or_the_users_quantizer(file_quantizer, option, used):
    """The board fixes the arithmetic and the geometry, not the quantizer: khop run loads the
    network quantized as its file says (or as --quantizer says), and recalls like that model."""
    from khop.hw.params import configure
    from khop.model.netfile import Network

    rng = np.random.default_rng(5)
    patterns = random_patterns(rng, 24, 30)
    alpha = rng.normal(0, 2.5, size=patterns.shape)
    net = Network(patterns=patterns, alpha=alpha, gamma=0.05, quantizer=file_quantizer)
    prm, _ = configure(net, lanes=8)
    emu = EmulatedDevice(prm)
    with Device(transport=emu) as device:
        report = run_network(device, net, queries=12, noise=0.2, seed=1,
                             options={"quantizer": option})
    assert report.mismatches == 0
    _, expect = configure(net, lanes=8, quantizer=used)
    np.testing.assert_array_equal(emu.network().r_fx, expect.r_fx)
    np.testing.assert_array_equal(emu.network().codes, expect.codes)


def test_run_refuses_hardware_options_the_board_does_not_have(setup):
    """An option the user sets must equal what the board reports; one error names both."""
    from khop.model.errors import ParameterError
    from khop.model.netfile import Network

    emu, _, _ = setup
    params = emu.params
    rng = np.random.default_rng(7)
    net = Network(patterns=random_patterns(rng, params.n, params.p),
                  alpha=rng.normal(0, 2.5, (params.p, params.n)), gamma=0.05)
    with Device(transport=emu) as device, \
            pytest.raises(ParameterError, match=r"^the board is built for lanes=8 but --lanes 4 "
                                                r"was given; kernel_bits=16 but --kernel-bits 12"):
        run_network(device, net, options={"lanes": 4, "kernel_bits": 12, "bits": 2,
                                          "quantizer": "bias"})
    assert emu.counters["loads"] == 0   # nothing was loaded
