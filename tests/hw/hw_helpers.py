"""Shared pieces of the hardware tests: tiny networks, reference memory words, stream drivers and
sinks with random idle cycles and backpressure, and :func:`run_sim`.

Named ``hw_helpers`` (not ``helpers``) so that it cannot shadow a helper module of another test
directory: the tests are collected in pytest's default ``prepend`` import mode.

Timing convention of the stream coroutines: every coroutine counts the clock edges it has waited
for, starting at 1 for the first edge of the simulation, so edge numbers recorded by concurrent
testbenches of one simulation are comparable.
"""

import gc
import warnings

import numpy as np
import pytest
from amaranth import Value
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from khop.hw.params import AccelParams
from khop.model.fixed import FixedConfig, integer_network, pack_bits, unpack_bits
from khop.model.kernel import random_patterns
from khop.model.klr import TrainConfig, train_klr

__all__ = ["tiny_network", "params_for", "accel_params", "noisy_queries", "random_states",
           "ref_pattern_word", "ref_weight_word", "Clock", "drive", "collect", "run_sim",
           "bits_of", "int_of", "lanes_of", "pack_lanes", "rejected"]


# Networks -------------------------------------------------------------------------------------

def tiny_network(n, p, seed, *, weight_bits=2, kernel_bits=16, threshold_frac_bits=16,
                 max_steps=30, gamma=None, epochs=5):
    """A small integer network: random patterns, a few epochs of KLR, quantized.

    Training quality does not matter (the integer model is the oracle); ``gamma`` defaults to
    ``1 / n`` so that the lookup table is non-zero over the whole distance range.
    """
    rng = np.random.default_rng(seed)
    patterns = random_patterns(rng, n, p)
    gamma = 1.0 / n if gamma is None else gamma
    alpha = train_klr(patterns, TrainConfig(gamma=gamma, epochs=epochs)).alpha
    config = FixedConfig(weight_bits=weight_bits, kernel_bits=kernel_bits,
                         threshold_frac_bits=threshold_frac_bits, max_steps=max_steps)
    return integer_network(patterns, alpha, gamma, config)


def params_for(inet, **kw):
    """:class:`AccelParams` matching integer network ``inet`` (its own :class:`FixedConfig`);
    ``kw`` sets lanes, popcount_width, batch, threshold_digit_bits."""
    return AccelParams(inet.n, inet.p, inet.config, **kw)


def accel_params(**kw):
    """:class:`AccelParams` from flat keywords, arithmetic ones included (``weight_bits=...``):
    :meth:`AccelParams.from_dict`, so unknown names are an error."""
    return AccelParams.from_dict(kw)


def noisy_queries(rng, inet, count, flip=0.15):
    """(count, n) 0/1 queries: stored patterns with a fraction ``flip`` of the bits inverted."""
    rows = rng.integers(0, inet.p, size=count)
    noise = (rng.random((count, inet.n)) < flip).astype(np.uint8)
    return inet.patterns[rows] ^ noise


def random_states(rng, count, n):
    return rng.integers(0, 2, size=(count, n), dtype=np.uint8)


def bits_of(value, n):
    """0/1 ``uint8`` vector of the low ``n`` bits of an integer (bit i = neuron i)."""
    return unpack_bits([value], n)[0]


def int_of(bits):
    """Integer of a 0/1 vector (bit i = element i)."""
    return pack_bits(bits)[0]


def lanes_of(value, width, count):
    """The ``count`` unsigned fields of ``width`` bits packed in ``value``, LSB first."""
    mask = (1 << width) - 1
    return [(value >> (i * width)) & mask for i in range(count)]


def pack_lanes(values, width):
    """Inverse of :func:`lanes_of`: ``values`` (each ``0 <= v < 2^width``) packed LSB first,
    as an ``ArrayLayout(width, len(values))`` payload (e.g. one kernel or state per slot)."""
    word = 0
    for i, v in enumerate(values):
        v = int(v)
        assert 0 <= v < 2 ** width, f"field {i}: {v} does not fit {width} bits"
        word |= v << (i * width)
    return word


# Reference memory words, written from the layout in docs/architecture.md / hw.layout -------

def ref_pattern_word(bits, mu, c, width):
    """Pattern word ``mu * chunks + c``: bits ``c*W .. c*W+W-1`` of pattern mu, 0 past n."""
    n = bits.shape[1]
    return sum(int(bits[mu, c * width + j]) << j for j in range(width) if c * width + j < n)


def ref_weight_word(codes, mu, b, lanes, k):
    """Weight word ``mu * blocks + b``: codes of neurons ``b*L ..``, lane l at bits ``l*k``."""
    n = codes.shape[1]
    return sum(int(codes[mu, b * lanes + j]) << (j * k) for j in range(lanes) if b * lanes + j < n)


# Streams --------------------------------------------------------------------------------------

class Clock:
    """Edge counter of one testbench coroutine: ``await clock.tick(ctx, *sampled)``."""

    def __init__(self):
        self.edge = 0

    async def tick(self, ctx, *sampled):
        _, _, *values = await ctx.tick().sample(*sampled)
        self.edge += 1
        return values


async def drive(ctx, stream, payloads, rng=None, idle=0.0, transfers=None, clock=None):
    """Source: offer ``payloads`` in order on ``stream`` with random idle cycles.

    Before each payload, ``valid`` stays low for a geometric number of cycles (probability
    ``idle`` per cycle); once raised, ``valid`` and the payload hold until the transfer (the
    producer never waits for ``ready``). The edge number of every transfer is appended to
    ``transfers``.
    """
    clock = Clock() if clock is None else clock
    raw = Value.cast(stream.payload)
    for payload in payloads:
        ctx.set(stream.valid, 0)
        while idle and rng.random() < idle:
            await clock.tick(ctx)
        ctx.set(stream.valid, 1)
        ctx.set(raw, int(payload))
        while True:
            (ready,) = await clock.tick(ctx, stream.ready)
            if ready:
                break
        if transfers is not None:
            transfers.append(clock.edge)
    ctx.set(stream.valid, 0)
    return clock


async def collect(ctx, stream, count, rng=None, stall=0.0, first_valid=None, clock=None,
                  what="stream", extra=(), taken=None):
    """Sink: accept ``count`` payloads (raw integers) from ``stream``, ``ready`` low with
    probability ``stall`` each cycle.

    Checks the source side of the stream rules on every edge: once ``valid`` is high it stays
    high with the same payload until the transfer. The edge at which each payload was first
    sampled valid is appended to ``first_valid``, the edge of its transfer to ``taken``. With
    ``extra`` signals, each item returned is ``(payload, *extra values sampled at the transfer
    edge)``.
    """
    clock = Clock() if clock is None else clock
    raw = Value.cast(stream.payload)
    out = []
    pending = None
    while len(out) < count:
        ready = 1 if not stall or rng.random() >= stall else 0
        ctx.set(stream.ready, ready)
        valid, payload, *extras = await clock.tick(ctx, stream.valid, raw, *extra)
        if pending is not None:
            assert valid, f"{what}: valid dropped before the transfer (edge {clock.edge})"
            assert payload == pending, (f"{what}: payload changed before the transfer "
                                        f"(edge {clock.edge})")
        elif valid and first_valid is not None:
            first_valid.append(clock.edge)
        if valid and ready:
            out.append((payload, *extras) if extra else payload)
            if taken is not None:
                taken.append(clock.edge)
            pending = None
        elif valid:
            pending = payload
    ctx.set(stream.ready, 0)
    return out


def rejected(exc_type, match, build):
    """Assert that ``build()`` raises ``exc_type`` matching ``match``; returns the message.

    A component whose ``__init__`` raises was still created by ``__new__`` and warns
    ``UnusedElaboratable`` when collected; that warning is expected here and silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(exc_type, match=match) as info:
            build()
        msg = str(info.value)
        del info
        gc.collect()
    return msg


# Simulation -----------------------------------------------------------------------------------

def run_sim(dut, *testbenches, processes=(), max_cycles=50_000, background=()):
    """Simulate ``dut`` with a 1 MHz clock until every testbench returns.

    ``testbenches`` are critical ``async def tb(ctx)``; ``background`` testbenches (fake
    peripherals that loop forever) and ``processes`` (``sim.add_process``) do not keep the
    simulation alive. A watchdog fails the test after ``max_cycles`` edges.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    for proc in processes:
        sim.add_process(proc)

    async def watchdog(ctx):
        await ctx.delay(max_cycles * 1e-6)
        raise AssertionError(f"simulation still running after {max_cycles} cycles")

    sim.add_testbench(watchdog, background=True)
    sim.run()


# Memories -------------------------------------------------------------------------------------

async def check_reads(ctx, mem, expected, rng, what):
    """Read every address of ``mem`` in random order and compare with ``expected``.

    Checks the synchronous read port: ``data`` changes only at the edge after a cycle with
    ``en`` high (not combinationally), and holds while ``en`` is low whatever the address.
    """
    depth = len(expected)
    ctx.set(mem.read.en, 1)
    ctx.set(mem.read.addr, 0)
    await ctx.tick()
    current = expected[0]
    assert ctx.get(mem.read.data) == current, f"{what}: word 0"
    for addr in rng.permutation(depth).tolist():
        if rng.random() < 0.3:
            # en low: the data holds for a few cycles although the address moves.
            ctx.set(mem.read.en, 0)
            for _ in range(int(rng.integers(1, 3))):
                ctx.set(mem.read.addr, int(rng.integers(0, depth)))
                await ctx.tick()
                assert ctx.get(mem.read.data) == current, f"{what}: en low must hold the data"
        ctx.set(mem.read.en, 1)
        ctx.set(mem.read.addr, addr)
        assert ctx.get(mem.read.data) == current, f"{what}: the read must not be combinational"
        await ctx.tick()
        current = expected[addr]
        assert ctx.get(mem.read.data) == current, f"{what}: word {addr}"
    ctx.set(mem.read.en, 0)


async def random_writes(ctx, mem, expected, rng, count, width):
    """``count`` run-time writes of random words at random addresses; updates ``expected``."""
    for _ in range(count):
        addr = int(rng.integers(0, len(expected)))
        word = int(rng.integers(0, 2 ** width))
        ctx.set(mem.write.addr, addr)
        ctx.set(mem.write.data, word)
        ctx.set(mem.write.en, 1)
        await ctx.tick()
        expected[addr] = word
        if rng.random() < 0.3:
            ctx.set(mem.write.en, 0)
            ctx.set(mem.write.data, word ^ 1)
            await ctx.tick()
    ctx.set(mem.write.en, 0)


async def check_read_during_write(ctx, mem, expected, rng, width, what):
    """A write and a read of the same address in one cycle: the read returns the old word."""
    addr = int(rng.integers(0, len(expected)))
    new = expected[addr] ^ ((1 << width) - 1)
    ctx.set(mem.read.addr, addr)
    ctx.set(mem.read.en, 1)
    ctx.set(mem.write.addr, addr)
    ctx.set(mem.write.data, new)
    ctx.set(mem.write.en, 1)
    await ctx.tick()
    ctx.set(mem.write.en, 0)
    assert ctx.get(mem.read.data) == expected[addr], f"{what}: read-during-write, old word"
    await ctx.tick()
    assert ctx.get(mem.read.data) == new, f"{what}: the write happened"
    expected[addr] = new
    ctx.set(mem.read.en, 0)
