"""The UART receiver and transmitter in Amaranth's simulator, at a tiny divisor."""

import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from khop.boards.uart import UARTRx, UARTTx, check_divisor, divisor_for


def _run(dut, bench, deadline=200_000):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run_until(deadline * 1e-6)


async def _send_bits(ctx, pin, byte, divisor, stop=1):
    for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
        ctx.set(pin, bit)
        await ctx.tick().repeat(divisor)
    ctx.set(pin, 1)


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_loopback_tx_to_rx(divisor):
    rng = random.Random(divisor)
    data = [0x00, 0xFF, 0x55, 0xC0, *(rng.randrange(256) for _ in range(12))]
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.i_rx.eq(tx.o_tx)
    got = []

    async def bench(ctx):
        ctx.set(rx.o_data.ready, 1)
        for b in data:
            ctx.set(tx.i_data.payload, b)
            ctx.set(tx.i_data.valid, 1)
            await ctx.tick().until(tx.i_data.ready)
            ctx.set(tx.i_data.valid, 0)
        for _ in range(12 * divisor):
            await ctx.tick()

    async def monitor(ctx):
        async for _, _, valid, payload in ctx.tick().sample(rx.o_data.valid, rx.o_data.payload):
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_process(monitor)
    sim.add_testbench(bench)
    sim.run_until(len(data) * 12 * divisor * 1e-6 + 1e-3)
    assert got == data


def test_tx_byte_timing_is_ten_bits():
    tx = UARTTx(4)
    line = []

    async def bench(ctx):
        ctx.set(tx.i_data.payload, 0xA5)
        ctx.set(tx.i_data.valid, 1)
        await ctx.tick()
        ctx.set(tx.i_data.valid, 0)
        for _ in range(44):
            line.append(ctx.get(tx.o_tx))
            await ctx.tick()

    _run(tx, bench, 100)
    bits = line[::4]
    assert bits[:10] == [0, 1, 0, 1, 0, 0, 1, 0, 1, 1]   # start, 0xA5 LSB first, stop
    assert bits[10] == 1 and all(line[i] == line[i - i % 4] for i in range(40))


def test_rx_drops_a_byte_with_a_bad_stop_bit_and_flags_overrun():
    rx = UARTRx(4)
    seen = {"frame_error": 0, "overrun": 0}

    async def bench(ctx):
        await ctx.tick().repeat(3)
        await _send_bits(ctx, rx.i_rx, 0x3C, 4, stop=0)
        await ctx.tick().repeat(8)
        assert not ctx.get(rx.o_data.valid)
        await _send_bits(ctx, rx.i_rx, 0x81, 4)
        await ctx.tick().repeat(4)
        assert ctx.get(rx.o_data.valid) and ctx.get(rx.o_data.payload) == 0x81
        await _send_bits(ctx, rx.i_rx, 0x42, 4)       # not taken: overrun
        await ctx.tick().repeat(4)
        assert ctx.get(rx.o_data.payload) == 0x42

    async def count(ctx):
        async for _, _, fe, ov in ctx.tick().sample(rx.o_frame_error, rx.o_overrun):
            seen["frame_error"] += fe
            seen["overrun"] += ov

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_process(count)
    sim.add_testbench(bench)
    sim.run_until(300e-6)
    assert seen == {"frame_error": 1, "overrun": 1}


def test_divisor_validation_and_choice():
    # UARTRx/UARTTx validate their divisor with check_divisor before anything else.
    with pytest.raises(ValueError, match="divisor must be an integer >= 4"):
        check_divisor(3)
    with pytest.raises(TypeError, match="divisor must be an integer"):
        check_divisor(4.5)
    assert divisor_for(12_000_000, 115200) == 104
    assert divisor_for(30_000_000, 1_000_000) == 30
    with pytest.raises(ValueError, match="within 2 %"):
        divisor_for(10_000_000, 3_000_000)
