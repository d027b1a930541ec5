"""MAC array (hw/mac_array.py) with its weight memory: ``T_j = K_j @ codes`` and
``S_K[j] = sum K_j`` for every slot j of the batch, block-outer.

Over one sweep the array takes ``p`` kernel beats (``batch`` kernels each, pattern order) in
block 0 and presents ``blocks * batch`` sum beats, block-major, slot-minor: beat ``(b, j)`` holds
slot j's accumulators of neurons ``b*L .. b*L+L-1`` (zeros past n).
"""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from hw_helpers import Clock, accel_params, collect, drive, lanes_of, pack_lanes, run_sim

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
    """One sweep: pulse ``i_start``, feed ``kernels`` (``p`` rows of ``batch`` kernels, random
    gaps), then take the ``blocks * batch`` sum beats with random stalls.

    Returns ``(beats, S_K)``: ``beats[b][j]`` the ``lanes`` sums of block b, slot j, and
    ``o_sum_k`` per slot (checked to be the same at every beat of every block).
    """
    ctx.set(mac.i_start, 1)
    await ctx.tick()
    ctx.set(mac.i_start, 0)
    # The drain of block 0 cannot begin before the last kernel (test_block_timing), so the
    # feeder and the sink run one after the other.
    await drive(ctx, mac.i_kernel, [pack_lanes(row, prm.kernel_bits) for row in kernels],
                rng, idle)
    got = await collect(ctx, mac.o_sums, prm.blocks * prm.batch, rng, stall, what=what,
                        extra=(mac.o_sum_k.as_value(),))
    sum_ks = {s for _, s in got}
    assert len(sum_ks) == 1, f"{what}: o_sum_k changed during the drains: {sum_ks}"
    beats = [[lanes_of(got[b * prm.batch + j][0], prm.acc_bits, prm.lanes)
              for j in range(prm.batch)] for b in range(prm.blocks)]
    return beats, lanes_of(sum_ks.pop(), prm.sum_bits, prm.batch)


def expected_beats(prm, kernels, codes):
    """``beats[b][j]``: slot j's ``T = K_j @ codes`` for neurons of block b, zero past n."""
    t = np.asarray(kernels, dtype=np.int64).T @ codes.astype(np.int64)     # (batch, n)
    pad = prm.blocks * prm.lanes - prm.n
    t = np.concatenate([t, np.zeros((prm.batch, pad), np.int64)], axis=1)
    return [[t[j, b * prm.lanes:(b + 1) * prm.lanes].tolist() for j in range(prm.batch)]
            for b in range(prm.blocks)]


CONFIGS = [
    # (n, p, k, lanes): lanes not dividing n; lanes == n (one block, no kernel buffer);
    # lanes == 1; 4-bit codes.
    (20, 7, 2, 6),
    (13, 9, 3, 13),
    (10, 5, 1, 1),
    (23, 6, 4, 5),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS)
def test_sums_equal_kernels_times_codes(seed, n, p, k, lanes, batch):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, kernel_bits=12, batch=batch)
    codes = rng.integers(0, 2 ** k, size=(p, n), dtype=np.uint8)
    dut = MacBench(prm, codes)
    kmax = 2 ** prm.kernel_frac_bits           # LUT[0], the largest kernel
    # Every slot its own kernels (a slot reading another's buffer column or accumulators
    # gives other sums), then the worst case of every width.
    sweeps = [rng.integers(0, kmax + 1, size=(p, batch)).tolist() for _ in range(3)]
    sweeps.append([[kmax] * batch] * p)
    seen = []

    async def tb(ctx):
        for i, kernels in enumerate(sweeps):
            idle, stall = [(0.0, 0.0), (0.4, 0.3), (0.8, 0.7), (0.2, 0.5)][i]
            what = f"seed={seed} batch={batch} sweep {i} idle={idle} stall={stall}"
            seen.append((what, *await mac_sweep(ctx, dut.mac, prm, kernels, rng, idle, stall,
                                                what)))

    run_sim(dut, tb)
    for (what, beats, sum_k), kernels in zip(seen, sweeps, strict=True):
        assert beats == expected_beats(prm, kernels, codes), what
        assert sum_k == np.asarray(kernels).sum(axis=0).tolist(), what


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS)
def test_worst_case_fits_the_accumulators(n, p, k, lanes, batch):
    # Every code 2^k - 1 and every kernel 2^F: T = p (2^k - 1) 2^F, the widest value.
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, kernel_bits=12, batch=batch)
    codes = np.full((p, n), 2 ** k - 1, dtype=np.uint8)
    dut = MacBench(prm, codes)
    kernels = [[2 ** prm.kernel_frac_bits] * batch] * p
    seen = []

    async def tb(ctx):
        seen.append(await mac_sweep(ctx, dut.mac, prm, kernels, None, 0.0, 0.0, "worst"))

    run_sim(dut, tb)
    beats, sum_k = seen[0]
    assert beats == expected_beats(prm, kernels, codes)
    worst = p * (2 ** k - 1) * 2 ** prm.kernel_frac_bits
    assert max(v for block in beats for slot in block for v in slot) == worst
    assert worst < 2 ** prm.acc_bits
    assert sum_k == [p * 2 ** prm.kernel_frac_bits] * batch


def test_accumulators_are_per_slot_and_cleared_by_their_beat():
    """Slot 0 all-zero kernels, slot 1 the largest: slot 0's beats must be zero although slot 1
    accumulates into the same lanes' adders, and every block's beat must hold that block's sums
    only (a beat that does not clear its slot leaks into the next block)."""
    n, p, k, lanes = 12, 5, 2, 4
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, kernel_bits=12, batch=2)
    codes = np.zeros((p, n), np.uint8)
    codes[:, :lanes] = 3                     # block 0: 3 everywhere; blocks 1, 2: 0, then 1
    codes[:, 2 * lanes:] = 1
    dut = MacBench(prm, codes)
    kmax = 2 ** prm.kernel_frac_bits
    kernels = [[0, kmax]] * p
    seen = []

    async def tb(ctx):
        seen.append(await mac_sweep(ctx, dut.mac, prm, kernels, None, 0.0, 0.0, "slots"))

    run_sim(dut, tb)
    beats, sum_k = seen[0]
    assert beats == [[[0] * lanes, [3 * p * kmax] * lanes],
                     [[0] * lanes, [0] * lanes],
                     [[0] * lanes, [p * kmax] * lanes]]
    assert sum_k == [0, p * kmax]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS)
def test_block_timing(n, p, k, lanes, batch):
    """With kernels always offered and the sums always taken: block 0 takes a kernel beat every
    cycle from the cycle after ``i_start``. The last read of a block is issued in the cycle
    ending at edge ``a`` (the last kernel's transfer edge in block 0); the word, the products
    and the accumulate take the next three edges, the drain starts at the fourth, so the first
    sum beat is sampled valid at edge ``a + 5`` and the ``batch`` beats come one every other
    edge (after a beat is taken, the beat register reloads for a cycle). The next block issues
    its ``p`` buffer reads from the cycle after its predecessor's last beat: ``p + 5`` edges
    from that beat to its own first (the ``p + 5`` of STEP_CYCLE_TERMS)."""
    rng = np.random.default_rng(7)
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes, kernel_bits=12, batch=batch)
    dut = MacBench(prm, rng.integers(0, 2 ** k, size=(p, n), dtype=np.uint8))
    accepted, beat_edges = [], []

    async def tb(ctx):
        clock = Clock()
        ctx.set(dut.mac.i_start, 1)
        await clock.tick(ctx)
        ctx.set(dut.mac.i_start, 0)
        await drive(ctx, dut.mac.i_kernel, [1] * p, transfers=accepted, clock=clock)
        await collect(ctx, dut.mac.o_sums, prm.blocks * batch, first_valid=beat_edges,
                      clock=clock)

    run_sim(dut, tb)
    assert accepted == list(range(2, p + 2))     # ACCUMULATE from the cycle after i_start
    expected, last_read = [], accepted[-1]
    for _ in range(prm.blocks):
        first = last_read + 5
        expected += list(range(first, first + 2 * batch - 1, 2))
        last_read = expected[-1] + p
    assert beat_edges == expected


def test_no_beat_before_the_last_kernel_and_none_after_the_sweep():
    """Kernels offered slowly: ``o_sums`` stays low until after the last kernel, and
    after the last beat of the last block it stays low until the next ``i_start``."""
    prm = accel_params(n=10, p=4, weight_bits=2, lanes=4, kernel_bits=12, batch=2)
    rng = np.random.default_rng(8)
    dut = MacBench(prm, rng.integers(0, 4, size=(4, 10), dtype=np.uint8))
    seen = {}

    async def tb(ctx):
        mac = dut.mac
        ctx.set(mac.i_start, 1)
        await ctx.tick()
        ctx.set(mac.i_start, 0)
        ctx.set(mac.o_sums.ready, 1)
        early = 0
        for _ in range(4):
            for _ in range(5):                   # 5 idle cycles before every kernel
                await ctx.tick()
                early |= ctx.get(mac.o_sums.valid)
            ctx.set(mac.i_kernel.valid, 1)
            ctx.set(mac.i_kernel.payload.as_value(), pack_lanes([3, 5], prm.kernel_bits))
            await ctx.tick().until(mac.i_kernel.ready)
            ctx.set(mac.i_kernel.valid, 0)
            early |= ctx.get(mac.o_sums.valid)
        seen["early"] = early
        ctx.set(mac.o_sums.ready, 0)
        await collect(ctx, mac.o_sums, prm.blocks * prm.batch)
        late = 0
        for _ in range(3 * prm.p + 20):
            await ctx.tick()
            late |= ctx.get(mac.o_sums.valid) | ctx.get(mac.i_kernel.ready)
        seen["late"] = late

    run_sim(dut, tb)
    assert seen == {"early": 0, "late": 0}
