"""Cosimulation: the generated Verilog (Verilator, or Icarus) against the integer model.

Each configuration is generated and compiled once into its own build directory (shared by the
pytest-xdist workers through a file lock); every scenario of ``sim/test_khop_top.py`` then runs
on it with and without idle cycles and backpressure, each run in a directory named from the
pytest node id. ``WAVES=1`` records waves there. The simulator is Verilator unless ``SIM=icarus``
(about 50 times slower); the ``icarus`` test runs Icarus whenever it is installed.
"""

import argparse
import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from khop import cli_cosim
from khop.cli_cosim import add_cosim
from khop.hw.params import AccelParams, configure
from khop.model.fixed import FixedConfig, IntegerNetwork, integer_network, kernel_lut
from khop.model.kernel import random_patterns
from khop.model.klr import TrainConfig, train_klr
from khop.model.netfile import Network, save_network
from khop.sim import runner
from khop.sim.bench import ridge_network
from khop.sim.config import (
    FLOWS,
    SCENARIOS,
    CosimConfig,
    load_integer_network,
    save_integer_network,
)
from khop.sim.results import CosimResult, parse_results

SIM = runner.default_sim()
SIM_OK, SIM_WHY = runner.sim_available(SIM)
ICARUS_OK, ICARUS_WHY = runner.sim_available("icarus")
needs_sim = pytest.mark.skipif(not SIM_OK, reason=f"SIM={SIM}: {SIM_WHY}")


# Fixtures ----------------------------------------------------------------------------------------


#: Build root of the cosimulation tests: under the repository's build/ (never committed), kept
#: between sessions so an unchanged configuration is not compiled again (a build is reused only
#: when its Verilog text and flags are identical). ``KHOP_COSIM_TEST_BUILD`` moves it.
BUILD_ROOT = Path(os.environ.get("KHOP_COSIM_TEST_BUILD")
                  or Path(__file__).resolve().parents[2] / "build" / "cosim-tests")


@pytest.fixture(scope="session")
def cosim_root():
    """Build root shared by the xdist workers (builds are locked per configuration)."""
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    return BUILD_ROOT


@pytest.fixture(scope="session")
def ridge(cosim_root):
    """The paper's ridge network (N=100, P=300, gamma=0.02, seed 42), trained once per worker
    and saved as a network file."""
    net = ridge_network()
    path = cosim_root / "networks" / f"ridge-{os.getpid()}.npz"
    save_network(path, net)
    yield net, path
    path.unlink(missing_ok=True)


def small_network(n, p, seed, gamma=0.02, epochs=100):
    patterns = random_patterns(np.random.default_rng(seed), n, p)
    alpha = train_klr(patterns, TrainConfig(gamma=gamma, epochs=epochs)).alpha
    return Network(patterns=patterns, alpha=alpha, gamma=gamma)


def run_dir(request, cosim_root):
    return cosim_root / "runs" / re.sub(r"[^\w.=-]+", "_", request.node.nodeid)[-120:]


def failure_report(res):
    failed = [c for c in res.tests.cases if c.status == "failed"]
    lines = [f"{c.name}: {c.message[:600]}" for c in failed] + res.messages[:5]
    return "\n".join(lines + [f"log: {res.log}"])


def assert_clean(res, scenarios, flows):
    """Every scenario ran and passed, no result or latency differs, cycles match the model."""
    ran = sum(len(flows) if s != "back_to_back" else 1 for s in scenarios)
    assert res.passed, failure_report(res)
    assert res.tests.passed == ran, failure_report(res)
    assert res.mismatches == 0, failure_report(res)
    assert res.cycle_mismatches == 0, failure_report(res)
    assert res.queries > 0
    cps = res.cycles_per_step
    assert cps.measured == cps.model, cps


# Configurations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    p: int
    bits: int
    lanes: int
    popcount_width: int | None
    queries: int
    flows: tuple
    scenarios: tuple = SCENARIOS
    seed: int = 1
    per_neuron: bool = False        # thresholds spread per neuron, corners of the range included
    units: int | None = None        # threshold_units (None: the default, 4 capped at lanes)
    batch: int = 1                  # queries in flight


CASES = [
    # The ridge network: every scenario, without and with heavy idle/backpressure.
    Case("ridge-2bit", 100, 300, 2, 16, None, 8, ("none", "heavy")),
    # One-bit weights, distance over 2 cycles; three-bit weights.
    Case("1bit-n64-L16-W32", 64, 96, 1, 16, 32, 12, ("none", "random")),
    Case("3bit-n48-L12", 48, 40, 3, 12, None, 12, ("none", "cycle")),
    # n not a multiple of lanes or of the popcount width.
    Case("n23-L5-W7", 23, 17, 2, 5, 7, 16, FLOWS),
    # lanes == n (one block), distance slower than the MAC (chunks > blocks).
    Case("n20-L20-W6", 20, 12, 2, 20, 6, 16, ("none", "random")),
    # Tiny pattern counts.
    Case("p1", 16, 1, 2, 4, None, 12, ("none", "cycle")),
    Case("p2-1bit", 16, 2, 1, 16, 5, 12, ("none", "heavy")),
    # A threshold per neuron, whatever the quantizer, padding lanes: a beat in one group of
    # threshold units (units == lanes), and in several groups, the last of fewer lanes (8 lanes
    # in groups of 3, 3 and 2). The default 4 units take the other cases' beats in one group
    # (4 lanes), in whole groups (16, 20, 100 lanes) and in a last group of one lane (5 lanes).
    Case("per-neuron-n23-L5-u5", 23, 17, 2, 5, 7, 16, FLOWS, per_neuron=True, units=5),
    Case("per-neuron-n30-L8-u3", 30, 24, 2, 8, None, 12, ("none", "heavy"), per_neuron=True,
         units=3),
    # Queries in flight: the ridge network with 2 and 4 slots (every scenario, idle cycles and
    # backpressure), and odd shapes with 3 slots; every result and every edge against the
    # integer model and khop.hw.timing.
    Case("ridge-2bit-B2", 100, 300, 2, 16, None, 8, ("none", "heavy"), batch=2),
    Case("ridge-2bit-L100-B4", 100, 300, 2, 100, None, 12, ("none", "random", "heavy"),
         batch=4),
    Case("n23-L5-W7-B3", 23, 17, 2, 5, 7, 16, FLOWS, batch=3),
    Case("p1-B4", 16, 1, 2, 4, None, 12, ("none", "cycle"), batch=4),
]


def spread_thresholds(inet, params, seed):
    """``inet`` with a threshold per neuron: each moved by up to r = 1/4, every eighth neuron at
    a corner of the range."""
    rng = np.random.default_rng(seed)
    lo, hi = params.threshold_range
    frac = params.threshold_frac_bits
    r_fx = np.clip(inet.r_fx + rng.integers(-(2 ** frac) // 4, 2 ** frac // 4, size=inet.n),
                   lo, hi)
    r_fx[::8] = rng.choice([lo, -1, 0, hi], size=len(r_fx[::8]))
    return dataclasses.replace(inet, r_fx=r_fx)


def case_network(case, ridge):
    if (case.n, case.p) == (100, 300):
        return ridge[0]
    return small_network(case.n, case.p, seed=case.seed + case.n)


@needs_sim
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verilog_matches_integer_model(case, ridge, cosim_root, request):
    net = case_network(case, ridge)
    params, inet = configure(net, bits=case.bits, lanes=case.lanes, batch=case.batch,
                             popcount_width=case.popcount_width, threshold_units=case.units)
    if case.per_neuron:
        inet = spread_thresholds(inet, params, case.seed)
        assert inet.uniform_threshold is None
    bld = runner.build(params, inet, sim=SIM, build_root=cosim_root, name=case.name)
    res = runner.run(bld, test_dir=run_dir(request, cosim_root), seed=case.seed,
                     queries=case.queries, scenarios=case.scenarios, flows=case.flows)
    assert_clean(res, case.scenarios, case.flows)


# The scoreboard catches a broken design ----------------------------------------------------------


def tie_network(n=16, p=4, seed=3):
    """Every neuron ties (all-zero codes, r_fx = 0: ``T_i * 2^R == r_fx * S_K == 0``), so the
    correct design keeps the query as it is and stops after one step."""
    rng = np.random.default_rng(seed)
    return IntegerNetwork(patterns=rng.integers(0, 2, (p, n), dtype=np.uint8),
                          codes=np.zeros((p, n), dtype=np.uint8),
                          lut=kernel_lut(0.05, n, 16), r_fx=0, config=FixedConfig())


def test_tie_network_keeps_every_query():
    inet = tie_network()
    q = np.random.default_rng(0).integers(0, 2, (20, inet.n), dtype=np.uint8)
    res = inet.retrieve(q)
    assert np.array_equal(res.states, q)
    assert np.all(res.steps == 1) and np.all(res.converged)


@needs_sim
@pytest.mark.parametrize("fault", [None, "tie_sets_one"])
def test_scoreboard_catches_the_tie_fault(fault, cosim_root, request):
    inet = tie_network()
    params = AccelParams(inet.n, inet.p, inet.config, lanes=4)
    res = runner.cosimulate(params, inet, queries=12, noise=0.25, seed=5,
                            sim=SIM, build_dir=cosim_root, progress=False, fault=fault,
                            scenarios=("noisy", "stored"), flows=("none",),
                            test_dir=run_dir(request, cosim_root))
    if fault is None:
        assert_clean(res, ("noisy", "stored"), ("none",))
        return
    assert res.fault == "tie_sets_one"
    assert res.mismatches > 0
    assert not res.passed
    first = res.messages[0]
    assert "neuron" in first and "seed 5" in first, first


# Waves and Icarus --------------------------------------------------------------------------------


@needs_sim
def test_waves_land_in_the_run_directory(cosim_root, request):
    inet = integer_network(*_tiny(), FixedConfig(weight_bits=2))
    test_dir = run_dir(request, cosim_root)
    params = AccelParams(inet.n, inet.p, inet.config, lanes=8)
    res = runner.cosimulate(params, inet, queries=3, sim=SIM, build_dir=cosim_root,
                            progress=False, waves=True, test_dir=test_dir)
    assert res.mismatches == 0 and res.passed, failure_report(res)
    waves = Path(res.waves)
    assert waves.parent == test_dir.resolve()
    assert waves.stat().st_size > 1000
    if SIM == "verilator":
        assert waves.name == "dump.vcd"
        assert "o_result__valid" in waves.read_text(errors="replace")[:200_000]


def _tiny():
    net = small_network(16, 6, seed=9)
    return net.patterns, net.alpha, net.gamma


@pytest.mark.icarus
@pytest.mark.skipif(not ICARUS_OK, reason=ICARUS_WHY)
def test_icarus_matches_integer_model(cosim_root, request):
    net = small_network(23, 17, seed=24)
    inet = integer_network(net.patterns, net.alpha, net.gamma, FixedConfig(weight_bits=2))
    params = AccelParams(inet.n, inet.p, inet.config, lanes=5, popcount_width=7)
    bld = runner.build(params, inet, sim="icarus", build_root=cosim_root, name="icarus")
    scenarios, flows = ("noisy", "back_to_back", "reset", "reload"), ("none", "random")
    res = runner.run(bld, test_dir=run_dir(request, cosim_root), seed=2, queries=8,
                     scenarios=scenarios, flows=flows)
    assert res.sim == "icarus"
    assert_clean(res, scenarios, flows)


def test_icarus_missing_is_reported_clearly(monkeypatch):
    monkeypatch.setattr(runner, "have_icarus", lambda: False)
    ok, reason = runner.sim_available("icarus")
    assert not ok and "iverilog" in reason
    with pytest.raises(runner.CosimError, match="iverilog"):
        runner.build(None, None, sim="icarus")


# The command ------------------------------------------------------------------------------------


def cosim_args(*argv):
    parser = argparse.ArgumentParser(prog="khop")
    add_cosim(parser.add_subparsers())
    return parser.parse_args(["cosim", *argv])


@needs_sim
def test_cosim_command_prints_a_table_and_json(cosim_root, tmp_path, capsys):
    path = tmp_path / "net.npz"
    save_network(path, small_network(16, 6, seed=9))
    common = [str(path), "--lanes", "8", "--queries", "5", "--build-dir", str(cosim_root),
              "--sim", SIM, "--kernel-bits", "12", "--max-steps", "10"]
    args = cosim_args(*common, "--json")
    args.func(args)   # returns: no mismatch, exit status 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["queries"] == 5 and doc["mismatches"] == 0 and doc["passed"]
    assert doc["cycles_per_step"]["measured"] == doc["cycles_per_step"]["model"]
    assert doc["params"]["kernel_bits"] == 12 and doc["params"]["max_steps"] == 10
    assert doc["network"] == str(path) and "per_test" not in doc
    args = cosim_args(*common)
    args.func(args)
    table = capsys.readouterr().out
    assert "recall (hardware)" in table and "cycles per step" in table
    assert "(cached build)" in table


def test_cosim_command_exits_1_on_a_mismatch(monkeypatch, capsys):
    def fake_run_cosim(*args, **kwargs):
        return CosimResult(mismatches=3, cycle_mismatches=0, passed=False, queries=5,
                           messages=["query 2 (noisy, seed 0): state differs first at neuron 4"])
    monkeypatch.setattr(cli_cosim, "run_cosim", fake_run_cosim)
    args = cosim_args("net.npz", "--json")
    with pytest.raises(SystemExit) as exc:
        args.func(args)
    assert exc.value.code == 1
    assert json.loads(capsys.readouterr().out)["mismatches"] == 3


def test_cosim_command_rejects_an_unknown_flow():
    with pytest.raises(SystemExit):
        cosim_args("net.npz", "--flows", "none,sideways")


# Host-side pieces --------------------------------------------------------------------------------


def test_config_round_trips_through_the_environment(tmp_path):
    params = AccelParams(20, 3, FixedConfig(kernel_bits=12), lanes=4, popcount_width=7)
    cfg = CosimConfig(params=params, network=str(tmp_path / "net.npz"), seed=7, queries=11,
                      noise=0.15, scenarios=["reset", "noisy"], flows=["heavy"],
                      summary="s.json", progress="p.txt")
    assert CosimConfig.from_env(cfg.to_env()) == cfg
    assert json.loads(json.dumps(cfg.as_dict()))["params"] == params.as_dict()


#: The keys of ``khop cosim --json`` (besides "network"), as before the results were dataclasses.
JSON_KEYS = {"queries", "sent", "mismatches", "cycle_mismatches", "recall_accuracy",
             "model_recall_accuracy", "exact_recall", "model_exact_recall", "mean_steps",
             "cycles_per_step", "simulated_cycles", "test_wall_seconds", "test_cpu_seconds",
             "messages", "sim", "passed", "tests", "wall_seconds", "compile_seconds",
             "cached_build", "cycles_per_second", "run_cycles_per_second", "params", "fault",
             "seed", "noise", "build_dir", "test_dir", "log", "waves"}


def test_cosim_result_prints_and_serialises(tmp_path):
    params = AccelParams(20, 3, lanes=4)
    fig = {"sent": 4, "results": 4, "mismatches": 0, "cycle_mismatches": 0, "steps": 8,
           "timed_steps": 8, "latency_cycles": 8 * params.cycles_per_step,
           "simulated_cycles": 1000, "wall_seconds": 0.5, "cpu_seconds": 0.4,
           "recall_bits": 80, "recall_hw_equal": 76, "recall_model_equal": 76,
           "recall_queries": 4, "exact_hw": 3, "exact_model": 3, "messages": []}
    xml = tmp_path / "results.xml"
    xml.write_text('<testsuites><testsuite><testcase name="noisy" time="0.5"/>'
                   '</testsuite></testsuites>')
    res = CosimResult.from_figures({"noisy/none": fig, "random/none": {**fig, "recall_bits": 0}},
                                   params, tests=parse_results(xml), wall_seconds=2.0,
                                   sim="verilator", seed=1, noise=0.2, log="sim.log")
    assert res.queries == 8 and res.recall_accuracy == 76 / 80 and res.exact_recall == 3 / 4
    assert res.cycles_per_step.measured == params.cycles_per_step and res.passed and res.clean
    doc = json.loads(json.dumps(res.as_dict()))
    assert set(doc) == JSON_KEYS
    assert doc["params"] == params.as_dict() and doc["tests"]["passed"] == 1
    assert set(doc["cycles_per_step"]) == {"measured", "model", "bound"}
    table = res.format("net.npz")
    assert table.startswith("khop cosim net.npz") and "recall (hardware)  0.9500" in table


def test_config_names_an_unknown_scenario():
    with pytest.raises(ValueError, match="'warp'"):
        CosimConfig(params=AccelParams(20, 3), network="x", scenarios=["noisy", "warp"])


def test_integer_network_file_round_trips(tmp_path):
    net = small_network(12, 5, seed=4)
    inet = integer_network(net.patterns, net.alpha, net.gamma, FixedConfig(weight_bits=3))
    back = load_integer_network(save_integer_network(tmp_path / "i.npz", inet))
    for name in ("patterns", "codes", "lut"):
        assert np.array_equal(getattr(back, name), getattr(inet, name))
    assert np.array_equal(back.r_fx, inet.r_fx) and back.config == inet.config
    q = np.random.default_rng(1).integers(0, 2, (6, 12), dtype=np.uint8)
    assert np.array_equal(back.retrieve(q).states, inet.retrieve(q).states)


def test_parse_results_counts_cases(tmp_path):
    xml = tmp_path / "results.xml"
    xml.write_text(
        '<testsuites><testsuite name="all" tests="3">'
        '<testcase name="a" time="1.5" sim_time_ns="100"/>'
        '<testcase name="b" time="0.1"><failure message="state differs"/></testcase>'
        '<testcase name="c"><skipped message="no"/></testcase>'
        '</testsuite></testsuites>')
    res = parse_results(xml)
    assert (res.total, res.passed, res.failed, res.skipped) == (3, 1, 1, 1)
    assert res.cases[1].message == "state differs"


# The full ridge run ------------------------------------------------------------------------------


@pytest.mark.slow
@needs_sim
def test_ridge_full_run(ridge, cosim_root, request):
    """300 noisy queries (20 %) of the ridge network: the hardware recalls exactly what the
    integer model recalls, at least 0.85, at the modelled cycles per step."""
    _, path = ridge
    res = runner.run_cosim(path, hardware={"bits": 2, "lanes": 16}, queries=300, noise=0.2,
                           seed=0, sim=SIM, build_dir=cosim_root, progress=False,
                           test_dir=run_dir(request, cosim_root))
    print(res.format(str(path)))
    assert res.queries == 300
    assert res.mismatches == 0 and res.cycle_mismatches == 0, failure_report(res)
    assert res.recall_accuracy == res.model_recall_accuracy
    assert res.recall_accuracy >= 0.85
    cps = res.cycles_per_step
    assert cps.measured == cps.model
    assert cps.model >= cps.bound
