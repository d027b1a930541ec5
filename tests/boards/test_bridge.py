"""The frame bridge with a small accelerator in Amaranth's simulator, byte for byte against the
device emulator (the protocol's executable specification)."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from khop.boards.bridge import crc16_update
from khop.boards.core import AcceleratorLink
from khop.boards.emulator import EmulatedDevice
from khop.boards.protocol import (
    END,
    ESC,
    Command,
    ErrorCode,
    FrameDecoder,
    LinkFormat,
    Status,
    crc16,
    encode_frame,
)
from khop.hw.layout import LoadTarget, load_words
from khop.hw.params import AccelParams
from khop.model.fixed import FixedConfig, integer_network, pack_bits, to_bits
from khop.model.kernel import random_patterns
from khop.model.metrics import noisy_queries


def params_for(inet, lanes):
    """The accelerator configuration of integer network ``inet`` (its own arithmetic)."""
    return AccelParams(inet.n, inet.p, inet.config, lanes=lanes)

#: Cycles between two bytes fed to the bridge (the receive buffer takes them at any rate).
GAP = 2


def _network(seed, n=10, p=4):
    rng = np.random.default_rng(seed)
    patterns = random_patterns(rng, n, p)
    alpha = rng.normal(0, 2.5, size=(p, n))
    return integer_network(patterns, alpha, 0.08, FixedConfig(max_steps=6)), patterns


def _simulate(params, requests, clock_hz=1234, gap=GAP):
    """Feed each request's bytes into the link (one byte every ``gap`` cycles, or every cycle
    when 0); after a request marked so, wait until every reply the emulator gives to the bytes
    sent so far has been transmitted (the host's flow control: at most the receive buffer
    unanswered); return all transmitted bytes."""
    dut = AcceleratorLink(params, clock_hz)
    out = bytearray()
    emu = EmulatedDevice(params, clock_hz)

    async def feeder(ctx):
        expected = 0
        for chunk, wait_reply in requests:
            emu.write(chunk)
            expected += len(emu.read(1 << 30))
            for b in chunk:
                ctx.set(dut.i_rx.payload, b)
                ctx.set(dut.i_rx.valid, 1)
                await ctx.tick()
                if gap:
                    ctx.set(dut.i_rx.valid, 0)
                    await ctx.tick().repeat(gap)
            ctx.set(dut.i_rx.valid, 0)
            if wait_reply:
                for _ in range(50_000):
                    if len(out) >= expected:
                        break
                    await ctx.tick()
                else:
                    raise AssertionError(f"no reply to {chunk.hex()}; sent so far {out.hex()}")
        # Let the bridge work through everything still in its buffer.
        idle = 0
        while idle < 400:
            idle = 0 if ctx.get(dut.o_tx.valid) or ctx.get(dut.o_busy) else idle + 1
            await ctx.tick()

    async def monitor(ctx):
        ctx.set(dut.o_tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(dut.o_tx.valid, dut.o_tx.payload):
            if valid:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_process(monitor)
    sim.add_testbench(feeder)
    sim.run()
    return bytes(out)


def _emulate(params, requests, clock_hz=1234):
    emu = EmulatedDevice(params, clock_hz)
    for chunk, _ in requests:
        emu.write(chunk)
    return emu.read(1 << 30)


def test_crc_update_matches_the_python_crc():
    from amaranth import Module, Signal
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_update(crc, byte))
    cases = [(0xFFFF, 0x31), (0x1234, 0xC0), (0x0000, 0xFF), (0xBEEF, 0x00)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc16(bytes((b,)), c)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_status_params_and_errors_equal_the_emulator():
    inet, _ = _network(0)
    params = params_for(inet, lanes=4)
    fmt = LinkFormat(params)
    good_query = encode_frame(Command.QUERY, 3, bytes(fmt.query_bytes))
    bad_crc = bytearray(good_query)
    bad_crc[3] ^= 0x01
    depth = fmt.load_depths[LoadTarget.PATTERN]
    requests = [
        (encode_frame(Command.STATUS, 1), True),
        (encode_frame(Command.PARAMS, 2), True),
        (bytes(bad_crc), True),                                           # CRC
        (encode_frame(0x42, 4, b"\x01"), True),                           # unknown command
        (encode_frame(Command.PARAMS, 5, b"\x00"), True),                 # wrong length
        (encode_frame(Command.LOAD, 6, bytes(fmt.load_bytes - 1)), True),  # truncated payload
        (bytes((END, Command.STATUS, 0x12, 0x13, END)), True),            # truncated frame
        (bytes((END, 0x01, 0x08, ESC, 0x33, 0x44, 0x55, END)), True),     # bad escape
        (encode_frame(Command.QUERY, 9, bytes(fmt.max_payload + 1)), True),  # overflow
        (fmt.load_request(10, LoadTarget.PATTERN, depth, 1), True),       # address
        (bytes((END, END, END)), False),                                  # empty frames
        (encode_frame(Command.STATUS, END), True),                        # escaped id
    ]
    hw = _simulate(params, requests)
    assert hw == _emulate(params, requests)
    replies = FrameDecoder().feed(hw)
    assert [r.cmd for r in replies] == [0x81, 0x82] + [0xFF] * 8 + [0x81]
    assert [r.id for r in replies] == [1, 2, 3, 4, 5, 6, 0x12, 0x08, 9, 10, END]
    assert [ErrorCode(r.payload[0]) for r in replies[2:-1]] == [
        ErrorCode.CRC, ErrorCode.COMMAND, ErrorCode.LENGTH, ErrorCode.LENGTH,
        ErrorCode.TRUNCATED, ErrorCode.ESCAPE, ErrorCode.OVERFLOW, ErrorCode.ADDRESS]
    st = Status.from_payload(replies[-1].payload)
    assert (st.frames, st.errors, st.overruns, st.idle) == (3, 8, 0, True)


def test_load_and_queries_equal_the_integer_model():
    inet, patterns = _network(1)
    params = params_for(inet, lanes=4)
    fmt = LinkFormat(params)
    requests = [(fmt.load_request(i, t, a, d), True)
                for i, (t, a, d) in enumerate(load_words(params, inet))]
    queries, _ = noisy_queries(patterns, 0.3, 4, np.random.default_rng(2))
    bits = to_bits(queries)
    requests += [(fmt.query_request(i, q), True) for i, q in enumerate(pack_bits(bits))]
    requests.append((encode_frame(Command.STATUS, 1), True))
    hw = _simulate(params, requests)
    assert hw == _emulate(params, requests)
    replies = FrameDecoder().feed(hw)
    results = [fmt.result_from_payload(r.payload) for r in replies if r.cmd == 0x84]
    ref = inet.retrieve(bits)
    assert [r[0] for r in results] == pack_bits(ref.states)
    assert [r[1] for r in results] == list(np.asarray(ref.steps))


@pytest.mark.parametrize("seed", range(2))
def test_garbage_then_a_good_frame(seed):
    rng = random.Random(seed)
    inet, _ = _network(0)
    params = params_for(inet, lanes=4)
    garbage = bytes(rng.choice([END, ESC, rng.randrange(256)]) for _ in range(60))
    requests = [(garbage, False), (encode_frame(Command.STATUS, 9), True)]
    hw = _simulate(params, requests)
    assert hw == _emulate(params, requests)
    last = FrameDecoder().feed(hw)[-1]
    assert last.cmd == 0x81 and last.id == 9


def test_a_load_sent_while_a_query_runs_is_executed_after_it():
    """Requests sent back to back, without waiting for replies (the issue: a LOAD during a
    query was dropped without a reply): the bridge buffers them and executes them in order, a
    reply each, byte for byte as the emulator."""
    inet, patterns = _network(1)
    params = params_for(inet, lanes=4)
    fmt = LinkFormat(params)
    load = [(fmt.load_request(i, t, a, d), True)
            for i, (t, a, d) in enumerate(load_words(params, inet))]
    q = pack_bits(to_bits(patterns[:2]))
    # A query, then (while it runs) a LOAD that changes a pattern word, then the query again.
    word = fmt.load_request(200, LoadTarget.PATTERN, 0, 0)
    burst = fmt.query_request(100, q[0]) + word + fmt.query_request(101, q[0]) \
        + encode_frame(Command.STATUS, 102)
    requests = load + [(burst, False)]
    hw = _simulate(params, requests, gap=0)
    assert hw == _emulate(params, requests)
    replies = FrameDecoder().feed(hw)
    assert [(r.cmd, r.id) for r in replies[-4:]] == [(0x84, 100), (0x83, 200), (0x84, 101),
                                                     (0x81, 102)]
    st = Status.from_payload(replies[-1].payload)
    assert st.loads == len(load) + 1 and st.queries == 2 and st.overruns == 0


def test_fuzz_sequences_equal_the_emulator():
    """40 random link sequences (:func:`khop.boards.fuzz.link_sequence`: valid, invalid and
    damaged frames, out-of-range LOADs, random writes, garbage) after a full load, fed back to
    back: the bridge's reply bytes equal the emulator's (the Verilator board-core test runs
    200 through the UART)."""
    from khop.boards.fuzz import link_sequence, load_bursts

    inet, _ = _network(4)
    params = params_for(inet, lanes=3)
    fmt = LinkFormat(params)
    words = load_words(params, inet)
    rng = random.Random(5)
    requests = [(burst, True) for burst in load_bursts(fmt, words)]
    requests += [(link_sequence(rng, fmt, words) + encode_frame(Command.STATUS, k), True)
                 for k in range(40)]
    hw = _simulate(params, requests, gap=0)
    assert hw == _emulate(params, requests)
    assert len(FrameDecoder().feed(hw)) >= len(words) + 40
