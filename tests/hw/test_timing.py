"""The slot timing model (hw/timing.py), in pure Python: :class:`SlotTiming` and
:func:`back_to_back` against the rules their docstrings state. The hardware is checked against
the same model in test_accelerator.py; here each rule is checked on hand-made transfer edges,
so a change of one rule fails a test that names it.

Edges as in the testbenches: a query transferred at edge ``E``; its result valid after edge
``R``; taken at an edge ``T > R``.
"""

import numpy as np
import pytest
from hw_helpers import accel_params

from khop.hw.params import QUERY_HANDSHAKE_CYCLES
from khop.hw.timing import SlotTiming, StreamTiming, back_to_back


def params(batch, **kw):
    return accel_params(n=20, p=12, weight_bits=2, lanes=4, batch=batch, **kw)


def predict(prm, transfers, taken=None):
    """``[R]`` for queries ``[(E, steps)]``; ``taken[i]`` the edge result i is taken (default:
    right away, ``R + 1``)."""
    timing = SlotTiming(prm)
    for edge, steps in transfers:
        timing.transfer(edge, steps)
    out = []
    for i in range(len(transfers)):
        previous = None if i == 0 else (taken[i - 1] if taken else out[-1] + 1)
        out.append(timing.result(previous))
    return out


# Batch 1: the cycle model ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_batch_1_latency_is_cycles_per_query(seed):
    """One slot: every query finds the accelerator idle (the next is taken only after the
    previous result), and its result is valid ``cycles_per_query(steps)`` edges after its
    transfer, whatever the gaps and the time results wait."""
    rng = np.random.default_rng(seed)
    prm = params(1)
    timing = SlotTiming(prm)
    edge, taken = 5, None
    for _ in range(20):
        steps = int(rng.integers(1, 7))
        timing.transfer(edge, steps)
        r = timing.result(taken)
        assert r - edge == prm.cycles_per_query(steps) == steps * prm.cycles_per_step
        taken = r + 1 + int(rng.integers(0, 30))             # backpressure
        edge = taken + 1 + int(rng.integers(0, 30))          # the slot is free after that
    assert all(timing.idle)


def test_batch_1_back_to_back_is_the_query_interval():
    prm = params(1)
    steps = [3, 1, 4, 1, 5, 2]
    stream = back_to_back(prm, steps)
    assert isinstance(stream, StreamTiming)
    assert stream.transfers[0] == 1
    assert [v - e for e, v in zip(stream.transfers, stream.valid, strict=True)] == \
        [prm.cycles_per_query(s) for s in steps]
    assert list(np.diff(stream.transfers)) == [prm.query_interval(s) for s in steps[:-1]]
    assert QUERY_HANDSHAKE_CYCLES == 2
    # From the first transfer to the last result's transfer.
    assert stream.cycles == sum(prm.query_interval(s) for s in steps) - QUERY_HANDSHAKE_CYCLES + 1
    assert stream.retrievals_per_second(1e6) == pytest.approx(len(steps) * 1e6 / stream.cycles)


# The train rule --------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [2, 4])
def test_a_query_finding_the_accelerator_idle_starts_a_train(batch):
    """Its first step starts after a join window of ``batch - 1`` cycles (``S = E + batch - 1``)
    and it is decided ``steps`` steps later."""
    prm = params(batch)
    cps = prm.cycles_per_step
    for steps in (1, 3):
        timing = SlotTiming(prm)
        timing.transfer(100, steps)
        assert timing.result() == 100 + batch - 1 + steps * cps
        assert timing.idle == [True]
        assert timing.idle_latency(steps) == batch - 1 + steps * cps


@pytest.mark.parametrize("batch", [2, 4])
def test_queries_within_the_join_window_share_the_first_step(batch):
    """Transferred at ``E <= S + 1`` (the START cycle included): they join the train's first
    step and are decided together when their steps are equal."""
    prm = params(batch)
    cps = prm.cycles_per_step
    s0 = 100 + batch - 1                                     # S of the train
    transfers = [(100 + i, 3) for i in range(batch - 1)] + [(s0 + 1, 3)]
    assert predict(prm, transfers) == [s0 + 3 * cps] + [s0 + 3 * cps + 1 + i for i in
                                                         range(batch - 1)]
    timing = SlotTiming(prm)
    for edge, steps in transfers:
        timing.transfer(edge, steps)
    assert timing.idle == [True] + [False] * (batch - 1)


@pytest.mark.parametrize("batch", [2, 4])
def test_a_query_after_the_start_cycle_joins_the_next_step(batch):
    """Transferred at ``S + 2`` (after the START cycle): it joins the next step, which starts
    at the first step's decision ``S + cycles_per_step`` (no query ended there, no window)."""
    prm = params(batch)
    cps = prm.cycles_per_step
    s0 = 100 + batch - 1
    # q1 runs steps 2 and 3 and ends at S + 3 cps; q0 runs on, so its step 4 starts after a
    # window of batch cycles.
    r = predict(prm, [(100, 4), (s0 + 2, 2)])
    assert r[0] == s0 + 4 * cps + batch
    assert r[1] == r[0] + 1                      # decided earlier, waits for r[0]'s transfer
    # Joined at S + 1 instead, q1 runs steps 1 and 2.
    r = predict(prm, [(100, 4), (s0 + 1, 2)])
    assert r[0] == s0 + 4 * cps + batch
    # A 1-step first query ends at the first decision with q1 waiting to join: the next step
    # starts after a window of batch cycles.
    r = predict(prm, [(100, 1), (s0 + 2, 3)])
    d1 = s0 + cps
    assert r == [d1, d1 + batch + 3 * cps]


@pytest.mark.parametrize("batch", [2, 3])
def test_a_decision_that_frees_a_slot_opens_a_window_of_batch_cycles(batch):
    """Two queries in the first step; the 1-step one ends at the first decision D while the
    other runs on: the next step starts at ``D + batch``, once only; the long query spans it."""
    prm = params(batch)
    cps = prm.cycles_per_step
    s0 = 10 + batch - 1
    r = predict(prm, [(10, 4), (11, 1)], taken=None)
    d_short = s0 + cps
    assert r[0] == s0 + 4 * cps + batch
    # In order: the short one's result waits for the long one's to be taken (R0 + 1).
    assert d_short < r[0] and r[1] == r[0] + 1


@pytest.mark.parametrize("batch", [2, 4])
def test_a_train_ends_when_nothing_runs_and_a_later_query_starts_a_new_one(batch):
    prm = params(batch)
    cps = prm.cycles_per_step
    timing = SlotTiming(prm)
    timing.transfer(1, 2)
    d0 = timing.result()
    assert d0 == batch + 2 * cps
    # Transferred at the decision edge: it still joins the train (its next step); one edge
    # later the train is over and it starts a new one.
    at_d = SlotTiming(prm)
    at_d.transfer(1, 2)
    at_d.transfer(d0, 1)
    after = SlotTiming(prm)
    after.transfer(1, 2)
    after.transfer(d0 + 50, 1)
    assert at_d.idle == [True, False]
    assert after.idle == [True, True]
    assert after.result() == d0
    assert after.result(d0 + 1) == d0 + 50 + batch - 1 + cps


# The order rule --------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [3, 4])
def test_results_in_query_order(batch):
    """``R = max(D, T_prev)``: a short query decided before a long one waits for the long one's
    result to be taken; a result decided after its predecessor was taken is valid at D."""
    prm = params(batch)
    cps = prm.cycles_per_step
    timing = SlotTiming(prm)
    timing.transfer(1, 5)
    timing.transfer(2, 1)
    timing.transfer(3, 6)
    r0 = timing.result()
    t0 = r0 + 40                                             # the consumer waits 40 edges
    r1 = timing.result(t0)
    assert r1 == t0                                          # decided long before, waits
    t1 = r1 + 1
    r2 = timing.result(t1)
    # One step after the first, after the window its end opens.
    assert r2 > t1 and r2 - r0 == batch + cps
    # Taken later than D: R follows T.
    timing = SlotTiming(prm)
    timing.transfer(1, 2)
    timing.transfer(2, 2)
    d = timing.result()
    assert timing.result(d + 7) == d + 7


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_online_predictions_do_not_depend_on_when_they_are_asked(batch):
    """A result asked for between transfers (as a testbench does) equals the one asked for
    after every transfer: later transfers cannot change an earlier query's decision."""
    rng = np.random.default_rng(batch)
    prm = params(batch)
    for _ in range(20):
        count = 2 * batch + 2
        steps = rng.integers(1, 6, size=count).tolist()
        stream = back_to_back(prm, steps)
        transfers = list(zip(stream.transfers, steps, strict=True))
        late = predict(prm, transfers)
        assert late == list(stream.valid)


# back_to_back ---------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [2, 4])
def test_back_to_back_fills_the_slots_then_reuses_each_after_its_result(batch):
    prm = params(batch)
    steps = [3, 1, 2, 5, 1, 1, 4, 2, 3, 1][:2 * batch + 2]
    stream = back_to_back(prm, steps)
    t, v = stream.transfers, stream.valid
    assert list(t[:batch]) == list(range(1, batch + 1))      # one query per cycle
    for q in range(batch, len(steps)):
        # Slot q % batch is free the cycle after its previous result's transfer.
        assert t[q] == max(t[q - 1] + 1, v[q - batch] + QUERY_HANDSHAKE_CYCLES)
    assert list(v) == sorted(v) and len(set(v)) == len(v)    # in order, one per edge at most
    assert list(v) == predict(prm, list(zip(t, steps, strict=True)))


def test_a_batch_raises_the_throughput_of_a_long_stream():
    """The point of the batch: the ridge shape, 32 queries of 3 steps back to back take fewer
    cycles with 4 slots than with 1, although a step is longer."""
    def ridge(batch):
        return accel_params(n=100, p=300, weight_bits=2, lanes=16, batch=batch)

    steps = [3] * 32
    one, four = back_to_back(ridge(1), steps), back_to_back(ridge(4), steps)
    assert ridge(4).cycles_per_step > ridge(1).cycles_per_step
    assert four.cycles < 0.5 * one.cycles
    assert four.retrievals_per_second(1e6) > 2 * one.retrievals_per_second(1e6)
