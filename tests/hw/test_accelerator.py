"""The retrieval accelerator top (hw/accelerator.py) against ``IntegerNetwork.retrieve``.

Every result (state bits, steps, converged) is compared in order, with ``batch`` 1, 2 and 4
queries in flight; the edge at which each result becomes valid must equal
:class:`khop.hw.timing.SlotTiming` (``cycles_per_query(steps)`` after the transfer when the
accelerator was idle), and a stream offered back to back must follow
:func:`khop.hw.timing.back_to_back`.
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
from khop.hw.timing import SlotTiming, back_to_back
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


BATCHES = [1, 2, 4]


def build(name, seed, batch=1, **kw):
    n, p, k, lanes, width, max_steps = CONFIGS[name]
    inet = tiny_network(n, p, seed, weight_bits=k, max_steps=max_steps, epochs=5, **kw)
    return inet, params_for(inet, lanes=lanes, popcount_width=width, batch=batch)


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


def stream_queries(dut, queries, rng, idle, stall, taken=None):
    """Testbenches offering ``queries`` and collecting their results concurrently.

    Returns ``(testbenches, raws, query_edges, valid_edges)``; the lists fill during the run
    (and ``taken``, if given, with the results' transfer edges).
    """
    raws, q_edges, v_edges = [], [], []

    async def source(ctx):
        await drive(ctx, dut.i_query, [int_of(q) for q in queries], rng, idle, q_edges)

    async def sink(ctx):
        raws.extend(await collect(ctx, dut.o_result, len(queries), rng, stall, v_edges,
                                  what="o_result", taken=taken))

    return [source, sink], raws, q_edges, v_edges


def predicted_valid(prm, q_edges, steps, taken):
    """:class:`SlotTiming`'s edge after which each result is valid (the first edge at which
    it is sampled valid, minus one), from the transfer edges and the previous result's taken
    edge."""
    timing = SlotTiming(prm)
    for edge, s in zip(q_edges, steps, strict=True):
        timing.transfer(edge, int(s))
    return [timing.result(None if i == 0 else taken[i - 1]) for i in range(len(steps))]


def measured_cycles(q_edges, v_edges):
    """Edges after a query's transfer edge until its result is seen valid.

    ``v_edges`` holds the edge at which the result was first *sampled* valid: it was seen
    valid right after the edge before.
    """
    return [(v - 1) - q for q, v in zip(q_edges, v_edges, strict=True)]


# Results against the model ----------------------------------------------------------------------

@pytest.mark.parametrize(("batch", "seed"), [(1, 1), (1, 2), (2, 1), (4, 2)])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_results_with_idle_and_backpressure(name, batch, seed):
    """Random idle cycles and heavy backpressure: every result equals the model, in order,
    and is valid exactly when :class:`SlotTiming` says (the slots wait for their results to be
    taken, later results for earlier ones)."""
    rng = np.random.default_rng(seed)
    inet, prm = build(name, seed, batch)
    dut = RetrievalAccelerator(prm, inet)
    queries = make_queries(rng, inet, 8 if batch == 1 else 2 * batch + 1)
    taken = []
    tbs, raws, q_edges, v_edges = stream_queries(dut, queries, rng, idle=0.5, stall=0.6,
                                                 taken=taken)
    run_sim(dut, *tbs)
    expected = expected_results(inet, queries)
    what = f"{name} batch={batch} seed={seed}"
    check_results(prm, raws, expected, what)
    steps = [s for _, s, _ in expected]
    assert [v - 1 for v in v_edges] == predicted_valid(prm, q_edges, steps, taken), what


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("idle", [0.0, 0.5])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_valid_edges_without_backpressure(name, idle, batch):
    """Back to back (``idle`` 0: the next query is always offered) or with idle gaps, and
    ``o_result`` always ready: every result is valid after the edge :class:`SlotTiming`
    predicts; with batch 1 that is ``cycles_per_query(steps)`` after its transfer, and back to
    back the stream's edges are :func:`back_to_back`'s."""
    seed = 3
    rng = np.random.default_rng(seed)
    inet, prm = build(name, seed, batch)
    dut = RetrievalAccelerator(prm, inet)
    queries = make_queries(rng, inet, 8 if batch == 1 else 2 * batch + 2)
    taken = []
    tbs, raws, q_edges, v_edges = stream_queries(dut, queries, rng, idle=idle, stall=0.0,
                                                 taken=taken)
    run_sim(dut, *tbs)
    expected = expected_results(inet, queries)
    what = f"{name} seed={seed} idle={idle} batch={batch}"
    check_results(prm, raws, expected, what)
    steps = [s for _, s, _ in expected]
    assert taken == v_edges, what                  # always ready: taken when first valid
    assert [v - 1 for v in v_edges] == predicted_valid(prm, q_edges, steps, taken), what
    if batch == 1:
        cycles = measured_cycles(q_edges, v_edges)
        assert cycles == [prm.cycles_per_query(s) for s in steps], what
    if idle == 0.0:
        if batch == 1:
            # The next query is taken in the cycle after its predecessor's result.
            assert [q - v for q, v in zip(q_edges[1:], v_edges, strict=False)] == \
                [1] * (len(queries) - 1), what
        # The stream's model, counted from the first transfer (edge 1 in back_to_back).
        model = back_to_back(prm, steps)
        origin = q_edges[0] - 1
        assert list(model.transfers) == [q - origin for q in q_edges], what
        assert list(model.valid) == [v - 1 - origin for v in v_edges], what
        assert model.cycles == taken[-1] - q_edges[0], what


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


@pytest.mark.parametrize("batch", [1, 2])
def test_empty_accelerator_loaded_at_run_time(batch):
    rng = np.random.default_rng(7)
    inet, prm = build("n30-p10-k4-L7-W4", 7, batch)
    dut = RetrievalAccelerator(prm)
    queries = make_queries(rng, inet, 4)
    raws = []

    async def tb(ctx):
        await drive(ctx, dut.i_load, load_payloads(prm, inet), rng, 0.2)
        if batch == 1:
            for q in queries:
                await drive(ctx, dut.i_query, [int_of(q)], rng, 0.2)
                raws.extend(await collect(ctx, dut.o_result, 1, rng, 0.2))
        else:
            await drive(ctx, dut.i_query, [int_of(q) for q in queries[:batch]], rng, 0.2)
            raws.extend(await collect(ctx, dut.o_result, batch, rng, 0.2))

    run_sim(dut, tb)
    n = len(queries) if batch == 1 else batch
    check_results(prm, raws, expected_results(inet, queries[:n]), f"seed=7 batch={batch}")


@pytest.mark.parametrize("batch", [1, 2])
def test_backpressure_check_catches_a_dropped_result(batch):
    """The fault ``drop_under_backpressure`` (a result presented for one cycle only): the
    backpressure test's sink sees a result vanish before its transfer (or never gets every
    result), so the run fails; the same run on the correct design passes. Shows that the
    checks above can fail."""
    seed = 1
    name = "n23-p9-k1-L5-W7"
    for fault in (None, "drop_under_backpressure"):
        rng = np.random.default_rng(seed)
        inet, prm = build(name, seed, batch)
        dut = RetrievalAccelerator(prm, inet, fault=fault)
        queries = make_queries(rng, inet, 2 * batch + 1)
        tbs, raws, _, _ = stream_queries(dut, queries, rng, idle=0.5, stall=0.9)
        limit = 20 * prm.cycles_per_query(prm.max_steps) * len(queries)
        if fault is None:
            run_sim(dut, *tbs, max_cycles=limit)
            check_results(prm, raws, expected_results(inet, queries), "no fault")
        else:
            # The sink's stream-rule check (valid held until the transfer) or the watchdog.
            with pytest.raises(AssertionError, match="valid dropped before the transfer|"
                                                     "payload changed before the transfer|"
                                                     "simulation still running"):
                run_sim(dut, *tbs, max_cycles=limit)


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


@pytest.mark.parametrize(("batch", "seed"), [(1, 8), (1, 9), (2, 8), (4, 9)])
def test_load_waits_until_every_slot_is_empty(batch, seed):
    """A load offered while ``batch`` queries are in flight is not accepted until the last of
    their results has been delivered (``i_load.ready`` low from the first transfer on), does
    not corrupt them, and goes before a query waiting with it."""
    rng = np.random.default_rng(seed)
    name = "n20-p12-k2-L4-W20"
    net_a, prm = build(name, seed, batch)
    net_b = other_network(name, seed, net_a)
    dut = RetrievalAccelerator(prm, net_a)
    *first, last = make_queries(rng, net_a, batch + 1)
    loads = load_payloads(prm, net_b)
    q_edges, r_edges, load_edges, ready_edges, raws = [], [], [], [], []

    async def queries(ctx):
        clock = Clock()
        await drive(ctx, dut.i_query, [int_of(q) for q in first], clock=clock,
                    transfers=q_edges)
        # The last query is offered right away and keeps waiting through the results and the
        # load.
        await drive(ctx, dut.i_query, [int_of(last)], clock=clock, transfers=q_edges)

    async def results(ctx):
        clock = Clock()
        while len(raws) < batch + 1:
            # Heavy backpressure: the results wait long.
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
        while len(q_edges) < batch:
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
    what = f"batch={batch} seed={seed}"
    assert q_edges[:batch] == list(range(q_edges[0], q_edges[0] + batch)), \
        f"{what}: the first queries fill the slots back to back"
    busy = range(q_edges[0] + 1, r_edges[batch - 1] + 1)
    assert not [e for e in ready_edges if e in busy], f"{what}: i_load.ready high while busy"
    assert load_edges[0] == r_edges[batch - 1] + 1, what
    assert q_edges[batch] > load_edges[-1], f"{what}: the waiting query went before the load"
    check_results(prm, raws[:batch], expected_results(net_a, np.stack(first)),
                  f"{what} during load")
    check_results(prm, raws[batch:], expected_results(net_b, last[None]), f"{what} after load")


# Query order with several slots ------------------------------------------------------------------

def long_and_short(inet, rng):
    """A query of at least 3 steps and one converging in 1 step (a fixed point: the final
    state of a converged retrieval)."""
    cands = random_states(rng, 200, inet.n)
    res = inet.retrieve(cands)
    long_q = cands[int(np.argmax(res.steps))]
    conv = np.flatnonzero(res.converged & (res.steps >= 2))
    short_q = res.states[conv[0]]
    assert int(inet.retrieve(long_q[None]).steps[0]) >= 3
    assert int(inet.retrieve(short_q[None]).steps[0]) == 1
    return long_q, short_q


@pytest.mark.parametrize("batch", [2, 4])
def test_results_in_query_order_when_a_later_query_finishes_first(batch):
    """A query of many steps, then one converging in one step: the second is decided first,
    but its result is presented only after the first's is taken (valid right after that
    edge, as :class:`SlotTiming` says), in query order."""
    seed = 25
    rng = np.random.default_rng(seed)
    inet, prm = build("n20-p12-k2-L4-W20", seed, batch)
    dut = RetrievalAccelerator(prm, inet)
    long_q, short_q = long_and_short(inet, rng)
    queries = np.stack([long_q, short_q])
    taken = []
    tbs, raws, q_edges, v_edges = stream_queries(dut, queries, rng, idle=0.0, stall=0.7,
                                                 taken=taken)
    run_sim(dut, *tbs)
    expected = expected_results(inet, queries)
    check_results(prm, raws, expected, f"batch={batch}")
    (_, s_long, _), (_, s_short, _) = expected
    assert s_short == 1 and s_long >= 3
    # The short query joins the first step or the next, so it is decided steps before the
    # long one ...
    assert q_edges[1] - q_edges[0] < prm.cycles_per_step
    # ... yet it is valid only after the long one's result is taken.
    assert v_edges[1] - 1 == taken[0] >= v_edges[0]
    # Decided long before: one step after joining, against the long query's three or more.
    assert v_edges[1] - q_edges[1] > 2 * prm.cycles_per_step
    assert [v - 1 for v in v_edges] == predicted_valid(prm, q_edges, [s_long, s_short], taken)


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
        assert [v - 1 for v in v_edges] == predicted_valid(prm, q_edges, steps, v_edges), what
        per_step[lanes] = cycles[0] / steps[0]
        assert per_step[lanes] == prm.cycles_per_step, what
        assert per_step[lanes] <= 1.10 * prm.p * prm.blocks + 32, what
        print(f"lanes={lanes}: {per_step[lanes]:.0f} cycles/step, bound "
              f"{prm.bound_cycles_per_step}, limit {1.10 * prm.bound_cycles_per_step + 32:.0f}")
    # Four queries in flight: the same results, each valid when SlotTiming says.
    prm = params_for(inet, lanes=16, batch=4)
    dut = RetrievalAccelerator(prm, inet)
    taken = []
    tbs, raws, q_edges, v_edges = stream_queries(dut, queries, rng, idle=0.0, stall=0.0,
                                                 taken=taken)
    run_sim(dut, *tbs, max_cycles=1_000_000)
    check_results(prm, raws, expected, f"ridge seed={seed} batch=4")
    steps = [s for _, s, _ in expected]
    assert [v - 1 for v in v_edges] == predicted_valid(prm, q_edges, steps, taken)


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


def idle_latency(prm, steps):
    """:class:`SlotTiming`'s edges from the transfer of a query that finds the accelerator
    idle to its result (``cycles_per_query(steps)`` with batch 1)."""
    timing = SlotTiming(prm)
    timing.transfer(1, steps)
    return timing.result() - 1


async def fill_slots(ctx, dut, prm, queries):
    """Offer ``queries`` back to back; their transfer edges, counted from this call."""
    edges = []
    await drive(ctx, dut.i_query, [int_of(q) for q in queries], transfers=edges)
    return edges


@pytest.mark.parametrize(("fraction", "batch"), [(0.05, 1), (0.5, 1), (0.95, 1), (0.5, 2),
                                                 (0.2, 4), (0.95, 4)])
def test_reset_drops_every_running_query_and_keeps_the_memories(fraction, batch):
    rng = np.random.default_rng(20)
    name = "n20-p12-k2-L4-W20"
    net_a, prm = build(name, 20, batch)
    net_b = other_network(name, 20, net_a)
    dut = RetrievalAccelerator(prm, net_a)
    bench = ResetBench(dut)
    *running, q_new = make_queries(rng, net_b, batch + 1)
    expected = expected_results(net_b, np.stack(running))
    (e_state, e_steps, e_conv), = expected_results(net_b, q_new[None])
    out = {}

    async def tb(ctx):
        await drive(ctx, dut.i_load, load_payloads(prm, net_b))      # memories differ from init
        ctx.set(dut.o_result.ready, 0)
        edges = await fill_slots(ctx, dut, prm, running)
        # Every slot holds a query; the first result would be valid after edge `first`.
        timing = SlotTiming(prm)
        for edge, (_, steps, _) in zip(edges, expected, strict=True):
            timing.transfer(edge, steps)
        first = timing.result() - edges[-1]
        longest = max(idle_latency(prm, steps) for _, steps, _ in expected)
        out["before"] = await edges_with_valid(ctx, dut, int(fraction * first))
        await pulse_reset(ctx, bench)
        # The dropped queries never yield a result.
        out["after"] = await edges_with_valid(ctx, dut, longest + 20)
        out["result"] = await query_and_result(ctx, dut, q_new)
        # ... nor after a new query's.
        out["later"] = await edges_with_valid(ctx, dut, longest + 20)

    run_sim(bench, tb)
    assert out["before"] == [] and out["after"] == [], "a result of a query cut by the reset"
    assert out["later"] == [], "a result of a query cut by the reset, after a new query"
    raw, latency = out["result"]
    # After the reset: net_b's result (memories and threshold kept), on the cycle model.
    check_results(prm, [raw], [(e_state, e_steps, e_conv)], f"fraction={fraction}")
    assert latency == idle_latency(prm, e_steps)
    if batch == 1:
        assert latency == prm.cycles_per_query(e_steps)


@pytest.mark.parametrize("batch", [1, 3])
def test_reset_drops_every_result_waiting_for_ready(batch):
    rng = np.random.default_rng(21)
    inet, prm = build("n23-p9-k1-L5-W7", 21, batch)
    dut = RetrievalAccelerator(prm, inet)
    bench = ResetBench(dut)
    *waiting, q_new = make_queries(rng, inet, batch + 1)
    expected = expected_results(inet, np.stack(waiting))
    expected_new = expected_results(inet, q_new[None])[0]
    out = {}

    async def tb(ctx):
        ctx.set(dut.o_result.ready, 0)
        edges = await fill_slots(ctx, dut, prm, waiting)
        timing = SlotTiming(prm)
        for edge, (_, steps, _) in zip(edges, expected, strict=True):
            timing.transfer(edge, steps)
        out["first"] = timing.result() - edges[-1]
        # Every query decided (ready low: the first result waits, the others behind it).
        longest = max(idle_latency(prm, steps) for _, steps, _ in expected)
        out["count"] = longest + 10
        out["waiting"] = await edges_with_valid(ctx, dut, out["count"])
        await pulse_reset(ctx, bench)
        out["valid_after_reset"] = ctx.get(dut.o_result.valid)
        out["after"] = await edges_with_valid(ctx, dut, 50)
        out["result"] = await query_and_result(ctx, dut, q_new)
        out["later"] = await edges_with_valid(ctx, dut, longest + 10)

    run_sim(bench, tb)
    # The first result is valid from the edge SlotTiming says on, and stays valid.
    assert out["waiting"] == list(range(out["first"], out["count"])), "the result waits"
    assert not out["valid_after_reset"] and out["after"] == [], "the reset drops the results"
    assert out["later"] == [], "a result dropped by the reset came back"
    raw, latency = out["result"]
    check_results(prm, [raw], [expected_new], "after the reset")
    assert latency == idle_latency(prm, expected_new[1])
    if batch == 1:
        assert latency == prm.cycles_per_query(expected_new[1])


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
