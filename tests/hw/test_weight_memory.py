"""Weight memory (hw/weight_memory.py): initial contents, read port timing, run-time writes."""

import numpy as np
import pytest
from hw_helpers import (
    accel_params,
    check_read_during_write,
    check_reads,
    random_writes,
    ref_weight_word,
    rejected,
    run_sim,
)

from khop.hw.weight_memory import WeightMemory

CONFIGS = [(20, 6, 2, 4), (23, 5, 3, 5), (17, 4, 4, 17), (12, 3, 1, 1)]


def _expected(prm, codes):
    return [ref_weight_word(codes, mu, b, prm.lanes, prm.weight_bits)
            for mu in range(prm.p) for b in range(prm.blocks)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS)
def test_initial_words_readable_at_every_address(seed, n, p, k, lanes):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes)
    codes = rng.integers(0, 2 ** k, size=(p, n), dtype=np.uint8)
    dut = WeightMemory(prm, codes)
    assert (dut.depth, dut.width) == (p * prm.blocks, lanes * k)
    assert dut.memory_bits == prm.memory_bits["weight"]
    expected = _expected(prm, codes)

    async def tb(ctx):
        await check_reads(ctx, dut, expected, rng, f"seed={seed}")

    run_sim(dut, tb)


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize(("n", "p", "k", "lanes"), CONFIGS[:2])
def test_run_time_writes_then_reads(seed, n, p, k, lanes):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=n, p=p, weight_bits=k, lanes=lanes)
    codes = rng.integers(0, 2 ** k, size=(p, n), dtype=np.uint8)
    dut = WeightMemory(prm, codes)
    expected = _expected(prm, codes)

    async def tb(ctx):
        await random_writes(ctx, dut, expected, rng, 3 * len(expected), prm.weight_width)
        await check_reads(ctx, dut, expected, rng, f"seed={seed} after writes")
        await check_read_during_write(ctx, dut, expected, rng, prm.weight_width, f"seed={seed}")
        await check_reads(ctx, dut, expected, rng, f"seed={seed} after read-during-write")

    run_sim(dut, tb)


def test_without_codes_the_memory_is_zero():
    rng = np.random.default_rng(9)
    prm = accel_params(n=10, p=3, lanes=3)
    dut = WeightMemory(prm)

    async def tb(ctx):
        await check_reads(ctx, dut, [0] * prm.weight_depth, rng, "empty")

    run_sim(dut, tb)


def test_codes_out_of_range_are_rejected():
    prm = accel_params(n=10, p=3, weight_bits=2, lanes=4)
    codes = np.full((3, 10), 4, dtype=np.uint8)
    rejected(ValueError, r"below 2\^2, found 4", lambda: WeightMemory(prm, codes))
