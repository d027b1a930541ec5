"""Kernel-distance unit (hw/kernel_distance.py) with its pattern memory, against NumPy.

With ``batch`` slots the unit takes one state per slot (``i_state``) and emits, for each pattern
in order, one beat of ``batch`` kernels: ``K`` of each slot's state against that pattern.
"""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from hw_helpers import (
    Clock,
    collect,
    int_of,
    lanes_of,
    pack_lanes,
    params_for,
    rejected,
    run_sim,
    tiny_network,
)

from khop.hw.kernel_distance import KernelDistance
from khop.hw.pattern_memory import PatternMemory


class KernelDistanceBench(wiring.Component):
    """The unit under test wired to a pattern memory holding the network's patterns."""

    def __init__(self, params, inet):
        self.mem = PatternMemory(params, inet.patterns)
        self.kd = KernelDistance(params, inet.lut)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        m.submodules.kd = self.kd
        wiring.connect(m, self.kd.patterns, self.mem.read)
        return m


def expected_kernels(inet, state, lut=None):
    """``LUT[popcount(state XOR xi_mu)]`` for every mu, in NumPy."""
    lut = inet.lut if lut is None else np.asarray(lut)
    d = np.count_nonzero(inet.patterns != state[None, :], axis=1)
    return lut[d].tolist()


def expected_beats(inet, states, lut=None):
    """Per pattern, the list of each slot's kernel (the beats of a sweep)."""
    per_slot = [expected_kernels(inet, state, lut) for state in states]
    return [list(beat) for beat in zip(*per_slot, strict=True)]


def set_states(ctx, kd, prm, states):
    ctx.set(kd.i_state.as_value(), pack_lanes([int_of(s) for s in states], prm.n))


async def sweep(ctx, kd, prm, states, rng, stall, what):
    """Start a sweep with one state per slot and collect the ``p`` beats with random ready
    stalls; returns each beat as the list of its ``batch`` kernels."""
    set_states(ctx, kd, prm, states)
    ctx.set(kd.i_start, 1)
    await ctx.tick()
    ctx.set(kd.i_start, 0)
    got = await collect(ctx, kd.o_kernel, prm.p, rng, stall, what=what)
    # No kernel beyond the p of the sweep.
    for _ in range(8):
        assert not ctx.get(kd.o_kernel.valid), f"{what}: extra kernel"
        await ctx.tick()
    return [lanes_of(raw, prm.kernel_bits, prm.batch) for raw in got]


def some_states(rng, inet, count):
    """States near stored patterns (small distances) and uniform random ones."""
    n, p = inet.n, inet.p
    near = [inet.patterns[mu] ^ (rng.random(n) < 0.1) for mu in rng.integers(0, p, count // 2)]
    far = [rng.integers(0, 2, n, dtype=np.uint8) for _ in range(count - count // 2)]
    return [np.asarray(s, dtype=np.uint8) for s in near + far]


CONFIGS = [
    # (n, p, W): W = n (one cycle per pattern); W < n not dividing n; W dividing n; W = 1.
    (20, 7, 20),
    (23, 9, 5),
    (16, 5, 4),
    (11, 4, 1),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("n", "p", "width"), CONFIGS)
def test_kernels_equal_lut_of_hamming_distance(seed, n, p, width, batch):
    rng = np.random.default_rng(seed)
    # gamma 1/8: the table reaches 0 before d = n, so truncated entries are exercised too.
    inet = tiny_network(n, p, seed, gamma=0.125, kernel_bits=12, epochs=1)
    prm = params_for(inet, lanes=1, popcount_width=width, batch=batch)
    dut = KernelDistanceBench(prm, inet)
    # Six sweeps; each slot gets a different state (shuffled so that near and far states
    # meet in one sweep).
    states = some_states(rng, inet, 6 * batch)
    order = rng.permutation(len(states))
    sweeps = [[states[i] for i in order[s * batch:(s + 1) * batch]] for s in range(6)]

    async def tb(ctx):
        for i, slot_states in enumerate(sweeps):
            stall = (0.0, 0.3, 0.7)[i % 3]
            what = f"seed={seed} batch={batch} sweep {i} stall={stall}"
            got = await sweep(ctx, dut.kd, prm, slot_states, rng, stall, what)
            assert got == expected_beats(inet, slot_states), what

    run_sim(dut, tb)


def test_each_slot_gets_its_own_distance():
    """Slot j's state at distance j from pattern 0 (and the rest far): a unit that gives every
    slot slot 0's distance, or mixes the slots' states, fails."""
    n, p, batch = 12, 3, 4
    inet = tiny_network(n, p, 9, gamma=0.05, kernel_bits=12, epochs=1)
    prm = params_for(inet, lanes=1, popcount_width=5, batch=batch)
    assert len(set(inet.lut[:batch].tolist())) == batch      # distinct kernels for d = 0..3
    dut = KernelDistanceBench(prm, inet)
    states = []
    for j in range(batch):
        s = inet.patterns[0].copy()
        s[:j] ^= 1
        states.append(s)
    seen = []

    async def tb(ctx):
        seen.append(await sweep(ctx, dut.kd, prm, states, None, 0.0, "slots"))

    run_sim(dut, tb)
    assert seen[0][0] == inet.lut[:batch].tolist()
    assert seen[0] == expected_beats(inet, states)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize(("n", "p", "width"), CONFIGS)
def test_latency_and_rate_without_stalls(n, p, width, batch):
    inet = tiny_network(n, p, seed=5, epochs=1)
    prm = params_for(inet, lanes=1, popcount_width=width, batch=batch)
    dut = KernelDistanceBench(prm, inet)
    states = np.random.default_rng(5).integers(0, 2, (batch, n), dtype=np.uint8)
    edges = []

    async def tb(ctx):
        clock = Clock()
        set_states(ctx, dut.kd, prm, states)
        ctx.set(dut.kd.o_kernel.ready, 1)
        ctx.set(dut.kd.i_start, 1)
        await clock.tick(ctx)          # edge 1 ends the i_start cycle
        ctx.set(dut.kd.i_start, 0)
        while len(edges) < p:
            (valid,) = await clock.tick(ctx, dut.kd.o_kernel.valid)
            if valid:
                edges.append(clock.edge)

    run_sim(dut, tb)
    # The kernel valid in the cycle after edge e transfers at edge e + 1; the i_start cycle is
    # the one before edge 1.
    latency = edges[0] - 1
    assert latency == dut.kd.latency == prm.chunks + 5
    assert np.diff(edges).tolist() == [prm.chunks] * (p - 1)
    assert dut.kd.cycles_per_kernel == prm.chunks


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize(("n", "p", "width"), CONFIGS[1:3])
def test_lut_writes_at_run_time_change_the_kernels(seed, n, p, width):
    rng = np.random.default_rng(seed)
    inet = tiny_network(n, p, seed, epochs=1)
    batch = 2              # every slot has its own read port of the table: all see the writes
    prm = params_for(inet, lanes=1, popcount_width=width, batch=batch)
    dut = KernelDistanceBench(prm, inet)
    new_lut = rng.integers(0, 2 ** prm.kernel_bits, size=prm.lut_depth).tolist()
    states = [[rng.integers(0, 2, n, dtype=np.uint8) for _ in range(batch)] for _ in range(3)]

    async def tb(ctx):
        kd = dut.kd
        what = f"seed={seed}"
        got = await sweep(ctx, kd, prm, states[0], rng, 0.3, what)
        assert got == expected_beats(inet, states[0]), what
        for d in rng.permutation(prm.lut_depth).tolist():
            ctx.set(kd.lut_write.addr, d)
            ctx.set(kd.lut_write.data, new_lut[d])
            ctx.set(kd.lut_write.en, 1)
            await ctx.tick()
            ctx.set(kd.lut_write.en, 0)
            if rng.random() < 0.3:
                await ctx.tick()
        for i, slot_states in enumerate(states):
            got = await sweep(ctx, kd, prm, slot_states, rng, 0.3, f"{what} sweep {i}")
            assert got == expected_beats(inet, slot_states, new_lut), f"{what} sweep {i}"

    run_sim(dut, tb)


def test_lut_of_the_wrong_length_or_width_is_rejected():
    inet = tiny_network(10, 3, seed=1, epochs=1)
    prm = params_for(inet, lanes=1)
    rejected(ValueError, "needs 11 entries.*not 10", lambda: KernelDistance(prm, inet.lut[:10]))
    too_wide = inet.lut.copy()
    too_wide[0] = 2 ** prm.kernel_bits
    rejected(ValueError, "kernel_bits=16", lambda: KernelDistance(prm, too_wide))
