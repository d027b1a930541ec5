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
    FrameDecoder,
    LinkFormat,
    Status,
    crc16,
    encode_frame,
)
from khop.hw.layout import load_words
from khop.hw.params import AccelParams
from khop.model.fixed import FixedConfig, integer_network, pack_bits, to_bits
from khop.model.kernel import random_patterns
from khop.model.metrics import noisy_queries


def params_for(inet, lanes):
    """The accelerator configuration of integer network ``inet`` (its own arithmetic)."""
    return AccelParams(inet.n, inet.p, inet.config, lanes=lanes)

#: Cycles between two bytes fed to the bridge: longer than any non-QUERY reply.
GAP = 48


def _network(seed, n=10, p=4):
    rng = np.random.default_rng(seed)
    patterns = random_patterns(rng, n, p)
    alpha = rng.normal(0, 2.5, size=(p, n))
    return integer_network(patterns, alpha, 0.08, FixedConfig(max_steps=6)), patterns


def _simulate(params, requests, clock_hz=1234):
    """Feed each request's bytes into the link (one byte every GAP cycles; after a request,
    wait for its reply's closing END when it is a frame); return all transmitted bytes."""
    dut = AcceleratorLink(params, clock_hz)
    out = bytearray()

    async def feeder(ctx):
        for chunk, wait_reply in requests:
            target = out.count(END) + 2
            for b in chunk:
                ctx.set(dut.i_rx.payload, b)
                ctx.set(dut.i_rx.valid, 1)
                await ctx.tick()
                ctx.set(dut.i_rx.valid, 0)
                await ctx.tick().repeat(GAP)
            if wait_reply:
                for _ in range(20_000):
                    if out.count(END) >= target:
                        break
                    await ctx.tick()
                else:
                    raise AssertionError(f"no reply to {chunk.hex()}; sent so far {out.hex()}")
        await ctx.tick().repeat(2 * GAP)

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
    good_query = encode_frame(Command.QUERY, bytes(fmt.query_bytes))
    bad_crc = bytearray(good_query)
    bad_crc[2] ^= 0x01
    requests = [
        (encode_frame(Command.STATUS, b"\x07"), True),
        (encode_frame(Command.PARAMS), True),
        (bytes(bad_crc), True),                                        # CRC
        (encode_frame(0x42, b"\x01"), True),                           # unknown command
        (encode_frame(Command.PARAMS, b"\x00"), True),                 # wrong length
        (encode_frame(Command.LOAD, bytes(fmt.load_bytes - 1)), True),  # truncated payload
        (bytes((END, Command.STATUS, 0x12, END)), True),               # truncated frame
        (bytes((END, 0x01, ESC, 0x33, 0x44, 0x55, END)), True),        # bad escape
        (encode_frame(Command.QUERY, bytes(fmt.max_payload + 1)), True),  # overflow
        (bytes((END, END, END)), False),                               # empty frames
        (encode_frame(Command.STATUS, bytes((END,))), True),           # escaped nonce
    ]
    hw = _simulate(params, requests)
    assert hw == _emulate(params, requests)
    replies = FrameDecoder().feed(hw)
    assert [r.cmd for r in replies] == [0x81, 0x82] + [0xFF] * 7 + [0x81]
    st = Status.from_payload(replies[-1].payload)
    assert (st.nonce, st.frames, st.errors, st.overruns, st.idle) == (END, 3, 7, 0, True)


def test_load_and_queries_equal_the_integer_model():
    inet, patterns = _network(1)
    params = params_for(inet, lanes=4)
    fmt = LinkFormat(params)
    requests = [(fmt.load_request(t, a, d), True) for t, a, d in load_words(params, inet)]
    queries, _ = noisy_queries(patterns, 0.3, 4, np.random.default_rng(2))
    bits = to_bits(queries)
    requests += [(fmt.query_request(q), True) for q in pack_bits(bits)]
    requests.append((encode_frame(Command.STATUS, b"\x01"), True))
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
    requests = [(garbage, False), (encode_frame(Command.STATUS, b"\x09"), True)]
    hw = _simulate(params, requests)
    assert hw == _emulate(params, requests)
    last = FrameDecoder().feed(hw)[-1]
    assert last.cmd == 0x81 and last.payload[0] == 9
