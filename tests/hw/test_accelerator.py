"""The retrieval accelerator top (hw/accelerator.py) against ``IntegerNetwork.retrieve``.

Every result (state bits, steps, converged) is compared in order; without backpressure the
cycles from each query's transfer to its result's ``valid`` must equal the cycle model.
"""

import dataclasses

import numpy as np
import pytest
from amaranth import ClockDomain, Elaboratable, Module
from hw_helpers import (
    Clock,
    bits_of,
    collect,
    drive,
    int_of,
    noisy_queries,
    params_for,
    random_states,
    run_sim,
    tiny_network,
)

from khop.hw.accelerator import RetrievalAccelerator
from khop.hw.layout import LoadTarget, load_words, pack_load, threshold_writes, unpack_result
from khop.model.fixed import FixedConfig, integer_network
from khop.model.kernel import random_patterns
from khop.model.klr import TrainConfig, train_klr

CONFIGS = {
    # name: (n, p, k, lanes, W, max_steps)
    "n20-p12-k2-L4-W20": (20, 12, 2, 4, 20, 6),
    "n23-p9-k1-L5-W7": (23, 9, 1, 5, 7, 5),          # n not a multiple of lanes or W
    "n17-p30-k3-L17": (17, 30, 3, 17, None, 4),      # lanes == n
    "n30-p10-k4-L7-W4": (30, 10, 4, 7, 4, 5),        # distance unit slower than the MAC
    "n12-p1-k2-L5-W6": (12, 1, 2, 5, 6, 3),          # a single stored pattern
}


def build(name, seed, **kw):
    n, p, k, lanes, width, max_steps = CONFIGS[name]
    inet = tiny_network(n, p, seed, weight_bits=k, max_steps=max_steps, epochs=5, **kw)
    return inet, params_for(inet, lanes=lanes, popcount_width=width)


def make_queries(rng, inet, count):
    half = count // 2
    return np.concatenate([noisy_queries(rng, inet, half),
                           random_states(rng, count - half, inet.n)])


def expected_results(inet, queries):
    res = inet.retrieve(queries)
    return [(res.states[i], int(res.steps[i]), bool(res.converged[i]))
            for i in range(len(queries))]


def check_results(prm, raws, expected, what):
    assert len(raws) == len(expected), what
    for i, (raw, (e_state, e_steps, e_conv)) in enumerate(zip(raws, expected, strict=True)):
        state, steps, conv = unpack_result(prm, raw)
        tag = f"{what} result {i}"
        np.testing.assert_array_equal(bits_of(state, prm.n), e_state, err_msg=tag)
        assert (steps, conv) == (e_steps, e_conv), tag


def stream_queries(dut, queries, rng, idle, stall):
    """Testbenches offering ``queries`` and collecting their results concurrently.

    Returns ``(testbenches, raws, query_edges, valid_edges)``; the lists fill during the run.
    """
    raws, q_edges, v_edges = [], [], []

    async def source(ctx):
        await drive(ctx, dut.i_query, [int_of(q) for q in queries], rng, idle, q_edges)

    async def sink(ctx):
        raws.extend(await collect(ctx, dut.o_result, len(queries), rng, stall, v_edges,
                                  what="o_result"))

    return [source, sink], raws, q_edges, v_edges


def measured_cycles(q_edges, v_edges):
    """Edges after a query's transfer edge until its result is seen valid.

    ``v_edges`` holds the edge at which the result was first *sampled* valid: it was seen
    valid right after the edge before.
    """
    return [(v - 1) - q for q, v in zip(q_edges, v_edges, strict=True)]


# Results against the model ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_results_with_idle_and_backpressure(name, seed):
    rng = np.random.default_rng(seed)
    inet, prm = build(name, seed)
    dut = RetrievalAccelerator(prm, inet)
    queries = make_queries(rng, inet, 8)
    tbs, raws, _, _ = stream_queries(dut, queries, rng, idle=0.5, stall=0.6)
    run_sim(dut, *tbs)
    check_results(prm, raws, expected_results(inet, queries), f"{name} seed={seed}")


@pytest.mark.parametrize("idle", [0.0, 0.5])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_cycles_per_query_without_backpressure(name, idle):
    """Back to back (``idle`` 0: the next query is always offered) or with idle gaps, and
    ``o_result`` always ready: each query costs exactly ``cycles_per_query(steps)``."""
    seed = 3
    rng = np.random.default_rng(seed)
    inet, prm = build(name, seed)
    dut = RetrievalAccelerator(prm, inet)
    queries = make_queries(rng, inet, 8)
    tbs, raws, q_edges, v_edges = stream_queries(dut, queries, rng, idle=idle, stall=0.0)
    run_sim(dut, *tbs)
    expected = expected_results(inet, queries)
    what = f"{name} seed={seed} idle={idle}"
    check_results(prm, raws, expected, what)
    cycles = measured_cycles(q_edges, v_edges)
    assert cycles == [prm.cycles_per_query(steps) for _, steps, _ in expected], what
    if idle == 0.0:
        # Back to back: the next query is taken in the cycle after its predecessor's result.
        assert [q - v for q, v in zip(q_edges[1:], v_edges, strict=False)] == [1] * 7, what


def test_cycles_counted_from_the_transfer_edge():
    """The measurement spelled out on one coroutine: after the edge that transfers the query,
    count ticks until ``o_result.valid`` is seen."""
    rng = np.random.default_rng(4)
    inet, prm = build("n23-p9-k1-L5-W7", 4)
    dut = RetrievalAccelerator(prm, inet)
    queries = make_queries(rng, inet, 4)
    measured, raws = [], []

    async def tb(ctx):
        for q in queries:
            for _ in range(int(rng.integers(0, 4))):
                await ctx.tick()
            ctx.set(dut.i_query.valid, 1)
            ctx.set(dut.i_query.payload, int_of(q))
            await ctx.tick().until(dut.i_query.ready)       # the transfer edge
            ctx.set(dut.i_query.valid, 0)
            ticks = 0
            while not ctx.get(dut.o_result.valid):
                await ctx.tick()
                ticks += 1
            measured.append(ticks)
            raws.append(ctx.get(dut.o_result.payload.as_value()))
            ctx.set(dut.o_result.ready, 1)
            await ctx.tick()
            ctx.set(dut.o_result.ready, 0)

    run_sim(dut, tb)
    expected = expected_results(inet, queries)
    check_results(prm, raws, expected, "seed=4")
    assert measured == [prm.cycles_per_query(s) for _, s, _ in expected]
    assert all(m == s * prm.cycles_per_step for m, (_, s, _) in zip(measured, expected,
                                                                     strict=True))


# Run-time loading -------------------------------------------------------------------------------

def other_network(name, seed, net_a):
    """A network of the same shape that differs from ``net_a`` in every memory and in r."""
    n = CONFIGS[name][0]
    net_b, _ = build(name, seed + 100, gamma=2.0 / n)
    if np.array_equal(net_b.r_fx, net_a.r_fx):   # 1-bit networks: r = 1/2 always
        net_b = dataclasses.replace(net_b, r_fx=net_a.r_fx + 2 ** 12)
    assert not np.array_equal(net_a.r_fx, net_b.r_fx)
    assert not np.array_equal(net_a.lut, net_b.lut)
    assert not np.array_equal(net_a.patterns, net_b.patterns)
    assert not np.array_equal(net_a.codes, net_b.codes)
    return net_b


def load_payloads(prm, inet):
    return [pack_load(prm, t, a, d) for t, a, d in load_words(prm, inet)]


@pytest.mark.parametrize("seed", [5, 6])
@pytest.mark.parametrize("name", ["n20-p12-k2-L4-W20", "n23-p9-k1-L5-W7"])
def test_reload_replaces_the_network(name, seed):
    rng = np.random.default_rng(seed)
    net_a, prm = build(name, seed)
    net_b = other_network(name, seed, net_a)
    dut = RetrievalAccelerator(prm, net_a)
    q_a, q_b = make_queries(rng, net_a, 3), make_queries(rng, net_b, 6)
    raws_a, raws_b = [], []

    async def tb(ctx):
        # One query at a time, offered after idle cycles, its result taken under backpressure.
        for q in q_a:
            await drive(ctx, dut.i_query, [int_of(q)], rng, 0.3)
            raws_a.extend(await collect(ctx, dut.o_result, 1, rng, 0.5))
        await drive(ctx, dut.i_load, load_payloads(prm, net_b), rng, 0.3)
        for q in q_b:
            await drive(ctx, dut.i_query, [int_of(q)], rng, 0.3)
            raws_b.extend(await collect(ctx, dut.o_result, 1, rng, 0.5))

    run_sim(dut, tb)
    check_results(prm, raws_a, expected_results(net_a, q_a), f"{name} seed={seed} before")
    check_results(prm, raws_b, expected_results(net_b, q_b), f"{name} seed={seed} after")
    # The two networks disagree on these queries, so the check above saw the reload.
    assert any(not np.array_equal(a[0], b[0]) for a, b in
               zip(expected_results(net_a, q_b), expected_results(net_b, q_b), strict=True))


def test_empty_accelerator_loaded_at_run_time():
    rng = np.random.default_rng(7)
    inet, prm = build("n30-p10-k4-L7-W4", 7)
    dut = RetrievalAccelerator(prm)
    queries = make_queries(rng, inet, 4)
    raws = []

    async def tb(ctx):
        await drive(ctx, dut.i_load, load_payloads(prm, inet), rng, 0.2)
        for q in queries:
            await drive(ctx, dut.i_query, [int_of(q)], rng, 0.2)
            raws.extend(await collect(ctx, dut.o_result, 1, rng, 0.2))

    run_sim(dut, tb)
    check_results(prm, raws, expected_results(inet, queries), "seed=7")


def per_neuron_thresholds(rng, inet, prm):
    """Thresholds that differ per neuron: the network's own moved by up to r = 1/4 each, and a
    sixth of the neurons at a corner of the range (``-2^R``, ``-1``, ``0``, ``2^(k+R)``)."""
    lo, hi = prm.threshold_range
    frac = prm.threshold_frac_bits
    r = np.clip(inet.r_fx + rng.integers(-(2 ** frac) // 4, 2 ** frac // 4, size=inet.n), lo, hi)
    corner = rng.random(inet.n) < 1 / 6
    r[corner] = rng.choice([lo, -1, 0, hi], size=int(corner.sum()))
    return r


@pytest.mark.parametrize("name", list(CONFIGS))
def test_per_neuron_thresholds_at_generation_and_loaded(name):
    """A threshold per neuron, in the generated memory and loaded at run time: every result
    equals the integer model's."""
    seed = 24
    rng = np.random.default_rng(seed)
    inet, prm = build(name, seed)
    net_a = dataclasses.replace(inet, r_fx=per_neuron_thresholds(rng, inet, prm))
    net_b = dataclasses.replace(inet, r_fx=per_neuron_thresholds(rng, inet, prm))
    assert net_a.uniform_threshold is None and net_b.uniform_threshold is None
    dut = RetrievalAccelerator(prm, net_a)
    qa, qb = make_queries(rng, inet, 6), make_queries(rng, inet, 6)
    raws = []

    async def tb(ctx):
        for net, queries in ((None, qa), (net_b, qb)):
            if net is not None:
                await drive(ctx, dut.i_load, load_payloads(prm, net), rng, 0.3)
            for q in queries:
                await drive(ctx, dut.i_query, [int_of(q)], rng, 0.3)
                raws.extend(await collect(ctx, dut.o_result, 1, rng, 0.3))

    run_sim(dut, tb)
    expected = expected_results(net_a, qa) + expected_results(net_b, qb)
    check_results(prm, raws, expected, f"{name} seed={seed}")


@pytest.mark.parametrize("r_fx", [-5000, -(2 ** 16), 2 ** 18])
def test_threshold_loaded_at_run_time_is_signed(r_fx):
    # r < 0 sets every neuron and r = 2^k clears every neuron (T <= (2^k - 1) S_K): a threshold
    # loaded without its sign, or truncated, gives other states.
    rng = np.random.default_rng(10)
    net_a, prm = build("n20-p12-k2-L4-W20", 10)
    net_b = dataclasses.replace(net_a, r_fx=r_fx)
    dut = RetrievalAccelerator(prm, net_a)
    queries = make_queries(rng, net_a, 3)
    raws = []

    async def tb(ctx):
        await drive(ctx, dut.i_load, load_payloads(prm, net_b), rng, 0.0)
        for q in queries:
            await drive(ctx, dut.i_query, [int_of(q)], rng, 0.2)
            raws.extend(await collect(ctx, dut.o_result, 1, rng, 0.2))

    run_sim(dut, tb)
    expected = expected_results(net_b, queries)
    check_results(prm, raws, expected, f"seed=10 r_fx={r_fx}")
    assert all((e[0] == (1 if r_fx < 0 else 0)).all() for e in expected)


@pytest.mark.parametrize("seed", [8, 9])
def test_load_waits_for_the_running_query(seed):
    """A load offered while a query runs is not accepted until its result has been delivered
    (``i_load.ready`` low), does not corrupt it, and goes before a query waiting with it."""
    rng = np.random.default_rng(seed)
    name = "n20-p12-k2-L4-W20"
    net_a, prm = build(name, seed)
    net_b = other_network(name, seed, net_a)
    dut = RetrievalAccelerator(prm, net_a)
    q1, q2 = make_queries(rng, net_a, 2)
    loads = load_payloads(prm, net_b)
    q_edges, r_edges, load_edges, ready_edges, raws = [], [], [], [], []

    async def queries(ctx):
        clock = Clock()
        await drive(ctx, dut.i_query, [int_of(q1)], clock=clock, transfers=q_edges)
        # q2 is offered right away and keeps waiting through the result and the load.
        await drive(ctx, dut.i_query, [int_of(q2)], clock=clock, transfers=q_edges)

    async def results(ctx):
        clock = Clock()
        while len(raws) < 2:
            # Heavy backpressure: the first result waits long in DONE.
            ready = int(rng.random() < 0.1)
            ctx.set(dut.o_result.ready, ready)
            valid, raw = await clock.tick(ctx, dut.o_result.valid,
                                          dut.o_result.payload.as_value())
            if valid and ready:
                raws.append(raw)
                r_edges.append(clock.edge)
        ctx.set(dut.o_result.ready, 0)

    async def loader(ctx):
        clock = Clock()
        while not q_edges:
            await clock.tick(ctx)
        # Back to back (no idle): the whole load goes before the waiting query.
        await drive(ctx, dut.i_load, loads, clock=clock, transfers=load_edges)

    async def monitor(ctx):
        clock = Clock()
        while True:
            (ready,) = await clock.tick(ctx, dut.i_load.ready)
            if ready:
                ready_edges.append(clock.edge)

    run_sim(dut, queries, results, loader, background=[monitor])
    what = f"seed={seed}"
    busy = range(q_edges[0] + 1, r_edges[0] + 1)
    assert not [e for e in ready_edges if e in busy], f"{what}: i_load.ready high while busy"
    assert load_edges[0] == r_edges[0] + 1, what
    assert q_edges[1] > load_edges[-1], f"{what}: the waiting query went before the load"
    check_results(prm, raws[:1], expected_results(net_a, q1[None]), f"{what} during load")
    check_results(prm, raws[1:], expected_results(net_b, q2[None]), f"{what} after load")


# The ridge network (slow) ----------------------------------------------------------------------

def ridge_network(seed):
    """N=100, P=300 (P/N = 3), gamma 0.02, 2-bit weights, trained with the default recipe."""
    patterns = random_patterns(np.random.default_rng(seed), 100, 300)
    alpha = train_klr(patterns, TrainConfig(gamma=0.02)).alpha
    return integer_network(patterns, alpha, 0.02, FixedConfig(weight_bits=2))


@pytest.mark.slow
def test_ridge_network():
    seed = 42
    rng = np.random.default_rng(seed)
    inet = ridge_network(seed)
    queries = noisy_queries(rng, inet, 5, flip=0.1)
    expected = expected_results(inet, queries)
    per_step = {}
    for lanes in (16, 8, 32):
        prm = params_for(inet, lanes=lanes)
        dut = RetrievalAccelerator(prm, inet)
        qs = queries if lanes == 16 else queries[:2]
        tbs, raws, q_edges, v_edges = stream_queries(dut, qs, rng, idle=0.3, stall=0.0)
        run_sim(dut, *tbs, max_cycles=1_000_000)
        what = f"ridge seed={seed} lanes={lanes}"
        check_results(prm, raws, expected[:len(qs)], what)
        cycles = measured_cycles(q_edges, v_edges)
        steps = [s for _, s, _ in expected[:len(qs)]]
        assert cycles == [prm.cycles_per_query(s) for s in steps], what
        per_step[lanes] = cycles[0] / steps[0]
        assert per_step[lanes] == prm.cycles_per_step, what
        assert per_step[lanes] <= 1.10 * prm.p * prm.blocks + 32, what
        print(f"lanes={lanes}: {per_step[lanes]:.0f} cycles/step, bound "
              f"{prm.bound_cycles_per_step}, limit {1.10 * prm.bound_cycles_per_step + 32:.0f}")


# Reset and load/query priority (the datasheet's "reset" and "priority", hw/export.py) -----------

class ResetBench(Elaboratable):
    """The accelerator in a ``sync`` domain whose reset a testbench drives (``bench.rst``)."""

    def __init__(self, dut):
        self.dut = dut
        self.domain = ClockDomain("sync")
        self.rst = self.domain.rst

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.domain
        m.submodules.dut = self.dut
        return m


async def edges_with_valid(ctx, dut, count):
    """Tick ``count`` edges with ``o_result.ready`` low; the edges at which ``valid`` was 1."""
    ctx.set(dut.o_result.ready, 0)
    seen = []
    for i in range(count):
        _, _, valid = await ctx.tick().sample(dut.o_result.valid)
        if valid:
            seen.append(i)
    return seen


async def pulse_reset(ctx, bench, edges=2):
    ctx.set(bench.rst, 1)
    for _ in range(edges):
        await ctx.tick()
    ctx.set(bench.rst, 0)


async def query_and_result(ctx, dut, query):
    """Send one query and take its result at once; ``(raw result, latency in edges)``."""
    ctx.set(dut.i_query.valid, 1)
    ctx.set(dut.i_query.payload, int_of(query))
    await ctx.tick().until(dut.i_query.ready)
    ctx.set(dut.i_query.valid, 0)
    edges = 0
    while not ctx.get(dut.o_result.valid):
        await ctx.tick()
        edges += 1
    raw = ctx.get(dut.o_result.payload.as_value())
    ctx.set(dut.o_result.ready, 1)
    await ctx.tick()
    ctx.set(dut.o_result.ready, 0)
    return raw, edges


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_reset_drops_a_running_query_and_keeps_the_memories(fraction):
    rng = np.random.default_rng(20)
    name = "n20-p12-k2-L4-W20"
    net_a, prm = build(name, 20)
    net_b = other_network(name, 20, net_a)
    dut = RetrievalAccelerator(prm, net_a)
    bench = ResetBench(dut)
    q1, q2 = make_queries(rng, net_b, 2)
    (_, s1, _), (e2_state, e2_steps, e2_conv) = expected_results(net_b, np.stack([q1, q2]))
    out = {}

    async def tb(ctx):
        await drive(ctx, dut.i_load, load_payloads(prm, net_b))      # memories differ from init
        ctx.set(dut.i_query.valid, 1)
        ctx.set(dut.i_query.payload, int_of(q1))
        await ctx.tick().until(dut.i_query.ready)
        ctx.set(dut.i_query.valid, 0)
        out["before"] = await edges_with_valid(ctx, dut, int(fraction * prm.cycles_per_query(s1)))
        await pulse_reset(ctx, bench)
        # The dropped query never yields a result.
        out["after"] = await edges_with_valid(ctx, dut, prm.cycles_per_query(s1) + 20)
        out["result"] = await query_and_result(ctx, dut, q2)

    run_sim(bench, tb)
    assert out["before"] == [] and out["after"] == [], "a result of the query cut by the reset"
    raw, latency = out["result"]
    # After the reset: net_b's result (memories and threshold kept), on the cycle model.
    check_results(prm, [raw], [(e2_state, e2_steps, e2_conv)], f"fraction={fraction}")
    assert latency == prm.cycles_per_query(e2_steps)


def test_reset_drops_a_result_waiting_for_ready():
    rng = np.random.default_rng(21)
    inet, prm = build("n23-p9-k1-L5-W7", 21)
    dut = RetrievalAccelerator(prm, inet)
    bench = ResetBench(dut)
    q1, q2 = make_queries(rng, inet, 2)
    (_, s1, _), expected2 = expected_results(inet, np.stack([q1, q2]))
    out = {}

    async def tb(ctx):
        ctx.set(dut.i_query.valid, 1)
        ctx.set(dut.i_query.payload, int_of(q1))
        await ctx.tick().until(dut.i_query.ready)
        ctx.set(dut.i_query.valid, 0)
        # The result waits (ready low) from the edge after cycles_per_query on.
        out["waiting"] = await edges_with_valid(ctx, dut, prm.cycles_per_query(s1) + 10)
        await pulse_reset(ctx, bench)
        out["valid_after_reset"] = ctx.get(dut.o_result.valid)
        out["after"] = await edges_with_valid(ctx, dut, 50)
        out["result"] = await query_and_result(ctx, dut, q2)

    run_sim(bench, tb)
    wait = prm.cycles_per_query(s1)
    assert out["waiting"] == list(range(wait, wait + 10)), "the result waits for ready"
    assert not out["valid_after_reset"] and out["after"] == [], "the reset drops the result"
    raw, latency = out["result"]
    check_results(prm, [raw], [expected2], "after the reset")
    assert latency == prm.cycles_per_query(expected2[1])


def test_load_wins_over_a_query_offered_on_the_same_edge():
    """Both offered in IDLE on the same edge: the load transfers, the query waits (ready low)
    until ``i_load.valid`` drops, and then runs with what was loaded."""
    rng = np.random.default_rng(22)
    inet, prm = build("n20-p12-k2-L4-W20", 22)
    dut = RetrievalAccelerator(prm, inet)
    (query,) = make_queries(rng, inet, 1)
    r_fx = -5000                        # every neuron fires: a result only the load explains
    words = [pack_load(prm, LoadTarget.THRESHOLD, a, w) for a, w in threshold_writes(prm, r_fx)]
    assert len(words) >= 3
    out = {}

    async def tb(ctx):
        await ctx.tick()
        ctx.set(dut.i_query.valid, 1)
        ctx.set(dut.i_query.payload, int_of(query))
        ctx.set(dut.i_load.valid, 1)
        handshakes = []
        for word in words:              # the load held valid for every threshold word
            ctx.set(dut.i_load.payload.as_value(), word)
            _, _, *ready = await ctx.tick().sample(dut.i_load.ready, dut.i_query.ready)
            handshakes.append(tuple(ready))
        ctx.set(dut.i_load.valid, 0)
        _, _, q_ready = await ctx.tick().sample(dut.i_query.ready)
        ctx.set(dut.i_query.valid, 0)
        out["handshakes"], out["query_taken"] = handshakes, q_ready
        out["busy_load_ready"] = ctx.get(dut.i_load.ready)
        edges = 0
        while not ctx.get(dut.o_result.valid):
            await ctx.tick()
            edges += 1
        out["raw"] = ctx.get(dut.o_result.payload.as_value())
        out["edges"] = edges

    run_sim(dut, tb)
    assert out["handshakes"] == [(1, 0)] * len(words), "the load transfers, the query is held off"
    assert out["query_taken"] == 1, "the query transfers once the load is gone"
    assert out["busy_load_ready"] == 0, "no load is accepted while a query runs"
    expected = expected_results(dataclasses.replace(inet, r_fx=r_fx), query[None])
    check_results(prm, [out["raw"]], expected, "load then query")
    assert (expected[0][0] == 1).all()
    assert out["edges"] == prm.cycles_per_query(expected[0][1])


def test_during_reset_a_query_is_lost_and_a_load_is_written():
    """With ``rst`` high the core is idle: both ``ready`` read 1, a query transferred then never
    gives a result, a load word transferred then is written."""
    rng = np.random.default_rng(23)
    inet, prm = build("n20-p12-k2-L4-W20", 23)
    dut = RetrievalAccelerator(prm, inet)
    bench = ResetBench(dut)
    q1, q2 = make_queries(rng, inet, 2)
    r_fx = -5000                        # every neuron fires
    words = [pack_load(prm, LoadTarget.THRESHOLD, a, w) for a, w in threshold_writes(prm, r_fx)]
    out = {}

    async def tb(ctx):
        ctx.set(bench.rst, 1)
        await ctx.tick()
        ctx.set(dut.i_query.valid, 1)
        ctx.set(dut.i_query.payload, int_of(q1))
        _, _, q_ready = await ctx.tick().sample(dut.i_query.ready)
        ctx.set(dut.i_query.valid, 0)
        ctx.set(dut.i_load.valid, 1)
        l_ready = 1
        for word in words:
            ctx.set(dut.i_load.payload.as_value(), word)
            _, _, ready = await ctx.tick().sample(dut.i_load.ready)
            l_ready &= ready
        ctx.set(dut.i_load.valid, 0)
        ctx.set(bench.rst, 0)
        out["ready"] = (q_ready, l_ready)
        out["after"] = await edges_with_valid(ctx, dut, prm.cycles_per_query(prm.max_steps) + 5)
        out["result"] = await query_and_result(ctx, dut, q2)

    run_sim(bench, tb)
    assert out["ready"] == (1, 1), "both streams transfer during a reset"
    assert out["after"] == [], "the query transferred during the reset gives no result"
    expected = expected_results(dataclasses.replace(inet, r_fx=r_fx), q2[None])
    check_results(prm, [out["result"][0]], expected, "the load during the reset was written")
    assert (expected[0][0] == 1).all()
