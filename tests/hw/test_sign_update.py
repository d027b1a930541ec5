"""Sign-update FSM (hw/sign_update.py) driven as the controller, with a fake MAC array.

The testbench plays the MAC array: on every ``o_start`` it computes ``(T, S_K)`` for each
slot's state in ``o_state`` (from the integer model or a hand-made function), presents the
slots' ``S_K`` on ``i_sum_k`` and the ``blocks * batch`` beats of ``T`` on ``i_sums``, block-major,
slot-minor (beat ``(b, j)``: slot j's ``T`` of neurons ``b*L ..``), after a random delay and
with random gaps. The FSM reads its thresholds from a real threshold memory (:class:`Bench`),
which the testbench writes through its write port between queries.
"""

import dataclasses

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from hw_helpers import (
    Clock,
    accel_params,
    bits_of,
    collect,
    drive,
    int_of,
    lanes_of,
    noisy_queries,
    pack_lanes,
    params_for,
    random_states,
    rejected,
    run_sim,
    tiny_network,
)

from khop.hw.layout import threshold_writes, unpack_result
from khop.hw.sign_update import SignUpdate
from khop.hw.threshold_memory import ThresholdMemory


class Bench(wiring.Component):
    """The FSM and its threshold memory; every member of the FSM but ``thresholds`` is
    forwarded, plus ``threshold_write`` (the memory's write port)."""

    def __init__(self, prm, *, fault=None):
        self.fsm = SignUpdate(prm, fault=fault)
        self.tmem = ThresholdMemory(prm)
        super().__init__({})
        for name in ("i_query", "o_result", "i_hold", "o_idle", "o_start", "o_state", "i_sums",
                     "i_sum_k"):
            setattr(self, name, getattr(self.fsm, name))
        self.threshold_write = self.tmem.write

    def elaborate(self, platform):
        m = Module()
        m.submodules.fsm = self.fsm
        m.submodules.tmem = self.tmem
        wiring.connect(m, self.fsm.thresholds, self.tmem.read)
        return m


async def set_thresholds(ctx, dut, prm, r_fx):
    """Write the thresholds ``r_fx`` (one per neuron, or one for all) while the FSM is idle."""
    port = dut.threshold_write
    for addr, value in threshold_writes(prm, r_fx):
        ctx.set(port.addr, addr)
        ctx.set(port.data, value)
        ctx.set(port.en, 1)
        await ctx.tick()
    ctx.set(port.en, 0)


def sum_beats(prm, ts, rng=None):
    """The ``blocks * batch`` beats of the slots' ``T`` (``ts[j]``: slot j's n values), block-major,
    slot-minor: lane l of beat ``b * batch + j`` = slot j's neuron ``b*L + l``; past n: zero,
    or random garbage when ``rng`` is given (the FSM must ignore it)."""
    pad = prm.blocks * prm.lanes - prm.n
    padded = [list(t) + ([0] * pad if rng is None else
                         rng.integers(0, 2 ** prm.acc_bits, size=pad).tolist()) for t in ts]
    assert len(padded) == prm.batch
    return [pack_lanes(padded[j][b * prm.lanes:(b + 1) * prm.lanes], prm.acc_bits)
            for b in range(prm.blocks) for j in range(prm.batch)]


def slot_states(dut, prm, ctx):
    """Every slot's state on ``o_state`` (0/1 vectors)."""
    raw = ctx.get(dut.o_state.as_value())
    return [bits_of(v, prm.n) for v in lanes_of(raw, prm.n, prm.batch)]


def fake_mac(dut, prm, sums_fn, rng, starts, *, delay=6, idle=0.3, garbage=True, by_slot=False):
    """Background testbench playing the MAC array for the FSM ``dut``.

    ``sums_fn(state_bits) -> (T, S_K)`` for every slot (``sums_fn(state_bits, slot)`` with
    ``by_slot``). ``i_sum_k`` holds garbage until the first beat is offered and the slots'
    ``S_K`` from then until the next ``o_start``, like the real array. Every ``o_start`` is
    appended to ``starts`` as the slots' states it was given (read after the START edge, as the
    distance units do: a query taken in the START cycle is in it).
    """
    async def tb(ctx):
        clock = Clock()
        while True:
            (start,) = await clock.tick(ctx, dut.o_start)
            if not start:
                continue
            states = slot_states(dut, prm, ctx)
            starts.append(states)
            sums = [sums_fn(st, j) if by_slot else sums_fn(st) for j, st in enumerate(states)]
            ctx.set(dut.i_sum_k.as_value(), int(rng.integers(0, 2 ** (prm.sum_bits * prm.batch))))
            for _ in range(int(rng.integers(0, delay + 1))):
                await clock.tick(ctx)
                # No second start while this sweep runs.
                assert not ctx.get(dut.o_start), "o_start during a sweep"
            ctx.set(dut.i_sum_k.as_value(), pack_lanes([s for _, s in sums], prm.sum_bits))
            await drive(ctx, dut.i_sums, sum_beats(prm, [t for t, _ in sums],
                                                   rng if garbage else None),
                        rng, idle, clock=clock)
    return tb


def model_sums(inet):
    def fn(state):
        t, s = inet.sums(state)
        return t[0].tolist(), int(s[0])
    return fn


async def run_query(ctx, dut, prm, query, r_fx, rng, idle, stall, what):
    """Write the thresholds, offer one query (random idle), take its result (random stalls)."""
    await set_thresholds(ctx, dut, prm, r_fx)
    await drive(ctx, dut.i_query, [int_of(query)], rng, idle)
    (raw,) = await collect(ctx, dut.o_result, 1, rng, stall, what=what)
    state, steps, conv = unpack_result(prm, raw)
    return bits_of(state, prm.n), steps, conv


async def stream(ctx, dut, prm, queries, rng, idle, stall, *, edges=None):
    """Offer ``queries`` in order (random idle cycles) while taking their results (random
    stalls) in one loop, so queries are offered while results wait; returns the decoded
    results ``(state bits, steps, converged)``. With ``edges`` (a dict), the edges of the query
    transfers (``"query"``) and of the result transfers (``"result"``) are recorded, and
    ``o_idle`` as sampled at every edge (``"idle"``, edge e at index e - 1)."""
    clock = Clock()
    pending = [int_of(q) for q in queries]
    got, q_edges, r_edges, idle_seen = [], [], [], []
    while len(got) < len(queries):
        ready = 1 if not stall or rng.random() >= stall else 0
        ctx.set(dut.o_result.ready, ready)
        offer = bool(pending) and (not idle or rng.random() >= idle)
        ctx.set(dut.i_query.valid, int(offer))
        if offer:
            ctx.set(dut.i_query.payload, pending[0])
        q_ready, r_valid, raw, o_idle = await clock.tick(
            ctx, dut.i_query.ready, dut.o_result.valid, dut.o_result.payload.as_value(),
            dut.o_idle)
        idle_seen.append(o_idle)
        if offer and q_ready:
            pending.pop(0)
            q_edges.append(clock.edge)
        if r_valid and ready:
            got.append(raw)
            r_edges.append(clock.edge)
    ctx.set(dut.i_query.valid, 0)
    ctx.set(dut.o_result.ready, 0)
    if edges is not None:
        edges.update(query=q_edges, result=r_edges, idle=idle_seen)
    return [(bits_of(st, prm.n), steps, conv) for st, steps, conv in
            (unpack_result(prm, raw) for raw in got)]


def check(results, expected, what):
    for i, ((state, steps, conv), exp) in enumerate(zip(results, expected, strict=True)):
        e_state, e_steps, e_conv = exp
        tag = f"{what} query {i}"
        np.testing.assert_array_equal(state, e_state, err_msg=tag)
        assert (steps, conv) == (e_steps, e_conv), tag


# Against the integer model ----------------------------------------------------------------------

CONFIGS = [
    # (n, p, k, lanes): lanes dividing n, not dividing n (padding), lanes == n, lanes == 1.
    (20, 12, 2, 4),
    (23, 9, 1, 5),
    (17, 8, 3, 17),
    (10, 5, 4, 1),
]


def thresholds(inet, rng):
    """The model's own r_fx, random ones near it (non-trivial dynamics), the corners of the
    signed range ``[-2^R, 2^(k+R)]`` (every neuron decided the same way), and thresholds that
    differ per neuron: near the model's, and drawn from the corners and random values."""
    frac, k = inet.config.threshold_frac_bits, inet.config.weight_bits
    lo, hi = -(2 ** frac), 2 ** (k + frac)
    r_fx = inet.r_fx
    near = [np.clip(r_fx + rng.integers(-(2 ** frac) // 4, 2 ** frac // 4), lo, hi)
            for _ in range(4)]
    per_neuron = [np.clip(r_fx + rng.integers(-(2 ** frac) // 4, 2 ** frac // 4, size=inet.n),
                          lo, hi) for _ in range(4)]
    corners = np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi])
    mixed = [np.where(rng.random(inet.n) < 0.5, rng.choice(corners, size=inet.n),
                      rng.integers(lo, hi + 1, size=inet.n)) for _ in range(2)]
    return ([r_fx] * 4 + near + [lo, -1, 0, 1, hi - 1, hi] + per_neuron + mixed)


def model_expected(inet, query, r_fx):
    res = dataclasses.replace(inet, r_fx=r_fx).retrieve(query[None])
    return res.states[0], int(res.steps[0]), bool(res.converged[0])


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("n", "p", "k", "lanes", "units"),
                         [(*c, u) for c, u in zip(CONFIGS, [None, 2, 5, 1], strict=True)])
def test_results_match_the_integer_model(seed, n, p, k, lanes, units):
    """Batch 1, one query at a time, each with its own thresholds."""
    rng = np.random.default_rng(seed)
    inet = tiny_network(n, p, seed, weight_bits=k, max_steps=4, epochs=3)
    prm = params_for(inet, lanes=lanes, threshold_units=units)
    assert prm.batch == 1
    dut = Bench(prm)
    rs = thresholds(inet, rng)
    queries = np.concatenate([noisy_queries(rng, inet, len(rs) // 2),
                              random_states(rng, len(rs) - len(rs) // 2, n)])
    expected = []
    for q, r in zip(queries, rs, strict=True):
        res = dataclasses.replace(inet, r_fx=r).retrieve(q[None])
        expected.append((res.states[0], int(res.steps[0]), bool(res.converged[0])))
    results, starts = [], []

    async def tb(ctx):
        for i, (q, r) in enumerate(zip(queries, rs, strict=True)):
            idle, stall = [(0.0, 0.0), (0.5, 0.5), (0.2, 0.8)][i % 3]
            results.append(await run_query(ctx, dut, prm, q, r, rng, idle, stall,
                                           f"seed={seed} query {i}"))

    run_sim(dut, tb, background=[fake_mac(dut, prm, model_sums(inet), rng, starts)])
    check(results, expected, f"seed={seed}")
    # One o_start per step, nothing more.
    assert len(starts) == sum(e[1] for e in expected), f"seed={seed}"


@pytest.mark.parametrize(("batch", "seed"), [(2, 3), (3, 4)])
@pytest.mark.parametrize(("n", "p", "k", "lanes", "units"),
                         [(*c, u) for c, u in zip(CONFIGS, [None, 2, 5, 1], strict=True)])
def test_batched_results_match_the_integer_model(batch, seed, n, p, k, lanes, units):
    """``batch`` slots kept busy: for each threshold, ``batch + 1`` queries streamed (random
    idle cycles, random stalls of the results) while the fake MAC array presents every slot's
    beats block-major, slot-minor with that slot's ``S_K``; results in query order."""
    rng = np.random.default_rng(seed)
    inet = tiny_network(n, p, seed, weight_bits=k, max_steps=4, epochs=3)
    prm = params_for(inet, lanes=lanes, threshold_units=units, batch=batch)
    dut = Bench(prm)
    rs = thresholds(inet, rng)[::2]
    count = batch + 1
    groups = [np.concatenate([noisy_queries(rng, inet, count // 2),
                              random_states(rng, count - count // 2, n)]) for _ in rs]
    expected = [[model_expected(inet, q, r) for q in qs] for qs, r in zip(groups, rs,
                                                                          strict=True)]
    results, starts, group_starts = [], [], []

    async def tb(ctx):
        for g, (qs, r) in enumerate(zip(groups, rs, strict=True)):
            idle, stall = [(0.0, 0.0), (0.5, 0.5), (0.2, 0.8)][g % 3]
            await set_thresholds(ctx, dut, prm, r)
            first = len(starts)
            results.append(await stream(ctx, dut, prm, qs, rng, idle, stall))
            assert ctx.get(dut.o_idle), "idle once every result is taken"
            group_starts.append(len(starts) - first)

    run_sim(dut, tb, background=[fake_mac(dut, prm, model_sums(inet), rng, starts)],
            max_cycles=400_000)
    for g, (res, exp) in enumerate(zip(results, expected, strict=True)):
        check(res, exp, f"seed={seed} batch={batch} group {g}")
        # Queries share the steps: at least the longest query's steps, at most one per step.
        steps = [e[1] for e in exp]
        assert max(steps) <= group_starts[g] <= sum(steps), f"group {g}"
    assert sum(group_starts) < sum(e[1] for exp in expected for e in exp), "no step shared"


# Hand-made sums ---------------------------------------------------------------------------------

N, LANES = 10, 4           # 3 beats, the last one with 2 padding lanes
TIE, GT, LT = range(0, 4), range(4, 7), range(7, 10)


def small_params(max_steps=30, batch=1):
    return accel_params(n=N, p=12, weight_bits=2, lanes=LANES, max_steps=max_steps, batch=batch)


def constant_sums(t_tie, s):
    """T = t_tie on the tie neurons, one more on GT, one less on LT, whatever the state."""
    t = [t_tie] * N
    for i in GT:
        t[i] = t_tie + 1
    for i in LT:
        t[i] = t_tie - 1
    return lambda state: (t, s)


def run_queries(dut, prm, sums_fn, r_fx, queries, seed, *, garbage=True):
    rng = np.random.default_rng(seed)
    results, starts = [], []

    async def tb(ctx):
        for i, q in enumerate(queries):
            results.append(await run_query(ctx, dut, prm, q, r_fx, rng, 0.3, 0.3,
                                           f"seed={seed} query {i}"))

    run_sim(dut, tb, background=[fake_mac(dut, prm, sums_fn, rng, starts, garbage=garbage)])
    return results, starts


# (r_fx, S_K, T at a tie): T * 2^16 == r_fx * S_K exactly.
TIES = [
    (3 * 2 ** 14, 4000, 3000),          # r = 0.75
    (2 ** 18, 1000, 4000),              # r = 4 = 2^k, the top of the range
    (5 * 2 ** 15 + 2 ** 13, 8000, 21000),   # r = 2.625
]


def tie_queries(seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 2, N, dtype=np.uint8)
    q[list(TIE)] = [0, 1, 0, 1]
    return [q, 1 - q, np.zeros(N, np.uint8), np.ones(N, np.uint8)]


def tie_expected(q):
    e = q.copy()
    e[list(GT)] = 1
    e[list(LT)] = 0
    steps = 1 if np.array_equal(e, q) else 2
    return e, steps, True


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize(("r_fx", "s", "t_tie"), TIES)
def test_tie_keeps_the_bit_gt_sets_lt_clears(r_fx, s, t_tie, batch):
    assert t_tie * 2 ** 16 == r_fx * s
    prm = small_params(batch=batch)
    queries = tie_queries(11)
    results, _ = run_queries(Bench(prm), prm, constant_sums(t_tie, s), r_fx, queries, 11)
    check(results, [tie_expected(q) for q in queries], f"seed=11 r_fx={r_fx}")


def test_zero_threshold_ties_on_zero_sums():
    # r = 0: theta = 0, so T = 0 is a tie (keeps) and any T > 0 sets the neuron.
    prm = small_params()
    t = [0] * 4 + [1] * 6
    queries = tie_queries(12)
    results, _ = run_queries(Bench(prm), prm, lambda state: (t, 500), 0, queries, 12)
    expected = []
    for q in queries:
        e = q.copy()
        e[4:] = 1
        expected.append((e, 1 if np.array_equal(e, q) else 2, True))
    check(results, expected, "seed=12 r_fx=0")


@pytest.mark.parametrize(("r_fx", "s", "t_tie"), TIES[:1])
def test_fault_tie_sets_one_is_caught(r_fx, s, t_tie):
    prm = small_params()
    queries = tie_queries(13)
    dut = Bench(prm, fault="tie_sets_one")
    results, _ = run_queries(dut, prm, constant_sums(t_tie, s), r_fx, queries, 13)
    expected = [tie_expected(q) for q in queries]
    # The check of the correct FSM fails on the faulty one ...
    with pytest.raises(AssertionError):
        check(results, expected, "seed=13 fault")
    # ... because every tie neuron came out 1, also those whose query bit was 0.
    tie = list(TIE)
    for state, _, _ in results:
        np.testing.assert_array_equal(state[tie], np.ones(len(tie), np.uint8))
    assert sum(int(np.sum(q[tie] == 0)) for q in queries) >= 4


def test_unknown_fault_is_rejected():
    rejected(ValueError, "fault must be None or one of tie_sets_one, drop_under_backpressure, "
                         "not 'x'",
             lambda: SignUpdate(small_params(), fault="x"))


@pytest.mark.parametrize(("garbage", "batch"), [(False, 1), (True, 1), (True, 3)])
def test_negative_threshold_sets_all_and_padding_stays_zero(garbage, batch):
    # theta < 0 <= T * 2^R: every neuron becomes 1, but the 2 padding lanes of the last beat
    # must stay 0, or the step would count as a change: an all-ones query converges in 1 step.
    prm = small_params(batch=batch)
    assert prm.blocks * prm.lanes > prm.n
    rng = np.random.default_rng(14)
    queries = [np.ones(N, np.uint8), rng.integers(0, 2, N, dtype=np.uint8)]
    t = rng.integers(0, 2 ** 10, N).tolist()
    for r_fx in (-(2 ** 16), -1):
        results, starts = run_queries(Bench(prm), prm, lambda state: (t, 700), r_fx,
                                      queries, 14, garbage=garbage)
        check(results, [(np.ones(N, np.uint8), 1, True), (np.ones(N, np.uint8), 2, True)],
              f"seed=14 r_fx={r_fx}")
        assert len(starts) == 3


def flipping_sums(state):
    """Every neuron's T is above the threshold iff it is 0 now: every step flips every bit."""
    return [501 if b == 0 else 499 for b in state], 1000


@pytest.mark.parametrize(("max_steps", "batch"), [(1, 1), (4, 1), (5, 1), (5, 2)])
def test_max_steps_stops_without_convergence(max_steps, batch):
    prm = small_params(max_steps, batch)
    queries = tie_queries(15)
    r_fx = 2 ** 15                               # r = 0.5: theta = 500 * 2^16
    results, starts = run_queries(Bench(prm), prm, flipping_sums, r_fx, queries, 15)
    expected = [(q if max_steps % 2 == 0 else 1 - q, max_steps, False) for q in queries]
    check(results, expected, f"seed=15 max_steps={max_steps}")
    assert len(starts) == max_steps * len(queries)


def test_fixed_point_converges_in_one_step():
    prm = small_params(3)
    queries = tie_queries(16)
    keeping = lambda state: ([501 if b else 499 for b in state], 1000)   # noqa: E731
    results, _ = run_queries(Bench(prm), prm, keeping, 2 ** 15, queries, 16)
    check(results, [(q, 1, True) for q in queries], "seed=16")


def test_result_held_under_backpressure_and_next_query_waits():
    prm = small_params()
    rng = np.random.default_rng(17)
    dut = Bench(prm)
    q1, q2 = tie_queries(17)[:2]
    t_tie, s = 3000, 4000
    seen = {}

    async def tb(ctx):
        await set_thresholds(ctx, dut, prm, 3 * 2 ** 14)
        await drive(ctx, dut.i_query, [int_of(q1)])
        while not ctx.get(dut.o_result.valid):
            assert not ctx.get(dut.o_idle)
            await ctx.tick()
        held = ctx.get(dut.o_result.payload.as_value())
        # Keep ready low for 40 cycles while the next query is offered.
        ctx.set(dut.i_query.valid, 1)
        ctx.set(dut.i_query.payload, int_of(q2))
        for _ in range(40):
            assert ctx.get(dut.o_result.valid)
            assert ctx.get(dut.o_result.payload.as_value()) == held
            assert not ctx.get(dut.i_query.ready)
            await ctx.tick()
        ctx.set(dut.o_result.ready, 1)
        await ctx.tick()
        ctx.set(dut.o_result.ready, 0)
        # IDLE again: the waiting query is taken at the next edge.
        assert ctx.get(dut.o_idle) and ctx.get(dut.i_query.ready)
        await ctx.tick()
        ctx.set(dut.i_query.valid, 0)
        assert not ctx.get(dut.o_idle)
        seen["first"] = unpack_result(prm, held)
        (raw,) = await collect(ctx, dut.o_result, 1, rng, 0.5, what="second")
        seen["second"] = unpack_result(prm, raw)

    run_sim(dut, tb, background=[fake_mac(dut, prm, constant_sums(t_tie, s), rng, [])])
    for key, q in (("first", q1), ("second", q2)):
        state, steps, conv = seen[key]
        e_state, e_steps, e_conv = tie_expected(q)
        assert (bits_of(state, N).tolist(), steps, conv) == (e_state.tolist(), e_steps, e_conv)


def test_hold_blocks_queries_while_idle():
    prm = small_params()
    rng = np.random.default_rng(18)
    dut = Bench(prm)
    q = tie_queries(18)[0]

    async def tb(ctx):
        await set_thresholds(ctx, dut, prm, 3 * 2 ** 14)
        ctx.set(dut.i_hold, 1)
        ctx.set(dut.i_query.valid, 1)
        ctx.set(dut.i_query.payload, int_of(q))
        for _ in range(10):
            assert ctx.get(dut.o_idle) and not ctx.get(dut.i_query.ready)
            await ctx.tick()
        ctx.set(dut.i_hold, 0)
        assert ctx.get(dut.i_query.ready)
        await ctx.tick()
        ctx.set(dut.i_query.valid, 0)
        (raw,) = await collect(ctx, dut.o_result, 1, rng, 0.0, what="held query")
        state, steps, conv = unpack_result(prm, raw)
        e_state, e_steps, e_conv = tie_expected(q)
        assert (bits_of(state, N).tolist(), steps, conv) == (e_state.tolist(), e_steps, e_conv)

    run_sim(dut, tb, background=[fake_mac(dut, prm, constant_sums(3000, 4000), rng, [])])


@pytest.mark.parametrize(("seed", "units"), [(19, None), (20, 1), (21, 3), (22, 2)])
def test_per_neuron_ties_and_neighbours(seed, units):
    """Each neuron its own threshold, and T exactly at its tie or one off: ``T 2^R`` equal to,
    above or below ``r_i S_K``, with exact ties (``r_i S_K`` a multiple of ``2^R``) and
    near-ties (a nonzero fraction: ``T = floor`` is below, ``floor + 1`` above)."""
    rng = np.random.default_rng(seed)
    prm = accel_params(n=N, p=12, weight_bits=2, lanes=LANES, threshold_units=units)
    frac = prm.threshold_frac_bits
    lo, hi = prm.threshold_range
    s = int(rng.integers(2 ** 10, 2 ** 13)) * 8          # a multiple of 8: more exact ties
    queries = tie_queries(seed)
    expected, rs, ts = [], [], []
    for _ in queries:
        r = rng.integers(lo, hi + 1, size=N)
        exact = rng.random(N) < 0.5
        r[exact] = (r[exact] >> 13) << 13                   # r S_K / 2^16 an integer
        r[:2] = [lo, hi]
        r = np.clip(r, max(lo, 0), hi)                      # T >= 0 must be able to tie
        floor = (r * s) >> frac
        t = np.clip(floor + rng.integers(-1, 2, size=N), 0, None)
        rs.append(r)
        ts.append(t)
    results, starts = [], []

    async def tb(ctx):
        for i, (q, r) in enumerate(zip(queries, rs, strict=True)):
            state_fn["t"] = ts[i].tolist()
            results.append(await run_query(ctx, dut, prm, q, r, rng, 0.3, 0.3,
                                           f"seed={seed} query {i}"))

    state_fn = {}
    dut = Bench(prm)
    run_sim(dut, tb, background=[fake_mac(dut, prm, lambda st: (state_fn["t"], s), rng,
                                          starts)])
    for q, r, t in zip(queries, rs, ts, strict=True):
        lhs, rhs = t.astype(object) * 2 ** frac, r.astype(object) * s
        e = np.where(lhs > rhs, 1, np.where(lhs < rhs, 0, q)).astype(np.uint8)
        expected.append((e, 1 if np.array_equal(e, q) else 2, True))
        assert (lhs == rhs).any() and (lhs != rhs).any()
    check(results, expected, f"seed={seed} units={units}")


# Several slots --------------------------------------------------------------------------------

def test_each_slot_uses_its_own_sum_k():
    """Three queries in flight, slot j with ``S_K = 1000, 3000, 5000`` and ``T`` at (or one off)
    its own tie ``S_K / 2`` (r = 1/2): the tie rule holds per slot only if every beat is
    compared with its own slot's ``S_K``; another slot's would set or clear every neuron."""
    prm = small_params(batch=3)
    rng = np.random.default_rng(31)
    dut = Bench(prm)
    s_by_slot = [1000, 3000, 5000]

    def sums(state, slot):
        return constant_sums(s_by_slot[slot] // 2, s_by_slot[slot])(state)

    queries = tie_queries(31) + tie_queries(32)
    out = {}

    async def tb(ctx):
        await set_thresholds(ctx, dut, prm, 2 ** 15)
        out["results"] = await stream(ctx, dut, prm, queries, rng, 0.0, 0.2)

    starts = []
    run_sim(dut, tb, background=[fake_mac(dut, prm, sums, rng, starts, by_slot=True)])
    check(out["results"], [tie_expected(q) for q in queries], "seed=31")
    # The queries shared steps (8 queries of 1 or 2 steps in fewer sweeps).
    assert len(starts) < sum(tie_expected(q)[1] for q in queries)


def test_results_in_query_order_and_a_slot_is_reused_after_its_result():
    """Batch 2: query 0 (slot 0) never converges and runs ``max_steps`` steps, query 1 (slot 1)
    converges in one. Query 1 finishes first, but its result comes after query 0's; query 2
    goes into slot 0 again, so it is taken only after query 0's result; ``o_idle`` stays low
    while any slot holds a query or a result."""
    max_steps = 5
    prm = small_params(max_steps, batch=2)
    rng = np.random.default_rng(33)
    dut = Bench(prm)

    def sums(state, slot):
        if slot == 0:
            return flipping_sums(state)
        return [501 if b else 499 for b in state], 1000          # a fixed point

    queries = tie_queries(33)[:3]
    out, starts = {}, []

    async def tb(ctx):
        await set_thresholds(ctx, dut, prm, 2 ** 15)
        edges = {}
        out["results"] = await stream(ctx, dut, prm, queries, rng, 0.0, 0.0, edges=edges)
        out["edges"] = edges

    run_sim(dut, tb, background=[fake_mac(dut, prm, sums, rng, starts, by_slot=True)])
    q0, q1, q2 = queries
    flipped = 1 - q0 if max_steps % 2 else q0
    check(out["results"], [(flipped, max_steps, False), (q1, 1, True),
                           (1 - q2 if max_steps % 2 else q2, max_steps, False)], "seed=33")
    q_edges, r_edges = out["edges"]["query"], out["edges"]["result"]
    assert r_edges == sorted(r_edges)
    # Query 1 joins within query 0's first steps, so it is decided long before query 0 ...
    assert q_edges[1] < q_edges[0] + 10
    # ... query 2 waits for slot 0: taken after query 0's result, and not before.
    assert q_edges[2] > r_edges[0]
    # Idle until the first query's transfer edge, busy from then until the last result's.
    idle = out["edges"]["idle"]
    assert all(idle[:q_edges[0]]) and not any(idle[q_edges[0]:r_edges[-1]]), \
        "o_idle high while a slot holds something"


def test_hold_blocks_a_free_slot_while_another_runs():
    """``i_hold`` (a load waiting) keeps ``i_query.ready`` low even with a free slot."""
    prm = small_params(batch=2)
    rng = np.random.default_rng(34)
    dut = Bench(prm)
    q0, q1 = tie_queries(34)[:2]
    out = {}

    async def tb(ctx):
        await set_thresholds(ctx, dut, prm, 3 * 2 ** 14)
        await drive(ctx, dut.i_query, [int_of(q0)])
        ctx.set(dut.i_hold, 1)
        ctx.set(dut.i_query.valid, 1)
        ctx.set(dut.i_query.payload, int_of(q1))
        ready = []
        for _ in range(10):
            await ctx.tick()
            ready.append(ctx.get(dut.i_query.ready))
        ctx.set(dut.i_hold, 0)
        out["held"] = ready
        out["ready_after"] = ctx.get(dut.i_query.ready)
        await ctx.tick()
        ctx.set(dut.i_query.valid, 0)
        raws = await collect(ctx, dut.o_result, 2, rng, 0.3)
        out["results"] = [(bits_of(st, N), steps, conv) for st, steps, conv in
                          (unpack_result(prm, r) for r in raws)]

    run_sim(dut, tb, background=[fake_mac(dut, prm, constant_sums(3000, 4000), rng, [])])
    assert out["held"] == [0] * 10 and out["ready_after"] == 1
    check(out["results"], [tie_expected(q0), tie_expected(q1)], "seed=34")
