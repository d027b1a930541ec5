"""Kernel-distance unit (hw/kernel_distance.py) with its pattern memory, against NumPy."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from hw_helpers import Clock, collect, int_of, params_for, rejected, run_sim, tiny_network

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


async def sweep(ctx, kd, state, count, rng, stall, what):
    """Start a sweep with ``state`` and collect ``count`` kernels with random ready stalls."""
    ctx.set(kd.i_state, int_of(state))
    ctx.set(kd.i_start, 1)
    await ctx.tick()
    ctx.set(kd.i_start, 0)
    got = await collect(ctx, kd.o_kernel, count, rng, stall, what=what)
    # No kernel beyond the p of the sweep.
    for _ in range(8):
        assert not ctx.get(kd.o_kernel.valid), f"{what}: extra kernel"
        await ctx.tick()
    return got


CONFIGS = [
    # (n, p, W): W = n (one cycle per pattern); W < n not dividing n; W dividing n; W = 1.
    (20, 7, 20),
    (23, 9, 5),
    (16, 5, 4),
    (11, 4, 1),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("n", "p", "width"), CONFIGS)
def test_kernels_equal_lut_of_hamming_distance(seed, n, p, width):
    rng = np.random.default_rng(seed)
    # gamma 1/8: the table reaches 0 before d = n, so truncated entries are exercised too.
    inet = tiny_network(n, p, seed, gamma=0.125, kernel_bits=12, epochs=1)
    prm = params_for(inet, lanes=1, popcount_width=width)
    dut = KernelDistanceBench(prm, inet)
    # States near stored patterns (small distances) and uniform random ones.
    states = [inet.patterns[mu] ^ (rng.random(n) < 0.1) for mu in rng.integers(0, p, 3)]
    states += [rng.integers(0, 2, n, dtype=np.uint8) for _ in range(3)]
    states = [np.asarray(s, dtype=np.uint8) for s in states]

    async def tb(ctx):
        for i, state in enumerate(states):
            stall = (0.0, 0.3, 0.7)[i % 3]
            what = f"seed={seed} sweep {i} stall={stall}"
            got = await sweep(ctx, dut.kd, state, p, rng, stall, what)
            assert got == expected_kernels(inet, state), what

    run_sim(dut, tb)


@pytest.mark.parametrize(("n", "p", "width"), CONFIGS)
def test_latency_and_rate_without_stalls(n, p, width):
    inet = tiny_network(n, p, seed=5, epochs=1)
    prm = params_for(inet, lanes=1, popcount_width=width)
    dut = KernelDistanceBench(prm, inet)
    state = np.random.default_rng(5).integers(0, 2, n, dtype=np.uint8)
    edges = []

    async def tb(ctx):
        clock = Clock()
        ctx.set(dut.kd.i_state, int_of(state))
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
    assert latency == dut.kd.latency == prm.chunks + 4
    assert np.diff(edges).tolist() == [prm.chunks] * (p - 1)
    assert dut.kd.cycles_per_kernel == prm.chunks


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize(("n", "p", "width"), CONFIGS[1:3])
def test_lut_writes_at_run_time_change_the_kernels(seed, n, p, width):
    rng = np.random.default_rng(seed)
    inet = tiny_network(n, p, seed, epochs=1)
    prm = params_for(inet, lanes=1, popcount_width=width)
    dut = KernelDistanceBench(prm, inet)
    new_lut = rng.integers(0, 2 ** prm.kernel_bits, size=prm.lut_depth).tolist()
    states = [rng.integers(0, 2, n, dtype=np.uint8) for _ in range(3)]

    async def tb(ctx):
        kd = dut.kd
        what = f"seed={seed}"
        got = await sweep(ctx, kd, states[0], p, rng, 0.3, what)
        assert got == expected_kernels(inet, states[0]), what
        for d in rng.permutation(prm.lut_depth).tolist():
            ctx.set(kd.lut_write.addr, d)
            ctx.set(kd.lut_write.data, new_lut[d])
            ctx.set(kd.lut_write.en, 1)
            await ctx.tick()
            ctx.set(kd.lut_write.en, 0)
            if rng.random() < 0.3:
                await ctx.tick()
        for i, state in enumerate(states):
            got = await sweep(ctx, kd, state, p, rng, 0.3, f"{what} sweep {i}")
            assert got == expected_kernels(inet, state, new_lut), f"{what} sweep {i}"

    run_sim(dut, tb)


def test_lut_of_the_wrong_length_or_width_is_rejected():
    inet = tiny_network(10, 3, seed=1, epochs=1)
    prm = params_for(inet, lanes=1)
    rejected(ValueError, "needs 11 entries.*not 10", lambda: KernelDistance(prm, inet.lut[:10]))
    too_wide = inet.lut.copy()
    too_wide[0] = 2 ** prm.kernel_bits
    rejected(ValueError, "kernel_bits=16", lambda: KernelDistance(prm, too_wide))
