"""Pattern memory (hw/pattern_memory.py): initial contents, read port timing, run-time writes."""

import numpy as np
import pytest
from hw_helpers import (
    accel_params,
    check_read_during_write,
    check_reads,
    random_writes,
    ref_pattern_word,
    rejected,
    run_sim,
)

from khop.hw.pattern_memory import PatternMemory

CONFIGS = [(20, 6, 20), (23, 5, 5), (17, 4, 1), (12, 3, 7)]


def _expected(prm, bits):
    return [ref_pattern_word(bits, mu, c, prm.popcount_width)
            for mu in range(prm.p) for c in range(prm.chunks)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("n", "p", "width"), CONFIGS)
def test_initial_words_readable_at_every_address(seed, n, p, width):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=n, p=p, lanes=1, popcount_width=width)
    bits = rng.integers(0, 2, size=(p, n), dtype=np.uint8)
    dut = PatternMemory(prm, bits)
    assert (dut.depth, dut.width) == (p * prm.chunks, width)
    assert dut.memory_bits == prm.memory_bits["pattern"]
    expected = _expected(prm, bits)

    async def tb(ctx):
        await check_reads(ctx, dut, expected, rng, f"seed={seed}")

    run_sim(dut, tb)


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize(("n", "p", "width"), CONFIGS[:2])
def test_run_time_writes_then_reads(seed, n, p, width):
    rng = np.random.default_rng(seed)
    prm = accel_params(n=n, p=p, lanes=1, popcount_width=width)
    bits = rng.integers(0, 2, size=(p, n), dtype=np.uint8)
    dut = PatternMemory(prm, bits)
    expected = _expected(prm, bits)

    async def tb(ctx):
        await random_writes(ctx, dut, expected, rng, 3 * len(expected), width)
        await check_reads(ctx, dut, expected, rng, f"seed={seed} after writes")
        await check_read_during_write(ctx, dut, expected, rng, width, f"seed={seed}")
        await check_reads(ctx, dut, expected, rng, f"seed={seed} after read-during-write")

    run_sim(dut, tb)


def test_without_patterns_the_memory_is_zero_until_written():
    rng = np.random.default_rng(9)
    prm = accel_params(n=10, p=3, lanes=1, popcount_width=4)
    dut = PatternMemory(prm)
    expected = [0] * prm.pattern_depth

    async def tb(ctx):
        await check_reads(ctx, dut, expected, rng, "empty")
        await random_writes(ctx, dut, expected, rng, 10, prm.pattern_width)
        await check_reads(ctx, dut, expected, rng, "seed=9 after writes")

    run_sim(dut, tb)


def test_patterns_of_the_wrong_shape_are_rejected():
    prm = accel_params(n=10, p=3, lanes=4)
    bits = np.zeros((3, 11), dtype=np.uint8)
    rejected(ValueError, r"shape \(3, 11\).*p=3, n=10", lambda: PatternMemory(prm, bits))
