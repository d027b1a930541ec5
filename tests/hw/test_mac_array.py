"""MAC array (hw/mac_array.py) with its weight memory: ``T = K @ codes`` and ``S_K = sum K``."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from hw_helpers import Clock, accel_params, collect, drive, lanes_of, run_sim

from khop.hw.mac_array import MacArray
from khop.hw.weight_memory import WeightMemory


class MacBench(wiring.Component):
    """The array under test wired to a weight memory holding ``codes``."""

    def __init__(self, params, codes):
        self.mem = WeightMemory(params, codes)
        self.mac = MacArray(params)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        m.submodules.mac = self.mac
        wiring.connect(m, self.mac.weights, self.mem.read)
        return m


async def mac_sweep(ctx, mac, prm, kernels, rng, idle, stall, what):
    """One sweep: pulse ``i_start``, feed ``kernels`` (random gaps), drain with random stalls.

    Returns ``(T, S_K)``: the drained sums of the n neurons and ``o_sum_k`` at the drain beats
    (checked to be the same at every beat).
    """
    ctx.set(mac.i_start, 1)
    await ctx.tick()
    ctx.set(mac.i_start, 0)
    # The drain cannot begin before the last kernel (test_one_kernel_per_blocks_cycles), so the
    # feeder and the sink run one after the other.
    await drive(ctx, mac.i_kernel, kernels, rng, idle)
    beats = await collect(ctx, mac.o_sums, prm.blocks, rng, stall, what=what,
                          extra=(mac.o_sum_k,))
    sum_ks = {s for _, s in beats}
    assert len(sum_ks) == 1, f"{what}: o_sum_k changed during the drain: {sum_ks}"
    sums = [s for beat, _ in beats for s in lanes_of(beat, prm.acc_bits, prm.lanes)]
    return sums, sum_ks.pop()


def expected_sums(prm, kernels, codes):
    t = np.asarray(kernels, dtype=np.int64) @ codes.astype(np.int64)
    return t.tolist() + [0] * (prm.blocks * prm.lanes - prm.n)


CONFIGS = [
    # (n, p, k, lanes): lanes not dividing n; lanes == n; lanes == 1; 4-bit codes.
    (20, 7, 2, 6),
    (13, 9, 3, 13),
    (10, 5, 1, 1),
    (23, 6, 4, 5),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS)
def test_sums_equal_kernels_times_codes(seed, n, p, k, lanes):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, kernel_bits=12)
    codes = rng.integers(0, 2 ** k, size=(p, n), dtype=np.uint8)
    dut = MacBench(prm, codes)
    kmax = 2 ** prm.kernel_frac_bits           # LUT[0], the largest kernel
    sweeps = [rng.integers(0, kmax + 1, size=p).tolist() for _ in range(3)]
    sweeps.append([kmax] * p)                  # the worst case of every width
    seen = []

    async def tb(ctx):
        for i, kernels in enumerate(sweeps):
            idle, stall = [(0.0, 0.0), (0.4, 0.3), (0.8, 0.7), (0.2, 0.5)][i]
            what = f"seed={seed} sweep {i} idle={idle} stall={stall}"
            seen.append((what, *await mac_sweep(ctx, dut.mac, prm, kernels, rng, idle, stall,
                                                what)))

    run_sim(dut, tb)
    for (what, sums, sum_k), kernels in zip(seen, sweeps, strict=True):
        assert sums == expected_sums(prm, kernels, codes), what
        assert sum_k == sum(kernels), what


@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS)
def test_worst_case_fits_the_accumulators(n, p, k, lanes):
    # Every code 2^k - 1 and every kernel 2^F: T = p (2^k - 1) 2^F, the widest value.
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, kernel_bits=12)
    codes = np.full((p, n), 2 ** k - 1, dtype=np.uint8)
    dut = MacBench(prm, codes)
    kernels = [2 ** prm.kernel_frac_bits] * p
    seen = []

    async def tb(ctx):
        seen.append(await mac_sweep(ctx, dut.mac, prm, kernels, None, 0.0, 0.0, "worst"))

    run_sim(dut, tb)
    sums, sum_k = seen[0]
    assert sums == expected_sums(prm, kernels, codes)
    assert max(sums) == p * (2 ** k - 1) * 2 ** prm.kernel_frac_bits
    assert sum_k == p * 2 ** prm.kernel_frac_bits


@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS)
def test_one_kernel_per_blocks_cycles(n, p, k, lanes):
    """With kernels always offered and no stalls, a kernel is accepted every ``blocks`` cycles
    and the drain starts 2 cycles after the issue of the last weight word."""
    rng = np.random.default_rng(7)
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, kernel_bits=12)
    dut = MacBench(prm, rng.integers(0, 2 ** k, size=(p, n), dtype=np.uint8))
    accepted, first_beat = [], []

    async def tb(ctx):
        clock = Clock()
        ctx.set(dut.mac.i_start, 1)
        await clock.tick(ctx)
        ctx.set(dut.mac.i_start, 0)
        await drive(ctx, dut.mac.i_kernel, [1] * p, transfers=accepted, clock=clock)
        await collect(ctx, dut.mac.o_sums, prm.blocks, first_valid=first_beat, clock=clock)

    run_sim(dut, tb)
    assert accepted[0] == 2                     # ACCUMULATE from the cycle after i_start
    assert np.diff(accepted).tolist() == [prm.blocks] * (p - 1)
    # Last kernel accepted at edge a: its words are issued in the blocks cycles after it, the
    # last one in the cycle ending at edge a + blocks; the word and its products are registered
    # and added into the ring in the next three cycles, and the first sum beat is valid 4 cycles
    # later, in the cycle ending at edge a + blocks + 4, then one beat per cycle.
    first = accepted[-1] + prm.blocks + 4
    assert first_beat == list(range(first, first + prm.blocks))
