"""End-to-end cosimulation: the board core (UART + bridge + accelerator) in Verilator, driven by
the host driver over a UART model: load, recall, reload, garbage, recovery."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from khop.boards.cosim import build_core, run_core
from khop.hw.params import AccelParams
from khop.model.fixed import FixedConfig, integer_network
from khop.model.kernel import random_patterns
from khop.sim.runner import sim_available

OK, WHY = sim_available("verilator")
pytestmark = pytest.mark.skipif(not OK, reason=WHY)

BUILD_ROOT = Path(os.environ.get("KHOP_BOARD_TEST_BUILD")
                  or Path(__file__).resolve().parents[2] / "build" / "board-cosim-tests")
DIVISOR = 4


def _network(seed, n=20, p=16):
    rng = np.random.default_rng(seed)
    patterns = random_patterns(rng, n, p)
    alpha = rng.normal(0, 2.5, size=(p, n))
    inet = integer_network(patterns, alpha, 0.06, FixedConfig(max_steps=12))
    # A threshold per neuron, whatever the quantizer: each moved by up to r = 1/8.
    frac, k = inet.config.threshold_frac_bits, inet.config.weight_bits
    r_fx = np.clip(inet.r_fx + rng.integers(-(2 ** frac) // 8, 2 ** frac // 8, size=n),
                   -(2 ** frac), 2 ** (k + frac))
    inet = dataclasses.replace(inet, r_fx=r_fx)
    assert inet.uniform_threshold is None
    return inet


def test_board_core_over_uart_equals_the_integer_model(tmp_path):
    """The iCEBreaker's core: weights in SPRAM (Yosys' SB_SPRAM256KA model), two networks with
    a threshold per neuron loaded over UART, each with noisy queries against the model."""
    a, b = _network(1), _network(2)
    params = AccelParams(a.n, a.p, a.config, lanes=4)
    core = build_core(params, DIVISOR, BUILD_ROOT, spram=True)
    res = run_core(core, [a, b], divisor=DIVISOR, queries=20, test_dir=tmp_path / "run")
    assert res.tests is not None, "the simulation wrote no results"
    failed = [c for c in res.tests.cases if c.status != "passed"]
    assert not failed and res.tests.passed == res.tests.total >= 2, res.format()
    assert res.passed
    summary = res.summary
    phases = summary["phases"]
    assert [p.get("mismatches") for p in phases] == [0, 0, 0]
    assert phases[0]["writes"] == params.pattern_depth + params.weight_depth \
        + params.lut_depth + params.threshold_depth     # one word per block and unit group
    assert summary["status"]["errors"] >= 2 and summary["status"]["queries"] == 45


def _fuzz(tmp_path, count, seed):
    a = _network(1)
    params = AccelParams(a.n, a.p, a.config, lanes=4)
    core = build_core(params, DIVISOR, BUILD_ROOT, spram=True)
    res = run_core(core, [a], divisor=DIVISOR, fuzz=count, seed=seed,
                   test_dir=tmp_path / "fuzz", testcase="fuzz_sequences_equal_the_emulator")
    assert res.passed and res.tests.passed == 1, res.format()
    fuzz, recall = res.summary["fuzz"], res.summary["recall"]
    assert fuzz["sequences"] == count and recall == {"queries": 20, "mismatches": 0}
    return fuzz


def test_board_core_fuzz_equals_the_emulator_byte_for_byte(tmp_path, record_property):
    """200 random link sequences (valid, invalid, damaged frames, out-of-range LOADs, garbage)
    at full line rate into the iCEBreaker's core in Verilator: every reply byte equals the
    emulator's; then 20 noisy queries through the host driver equal the integer model."""
    fuzz = _fuzz(tmp_path, 200, seed=11)
    record_property("fuzz", f"link sequences through the Verilator board core: "
                            f"{fuzz['sequences']} sequences, {fuzz['bytes_to_board']} bytes in, "
                            f"{fuzz['bytes_from_board']} bytes out, board = emulator byte for "
                            f"byte; then 20 noisy queries = model")


@pytest.mark.slow
def test_board_core_fuzz_2000_sequences(tmp_path, record_property):
    fuzz = _fuzz(tmp_path, 2000, seed=12)
    record_property("fuzz", f"link sequences through the Verilator board core (slow): "
                            f"{fuzz['sequences']} sequences, {fuzz['bytes_to_board']} bytes in, "
                            f"{fuzz['bytes_from_board']} bytes out, board = emulator byte for "
                            f"byte")
