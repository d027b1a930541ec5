"""cocotb tests of the generated ``khop_top`` against the integer model.

Run through :mod:`khop.sim.runner` (never directly): the configuration arrives in ``KHOP_COSIM_*``
environment variables (:class:`khop.sim.config.CosimConfig`). Each scenario of
:data:`khop.sim.config.SCENARIOS` is one cocotb test, parametrized over the configured flows
(idle/backpressure modes); scenarios not configured are skipped. After every test the figures of
all tests so far are written to the summary JSON file.

Memories and the threshold survive a reset and a test, so a test that reloads the network loads
the original one back before it ends (and every test checks it starts from the original).
"""

import json

import cocotb
import numpy as np

from khop.hw.timing import back_to_back
from khop.model.fixed import IntegerNetwork, to_bipolar, to_bits
from khop.model.metrics import noisy_queries
from khop.outputs import atomic_write
from khop.sim.config import CosimConfig, load_integer_network
from khop.sim.testbench import TB, edge_of

CONFIG = CosimConfig.from_env()
PARAMS = CONFIG.params
BASE = load_integer_network(CONFIG.network)

_summary = {"config": CONFIG.as_dict(), "tests": {}}
_state = {"loaded": BASE, "done": 0}


#: Queries the ``reset`` scenario drops by resetting the design in the middle of them.
RESET_DROPS = 5


def scenario_queries(scenario):
    """Results a scenario checks per flow (the progress total); ``reset`` sends
    :data:`RESET_DROPS` more, which never give a result."""
    q = CONFIG.queries
    return {"noisy": q, "random": max(4, q // 2), "stored": PARAMS.p,
            "back_to_back": max(4, q // 2) + min(PARAMS.p, 8),
            "reset": max(4, q // 4),
            "reload": 2 + 3 * max(4, q // 4) + min(PARAMS.p, 8)}[scenario]


def _flows(scenario):
    return ["none"] if scenario == "back_to_back" else CONFIG.flows


PLANNED = sum(scenario_queries(s) * len(_flows(s)) for s in CONFIG.scenarios)


def _timeout_ns():
    worst = PARAMS.cycles_per_query(PARAMS.max_steps) + 2000
    return (PLANNED + PARAMS.p + 16) * worst * 10 + 10**7


def _progress():
    _state["done"] += 1
    path = CONFIG.progress
    if path and (_state["done"] % 8 == 0 or _state["done"] >= PLANNED):
        atomic_write(path, f"{_state['done']} {PLANNED}\n")


def _write_summary():
    if not CONFIG.summary:
        return
    atomic_write(CONFIG.summary, json.dumps(_summary, indent=1))


def _rng(scenario, flow):
    return np.random.default_rng([CONFIG.seed, sum(map(ord, scenario)), sum(map(ord, flow))])


async def _start(dut, scenario, flow):
    seed = CONFIG.seed
    tb = TB(dut, PARAMS, _state["loaded"], seed=seed, flow=flow, on_result=_progress)
    await tb.start()
    if _state["loaded"] is not BASE:  # a failed earlier test left another network (or a
        # partly loaded one) in the memories
        await tb.load(BASE)
        _state["loaded"] = BASE
    dut._log.info("%s, flow %s, seed %d: %s", scenario, flow, seed, PARAMS)
    return tb


def _finish(tb, name, extra=None, lost=0):
    """Record the test's figures in the summary, then assert the scoreboard saw no mismatch and
    one result per query taken (less the ``lost`` ones, dropped by a reset)."""
    stats = tb.stats()
    stats.update(extra or {})
    stats["messages"] = tb.scoreboard.mismatches[:10] + tb.scoreboard.cycle_mismatches[:10]
    _summary["tests"][name] = stats
    _write_summary()
    assert not tb.scoreboard.mismatches, (
        f"{len(tb.scoreboard.mismatches)} of {stats['results']} results differ from the "
        f"integer model (seed {tb.seed}):\n{tb.scoreboard.report()}")
    assert not tb.scoreboard.cycle_mismatches, (
        f"{len(tb.scoreboard.cycle_mismatches)} results off the cycle model:\n"
        f"{tb.scoreboard.report()}")
    assert stats["results"] == stats["sent"] - lost, (
        f"{stats['sent']} queries sent ({lost} dropped by a reset) but {stats['results']} "
        f"results")


def _noisy(model, count, rng, noise=None):
    q, targets = noisy_queries(to_bipolar(model.patterns), CONFIG.noise if noise is None
                               else noise, count, rng)
    return to_bits(q), targets


def _variant(model: IntegerNetwork, rng):
    """Another network of the same shape: a quarter of the pattern bits flipped, the weight
    codes complemented (weights negated) in reverse pattern order, a smaller kernel table,
    other thresholds, a different one per neuron."""
    flips = rng.random(model.patterns.shape) < 0.25
    frac = model.config.threshold_frac_bits
    r_hi = 2 ** (model.config.weight_bits + frac)
    spread = rng.integers(-(2 ** frac) // 16, 2 ** frac // 16 + 1, size=model.n)
    r_fx = np.clip(model.r_fx + 2 ** (frac - 3) + 7 + spread, -(2 ** frac), r_hi)
    return IntegerNetwork(patterns=(model.patterns ^ flips).astype(np.uint8),
                          codes=(2 ** model.config.weight_bits - 1 - model.codes[::-1]).astype(
                              np.uint8),
                          lut=(model.lut * 3) // 4, r_fx=r_fx, config=model.config)


def _skip(scenario):
    return scenario not in CONFIG.scenarios


def _test(scenario):
    return cocotb.test(skip=_skip(scenario), timeout_time=_timeout_ns(), timeout_unit="ns")


# Scenarios --------------------------------------------------------------------------------------


async def _run_scenario(dut, scenario, flow, make_queries):
    """Start, send the ``(queries, targets)`` that ``make_queries(tb, rng)`` returns (targets may
    be ``None``), drain and record: the shape of every plain scenario."""
    tb = await _start(dut, scenario, flow)
    queries, targets = make_queries(tb, _rng(scenario, flow))
    await tb.send(queries, scenario=scenario, targets=targets)
    await tb.drain()
    _finish(tb, f"{scenario}/{flow}")


@_test("noisy")
@cocotb.parametrize(flow=_flows("noisy"))
async def test_noisy_queries(dut, flow):
    """Noisy copies of stored patterns: every result equals the model's; recall is reported."""
    await _run_scenario(dut, "noisy", flow,
                        lambda tb, rng: _noisy(tb.model, scenario_queries("noisy"), rng))


@_test("random")
@cocotb.parametrize(flow=_flows("random"))
async def test_random_states(dut, flow):
    """Uniformly random states, unrelated to the stored patterns."""
    def random_states(tb, rng):
        count = scenario_queries("random")
        return rng.integers(0, 2, size=(count, PARAMS.n), dtype=np.uint8), None
    await _run_scenario(dut, "random", flow, random_states)


@_test("stored")
@cocotb.parametrize(flow=_flows("stored"))
async def test_stored_patterns(dut, flow):
    """Every stored pattern itself as a query."""
    await _run_scenario(dut, "stored", flow,
                        lambda tb, rng: (tb.model.patterns, np.arange(PARAMS.p)))


@_test("back_to_back")
async def test_back_to_back(dut):
    """Queries with ``valid`` held high throughout and ``ready`` always high: every query is
    taken, and every result presented, at exactly the edge the slots' timing model says
    (:func:`khop.hw.timing.back_to_back`; with one slot, each next query one edge after the
    previous result is taken)."""
    tb = await _start(dut, "back_to_back", "none")
    rng = _rng("back_to_back", "none")
    noisy, targets = _noisy(tb.model, max(4, CONFIG.queries // 2), rng)
    stored = np.arange(min(PARAMS.p, 8))
    queries = np.concatenate([noisy, tb.model.patterns[stored]])
    await tb.send(queries, scenario="back_to_back", targets=np.concatenate([targets, stored]))
    await tb.drain()
    steps = [r[0].steps for r in tb.scoreboard.records]
    model = back_to_back(PARAMS, steps)
    first = edge_of(tb.query_transfers[0])
    transfers = [edge_of(t) - first + 1 for t in tb.query_transfers]
    taken = [edge_of(t) - first + 1 for t in tb.result_transfers]
    cycles = taken[-1] - transfers[0]
    _finish(tb, "back_to_back", {"stream_queries": len(steps), "stream_cycles": cycles,
                                 "stream_cycles_model": model.cycles})
    assert transfers == list(model.transfers), (
        f"query transfer edges {transfers[:12]} ..., the model says {list(model.transfers[:12])}")
    assert taken == [v + 1 for v in model.valid], (
        f"result transfer edges {taken[:12]} ..., the model says "
        f"{[v + 1 for v in model.valid[:12]]}")


@_test("reset")
@cocotb.parametrize(flow=_flows("reset"))
async def test_reset_mid_query(dut, flow):
    """A reset in the middle of a query (at several points, and while a finished result waits
    on backpressure) drops the query: no stale result appears, and the design then works."""
    tb = await _start(dut, "reset", flow)
    rng = _rng("reset", flow)
    queries, targets = _noisy(tb.model, RESET_DROPS, rng)
    aborted = 0
    for j, (frac, width) in enumerate([(0.0, 1), (0.3, 2), (0.6, 1), (0.95, 3)]):
        await tb.send(queries[j:j + 1], scenario="reset", targets=targets[j:j + 1])
        total = PARAMS.cycles_per_query(tb.scoreboard.pending[-1].steps)
        await tb.edges(max(1, int(frac * total)))
        await tb.reset(width)
        lost = tb.scoreboard.flush()
        assert len(lost) == 1, f"reset at {frac:.0%} of query {j}: {len(lost)} queries pending"
        aborted += 1
        await tb.edges(total + 20)   # a stale result would reach the scoreboard here
    # A finished result held by backpressure, then a reset.
    tb.accepting = False
    await tb.send(queries[4:5], scenario="reset", targets=targets[4:5])
    await tb.edges(PARAMS.cycles_per_query(tb.scoreboard.pending[-1].steps) + 3)
    assert int(dut.o_result__valid.value) == 1, "the held result is not valid"
    await tb.reset(2)
    tb.scoreboard.flush()
    aborted += 1
    tb.accepting = True
    await tb.edges(50)
    # The design works afterwards.
    queries, targets = _noisy(tb.model, scenario_queries("reset"), rng)
    await tb.send(queries, scenario="reset/after", targets=targets)
    await tb.drain()
    _finish(tb, f"reset/{flow}", {"aborted": aborted}, lost=aborted)


@_test("reload")
@cocotb.parametrize(flow=_flows("reload"))
async def test_reload_network(dut, flow):
    """Another network loaded through ``i_load`` while a query runs and the next one waits: the
    running query finishes with the old network, the load goes first, everything after it
    (also after a reset) follows the new network; then the original is loaded back."""
    tb = await _start(dut, "reload", flow)
    rng = _rng("reload", flow)
    base = tb.model
    other = _variant(base, rng)
    count = max(4, CONFIG.queries // 4)

    first, first_t = _noisy(base, 2, rng)
    sender = cocotb.start_soon(tb.send(first, scenario="reload/overlap", targets=first_t))
    while not tb.query_transfers:
        await tb.edges(1)
    _state["loaded"] = None   # until the load is complete, a failure leaves it unknown
    loader = cocotb.start_soon(tb.load(other))
    await sender
    words = await loader
    _state["loaded"] = other
    assert all(t > tb.load_done_at for t in tb.query_transfers if t > tb.load_offered_at), \
        "a waiting query overtook the load"

    queries, targets = _noisy(other, count, rng)
    stored = np.arange(min(PARAMS.p, 8))
    queries = np.concatenate([queries, other.patterns[stored]])
    targets = np.concatenate([targets, stored])
    differ = np.any(base.retrieve(queries).states != other.retrieve(queries).states)
    await tb.send(queries, scenario="reload/new", targets=targets)
    await tb.drain()

    await tb.reset(2)   # the loaded contents survive a reset
    queries, targets = _noisy(other, count, rng)
    await tb.send(queries, scenario="reload/after-reset", targets=targets)
    await tb.drain()

    _state["loaded"] = None
    await tb.load(base)
    _state["loaded"] = base
    queries, targets = _noisy(base, count, rng)
    await tb.send(queries, scenario="reload/original", targets=targets)
    await tb.drain()
    _finish(tb, f"reload/{flow}", {"load_words": words})
    assert differ, "the two networks give the same results: the reload test proves nothing"
