"""Fuzz of the board link through the device emulator (the protocol's executable
specification): raw byte sequences, and the host driver over a damaging line.

Seeded and bounded: the default run tries 1,000 sequences of each kind, ``make test-slow`` ten
times more. The counts are printed in the "fuzz" section of the test summary. The same
sequences are compared byte for byte with the hardware in ``test_bridge.py`` (Amaranth) and
``test_board_cosim.py`` (Verilator).
"""

import contextlib
import random
import signal

import numpy as np
import pytest

from khop.boards.emulator import EmulatedDevice
from khop.boards.fuzz import NoisyLine, link_sequence
from khop.boards.host import Device, LinkError, run_network
from khop.boards.protocol import (
    ERROR,
    ERROR_LAYOUT,
    REPLY,
    Command,
    ErrorCode,
    FrameDecoder,
    FrameError,
    check_request,
    payload_bytes,
)
from khop.hw.layout import load_words
from khop.hw.params import configure
from khop.model.fixed import pack_bits, to_bits
from khop.model.kernel import random_patterns
from khop.model.metrics import noisy_queries
from khop.model.netfile import Network

#: Seconds of wall time one host operation may take before it counts as a hang.
HANG_SECONDS = 5.0


@contextlib.contextmanager
def no_hang(seconds=HANG_SECONDS):
    """Raise ``TimeoutError`` in the block after ``seconds`` (a hang is a failure, not a wait)."""
    def expire(signum, frame):
        raise TimeoutError(f"hung for {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _network(seed=3, n=20, p=12, lanes=4):
    rng = np.random.default_rng(seed)
    patterns = random_patterns(rng, n, p)
    net = Network(patterns=patterns, alpha=rng.normal(0, 2.5, size=(p, n)), gamma=0.06)
    prm, inet = configure(net, lanes=lanes, max_steps=8)
    return net, prm, inet


def _expected_replies(fmt, data, decoder):
    """The frames of ``data`` as the device's parser sees them, and what each must get: the
    reply command and id."""
    out = []
    for ev in decoder.feed(data):
        if isinstance(ev, FrameError):
            out.append((ERROR, ev.id, ev.code))
        else:
            code = check_request(fmt, ev)
            out.append((ERROR, ev.id, code) if code else (ev.cmd | REPLY, ev.id, None))
    return out


@pytest.mark.parametrize("count", [pytest.param(1000, id="1000"),
                                   pytest.param(10_000, id="10000", marks=pytest.mark.slow)])
def test_byte_sequences_get_one_well_formed_reply_per_frame(count, record_property):
    """Random sequences of valid, invalid and damaged frames and garbage: the emulator answers
    every frame with exactly one well-formed reply carrying its id (ERROR with the expected
    code, or the command's reply, in order), rejected frames change no memory, and every
    query result is well-formed."""
    net, prm, inet = _network()
    emu = EmulatedDevice(prm)
    fmt = emu.fmt
    words = load_words(prm, inet)
    rng = random.Random(20261205)
    parser = FrameDecoder(fmt.max_payload)
    replies = FrameDecoder()
    frames = errors = queries = sent = 0
    for _ in range(count):
        data = link_sequence(rng, fmt, words)
        sent += len(data)
        expect = _expected_replies(fmt, data, parser)
        before = [list(m) for m in (emu.pattern, emu.weight, emu.lut, emu.threshold)]
        emu.write(data)
        got = replies.feed(emu.read(1 << 20))
        assert [(r.cmd, r.id) for r in got] == [(c, i) for c, i, _ in expect], data.hex()
        for r, (cmd, _, code) in zip(got, expect, strict=True):
            frames += 1
            if cmd == ERROR:
                errors += 1
                assert len(r.payload) == payload_bytes(ERROR_LAYOUT)
                assert ErrorCode(r.payload[0]) == code
            elif cmd == Command.QUERY | REPLY:
                queries += 1
                state, steps, conv = fmt.result_from_payload(r.payload)
                assert 0 <= steps <= prm.max_steps and state < 1 << prm.n
        if not any(c == Command.LOAD | REPLY for c, _, _ in expect):
            assert [emu.pattern, emu.weight, emu.lut, emu.threshold] == before, data.hex()
    record_property("fuzz", f"link byte sequences through the emulator: {count} sequences, "
                            f"{sent} bytes, {frames} frames ({errors} ERROR replies, {queries} "
                            f"query results), 0 tracebacks, 0 wrong replies")


@pytest.mark.parametrize("count", [pytest.param(1000, id="1000"),
                                   pytest.param(10_000, id="10000", marks=pytest.mark.slow)])
def test_host_over_a_damaging_line_never_returns_a_wrong_result(count, record_property):
    """The host driver through a line that flips, drops and inserts bytes and replays stale
    replies: every operation either returns the right answer (each query result equals the
    integer model of the loaded network) or raises one LinkError within its deadline; a load
    that returns has written exactly the network; no other exception, no hang. After the
    burst, ``khop run``'s host path recalls 20 noisy queries equal to the model."""
    net, prm, inet = _network()
    emu = EmulatedDevice(prm)
    Device(transport=emu).load(inet)
    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    ok = failed = results = loads = 0
    for _ in range(count):
        line = NoisyLine(emu, rng, rate=rng.choice((0.0, 0.002, 0.01, 0.03, 0.1)))
        dev = Device(transport=line, timeout=2.0)
        op = rng.choice(("query", "query", "query", "status", "load-word", "load"))
        try:
            with no_hang():
                if op == "query":
                    q, _ = noisy_queries(net.patterns, 0.2, 1, nrng)
                    bits = to_bits(q)
                    state, steps, conv = dev.recall_one(pack_bits(bits)[0])
                    ref = inet.retrieve(bits)
                    assert (state, steps, conv) == (pack_bits(ref.states)[0], int(ref.steps[0]),
                                                    bool(ref.converged[0])), "wrong result"
                    results += 1
                elif op == "status":
                    dev.status()
                elif op == "load-word":
                    t, a, d = rng.choice(load_words(prm, inet))
                    dev.request(Command.LOAD, dev.link_format().load_payload(t, a, d))
                else:
                    dev.load(inet)
                    loads += 1
            ok += 1
        except LinkError:
            failed += 1
        # Whatever happened on the line, the memories hold the network (rewrites are equal).
        got = emu.network()
        assert np.array_equal(got.codes, inet.codes) and np.array_equal(got.r_fx, inet.r_fx)
        assert np.array_equal(got.patterns, inet.patterns) and np.array_equal(got.lut, inet.lut)
    with Device(transport=emu) as device:
        report = run_network(device, net, queries=20, noise=0.2, seed=1)
    assert report.mismatches == 0 and report.queries == 20
    record_property("fuzz", f"host driver over a damaging line (emulator): {count} operations, "
                            f"{ok} answered ({results} query results, {loads} full loads), "
                            f"{failed} LinkError within the deadline, 0 wrong results, 0 "
                            f"hangs; then 20 noisy queries = model")
