"""The host driver against the device emulator (the bridge's executable specification)."""

import dataclasses
import time

import numpy as np
import pytest

from khop.boards.emulator import EmulatedDevice
from khop.boards.host import Device, DeviceError, LinkError, check_against_model, run_network
from khop.boards.protocol import END, Command, ErrorCode, FrameDecoder, encode_frame
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
        + emu.params.threshold_depth   # one word per block and group of threshold units
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
    assert dev.status().frames == st.frames + 1


def test_timeout_is_a_link_error_within_the_deadline():
    class Silent:
        def write(self, data):
            return len(data)

        def read(self, size=1):
            return b""

    t0 = time.monotonic()
    with pytest.raises(LinkError, match=r"no reply to STATUS within 0.3 s \(nothing received\)"):
        Device(transport=Silent(), timeout=0.3).status()
    assert time.monotonic() - t0 < 0.3 + 0.2


def test_a_babbling_line_is_a_link_error_within_the_deadline():
    """Bytes that keep coming and never form a reply (the issue's hang): the operation still
    ends at its deadline, with one error saying what was received."""
    class Babble:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def write(self, data):
            return len(data)

        def read(self, size=1):
            return self.rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()

        in_waiting = 64

    t0 = time.monotonic()
    with pytest.raises(LinkError, match=r"no reply to STATUS within 0.5 s \(\d+ bytes received, "
                                        r"none a reply to it\)"):
        Device(transport=Babble(), timeout=0.5).sync()
    assert time.monotonic() - t0 < 0.5 + 0.2


def test_open_missing_port_is_one_clear_error():
    with pytest.raises(LinkError, match="/dev/nonexistent-khop"):
        Device("/dev/nonexistent-khop")


class Replay:
    """A transport in front of the emulator that answers each request first with a copy of an
    earlier reply (a stale or duplicated reply), then with the real one."""

    def __init__(self, emu):
        self.emu, self.clock, self.replies, self.out = emu, emu.clock, [], bytearray()

    def write(self, data):
        self.emu.write(data)
        reply = self.emu.read(1 << 16)
        self.out += (self.replies[-1] if self.replies else b"") + reply
        self.replies.append(reply)
        return len(data)

    def read(self, size=1):
        data, self.out[:size] = bytes(self.out[:size]), b""
        return data or self.emu.read(size)


def test_stale_and_duplicated_replies_are_never_taken_for_the_answer(setup):
    """Every request is answered first by the previous request's reply (the issue's stale
    QUERY results after a timeout): the ids tell them apart, every result is this query's."""
    emu, inet, patterns = setup
    dev = Device(transport=Replay(emu))
    dev.load(inet, window=1)
    queries, _ = noisy_queries(patterns, 0.2, 12, np.random.default_rng(0))
    figures = check_against_model(dev, inet, to_bits(queries))
    assert figures["mismatches"] == 0 and figures["queries"] == 12
    assert dev.discarded >= 12


def test_a_reply_of_the_wrong_length_is_one_link_error(setup):
    """A QUERY reply with this request's id and a valid CRC but the wrong length (the issue's
    ProtocolError traceback) is one LinkError."""
    emu, inet, patterns = setup

    class Short:
        clock = emu.clock

        def __init__(self):
            self.out = b""

        def write(self, data):
            emu.write(data)
            [frame] = FrameDecoder().feed(emu.read(1 << 16))
            self.out = encode_frame(frame.cmd, frame.id, frame.payload[:-1]) \
                if frame.cmd == Command.QUERY | 0x80 else encode_frame(frame.cmd, frame.id,
                                                                      frame.payload)
            return len(data)

        def read(self, size=1):
            data, self.out = self.out[:size], self.out[size:]
            return data

    dev = Device(transport=Short())
    dev.load(inet, window=1)
    with pytest.raises(LinkError, match=r"QUERY reply of \d+ bytes, expected \d+"):
        dev.recall(to_bits(patterns[:1]))


def test_out_of_range_load_is_refused_and_writes_nothing(setup):
    """LOAD addresses at and past each memory's depth get an ADDRESS error (the issue: PATTERN
    address = depth overwrote pattern 0); nothing is written."""
    from khop.hw.layout import LoadTarget
    emu, inet, _ = setup
    dev = Device(transport=emu)
    dev.load(inet)
    before = emu.network()
    fmt = dev.link_format()
    for target, depth in fmt.load_depths.items():
        for addr in sorted({depth, (1 << emu.params.load_addr_bits) - 1} - set(range(depth))):
            with pytest.raises(DeviceError, match="ADDRESS") as e:
                dev.request(Command.LOAD, fmt.load_payload(target, addr, 0))
            assert e.value.code == ErrorCode.ADDRESS
    after = emu.network()
    np.testing.assert_array_equal(after.patterns, before.patterns)
    np.testing.assert_array_equal(after.codes, before.codes)
    np.testing.assert_array_equal(after.lut, before.lut)
    np.testing.assert_array_equal(after.r_fx, before.r_fx)
    assert LoadTarget.PATTERN in fmt.load_depths


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


def test_khop_run_on_a_babbling_port_exits_within_its_timeout(tmp_path, record_property):
    """``khop run`` on a pseudo-terminal that sends random bytes without end (the issue: it
    hung forever): exit status 2 and one clear line within ``--timeout`` plus one second. The
    interpreter's start-up (``khop run --help``, timed just before) is not counted: on a loaded
    2-core machine it alone can take a second."""
    import os
    import subprocess
    import sys
    import threading
    from pathlib import Path

    from khop.model.netfile import Network, save_network

    rng = np.random.default_rng(9)
    patterns = random_patterns(rng, 24, 30)
    path = tmp_path / "net.npz"
    save_network(path, Network(patterns=patterns, alpha=rng.normal(0, 2.5, size=patterns.shape),
                               gamma=0.05))
    master, slave = os.openpty()
    stop = threading.Event()

    def babble():
        gen = np.random.default_rng(10)
        while not stop.is_set():
            try:
                os.write(master, gen.integers(0, 256, 256, dtype=np.uint8).tobytes())
            except OSError:
                break
            time.sleep(0.002)

    thread = threading.Thread(target=babble, daemon=True)
    thread.start()
    khop = str(Path(sys.executable).parent / "khop")
    try:
        t0 = time.monotonic()
        subprocess.run([khop, "run", "--help"], capture_output=True, timeout=30, check=True)
        startup = time.monotonic() - t0
        t0 = time.monotonic()
        proc = subprocess.run([khop, "run", str(path), "--port", os.ttyname(slave),
                               "--timeout", "1"], capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("khop: error: no reply to STATUS within 1 s"), \
        proc.stderr
    assert "bytes received, none a reply to it" in lines[0]
    assert elapsed - startup < 1 + 1, (elapsed, startup)
    record_property("fuzz", f"khop run on a babbling pseudo-terminal, --timeout 1: exit 2 "
                            f"after {elapsed:.2f} s (start-up {startup:.2f} s)")


def test_a_request_damaged_on_every_attempt_says_so(setup):
    """A line that damages every request: the device answers each with a CRC error carrying
    its id; the host sends it ``attempts`` times, then says the line is noisy."""
    emu, _, _ = setup

    class Flip:
        clock = emu.clock

        def write(self, data):
            data = bytearray(data)
            data[-3] ^= 0x01            # a CRC byte (or an escaped one): the frame is damaged
            return emu.write(bytes(data))

        def read(self, size=1):
            return emu.read(size)

    dev = Device(transport=Flip(), attempts=3)
    with pytest.raises(LinkError, match=r"received it damaged 3 times; a noisy line"):
        dev.status()
    assert dev.resent == 2 and emu.counters["errors"] == 3
