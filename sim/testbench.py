"""cocotb testbench of ``khop_top``: clock, reset, stream drivers and monitor, scoreboard.

:class:`TB` owns the clock, the reset, a driver of ``i_query`` with idle cycles, a monitor of
``o_result`` with backpressure, a driver of ``i_load`` and an in-order :class:`Scoreboard`
holding the bit-exact integer model (:class:`model.fixed.IntegerNetwork`) as its oracle.

Timing discipline (identical in Verilator and Icarus): inputs are written just after a rising
edge, the handshake is sampled in the ``ReadOnly`` phase of the same time step, and a transfer
happens at the next rising edge when ``valid & ready`` was sampled high. Python only wakes on
edges that matter: a driver waiting for ``ready`` and the monitor waiting for ``valid`` sleep on
the signal's own rising edge, so a query of thousands of cycles costs a handful of wake-ups.
"""

import itertools
import logging
import random
import time
from collections import deque
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, ReadOnly, RisingEdge, Timer, with_timeout

from khop.hw.layout import load_words, pack_load, unpack_result
from khop.hw.params import AccelParams
from khop.hw.timing import SlotTiming
from khop.model.fixed import IntegerNetwork, pack_bits, unpack_bits

__all__ = ["PERIOD_NS", "edge_of", "flow_patterns", "Expected", "Scoreboard", "TB"]

#: Clock period of the testbench, ns.
PERIOD_NS = 10


def edge_of(t_ns):
    """The number of the rising edge at simulated time ``t_ns`` (edge 0 at time 0)."""
    return round(t_ns / PERIOD_NS)


def flow_patterns(flow, seed):
    """``(idle, ready)`` iterators of an idle/backpressure mode (:data:`sim.config.FLOWS`).

    ``idle`` yields, before each query, the number of cycles the driver keeps ``valid`` low
    while the accelerator waits for a query (0: the query is presented as soon as the previous
    one is taken, and so waits with ``valid`` high while the accelerator is busy). ``ready``
    yields the monitor's ``o_result.ready`` for each cycle in which a result is valid.
    """
    if flow == "none":
        return itertools.repeat(0), itertools.repeat(1)
    if flow == "cycle":
        return (itertools.cycle([0, 0, 1, 0, 3, 0, 2, 5]),
                itertools.cycle([1, 1, 0, 1, 0, 0, 1, 1, 1, 0]))
    idle_rng = random.Random(f"idle-{flow}-{seed}")
    ready_rng = random.Random(f"ready-{flow}-{seed}")
    if flow == "random":
        return ((0 if idle_rng.random() < 0.5 else idle_rng.randint(1, 4)
                 for _ in itertools.count()),
                (int(ready_rng.random() < 0.7) for _ in itertools.count()))
    if flow == "heavy":
        return ((idle_rng.randint(0, 30) for _ in itertools.count()),
                (int(ready_rng.random() < 0.15) for _ in itertools.count()))
    raise ValueError(f"unknown flow {flow!r}")


@dataclass
class Expected:
    """A query the accelerator has taken, and the integer model's result for it."""

    index: int            # query number within the test
    scenario: str
    query: int            # packed query bits (bit i = neuron i)
    state: int            # the model's final state, packed
    steps: int
    converged: bool
    target: int | None    # stored pattern the query was made from, if any
    target_state: int | None
    t_transfer: float     # ns, the clock edge that transferred the query
    idle: bool = True     # it found the accelerator idle (set by the scoreboard)


def _first_set_bit(x):
    return (x & -x).bit_length() - 1


class Scoreboard:
    """In-order comparison of every result with the integer model.

    Every field is compared: all n state bits, the step count and the converged flag; the
    edge at which each result becomes valid is compared with the slots' timing model
    (:class:`khop.hw.timing.SlotTiming`: with one query in flight, the transfer edge plus
    :meth:`AccelParams.cycles_per_query`).
    Mismatches are collected (the first few logged with the query index, the first differing
    neuron and the seed), so a run reports how many results were wrong.
    """

    def __init__(self, params: AccelParams, seed, log=None, on_result=None, max_logged=10):
        self.params = params
        self.seed = seed
        self.log = log or logging.getLogger("khop.scoreboard")
        self.on_result = on_result
        self.max_logged = max_logged
        self.pending = deque()
        self.mismatches = []          # messages, one per wrong result (or unexpected result)
        self.cycle_mismatches = []    # messages, one per result with an unexpected latency
        self.records = []             # (Expected, hw_state, hw_steps, hw_converged, latency)
        self.empty = Event()
        self.empty.set()
        self.timing = SlotTiming(params)
        self._last_taken = None       # edge at which the previous result was taken

    def expect(self, exp: Expected):
        self.pending.append(exp)
        self.empty.clear()
        self.timing.transfer(edge_of(exp.t_transfer), exp.steps)
        exp.idle = self.timing.idle[-1]

    def flush(self):
        """Forget the pending queries (after a reset, which empties every slot); returns
        them."""
        flushed = list(self.pending)
        self.pending.clear()
        self.empty.set()
        self.timing = SlotTiming(self.params)
        self._last_taken = None
        return flushed

    def _mismatch(self, msg):
        self.mismatches.append(msg)
        if len(self.mismatches) <= self.max_logged:
            self.log.error("%s", msg)

    def check(self, value, t_valid, t_taken):
        """Compare one ``o_result`` payload, valid since ``t_valid`` ns and taken at
        ``t_taken`` ns, with the next query."""
        state, steps, converged = unpack_result(self.params, value)
        if not self.pending:
            self._mismatch(f"unexpected result (no query pending): state 0x{state:x}, "
                           f"steps {steps}, converged {converged} at {t_valid:.0f} ns "
                           f"(seed {self.seed})")
            return
        e = self.pending.popleft()
        if not self.pending:
            self.empty.set()
        latency = edge_of(t_valid) - edge_of(e.t_transfer)
        want_edge = self.timing.result(self._last_taken)
        self._last_taken = edge_of(t_taken)
        # Only a query that found the accelerator idle, whose steps had no join window for
        # other queries and whose result did not wait for the one before it times the steps.
        e.idle = (e.idle and want_edge == self.timing.last_decided
                  and want_edge - edge_of(e.t_transfer)
                  == self.params.cycles_per_query(e.steps))
        self.records.append((e, state, steps, converged, latency))
        problems = []
        if state != e.state:
            i = _first_set_bit(state ^ e.state)
            problems.append(f"state differs first at neuron {i} (hardware {state >> i & 1}, "
                            f"model {e.state >> i & 1}; "
                            f"{bin(state ^ e.state).count('1')} bits differ)")
        if steps != e.steps:
            problems.append(f"steps: hardware {steps}, model {e.steps}")
        if converged != e.converged:
            problems.append(f"converged: hardware {converged}, model {e.converged}")
        if problems:
            self._mismatch(f"query {e.index} ({e.scenario}, seed {self.seed}): "
                           + "; ".join(problems) + f"; query 0x{e.query:x}")
        else:
            want = want_edge - edge_of(e.t_transfer)
            if latency != want:
                msg = (f"query {e.index} ({e.scenario}, seed {self.seed}): result valid "
                       f"{latency} edges after the transfer, the cycle model says {want} "
                       f"({e.steps} steps, batch {self.params.batch})")
                self.cycle_mismatches.append(msg)
                if len(self.cycle_mismatches) <= self.max_logged:
                    self.log.error("%s", msg)
        if self.on_result is not None:
            self.on_result()

    def report(self, limit=5):
        """A short text naming the first mismatches, for an assertion message."""
        lines = self.mismatches[:limit] + self.cycle_mismatches[:limit]
        more = len(self.mismatches) + len(self.cycle_mismatches) - len(lines)
        return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))

    def stats(self):
        """Figures of the checked results: counts, steps, latency, recall against targets."""
        n = self.params.n
        steps = sum(r[2] for r in self.records)
        # Cycles per step are measured on the queries that found the accelerator idle (their
        # latency is join_cycles + steps * cycles_per_step by the model; the measured figure,
        # less the join window, is the hardware's own), and whose result is right.
        timed = [r for r in self.records if r[2] == r[0].steps and r[0].idle]
        join = self.params.join_cycles
        out = {"results": len(self.records), "mismatches": len(self.mismatches),
               "cycle_mismatches": len(self.cycle_mismatches), "steps": steps,
               "timed_steps": sum(r[2] for r in timed),
               "latency_cycles": sum(r[4] - join for r in timed),
               "recall_bits": 0, "recall_hw_equal": 0, "recall_model_equal": 0,
               "recall_queries": 0, "exact_hw": 0, "exact_model": 0}
        with_target = [r for r in self.records if r[0].target is not None]
        if with_target:
            tgt = unpack_bits([r[0].target_state for r in with_target], n)
            hw = unpack_bits([r[1] for r in with_target], n)
            mdl = unpack_bits([r[0].state for r in with_target], n)
            out.update(recall_bits=int(tgt.size), recall_hw_equal=int((hw == tgt).sum()),
                       recall_model_equal=int((mdl == tgt).sum()),
                       recall_queries=len(with_target),
                       exact_hw=int(np.all(hw == tgt, axis=1).sum()),
                       exact_model=int(np.all(mdl == tgt, axis=1).sum()))
        return out


class TB:
    """Testbench of ``khop_top`` (ports of :func:`hw.export.describe`).

    Parameters
    ----------
    dut : cocotb handle of ``khop_top``
    params : AccelParams
    model : IntegerNetwork
        The network in the accelerator's memories; :meth:`load` replaces both.
    seed : int
        Seed of the flow patterns, reported with every mismatch.
    flow : str
        Idle/backpressure mode, see :func:`flow_patterns`.
    on_result : callable or None
        Called after every checked result (progress reporting).
    """

    def __init__(self, dut, params: AccelParams, model: IntegerNetwork, *, seed=0, flow="none",
                 on_result=None):
        self.dut = dut
        self.params = params
        self.model = model
        self.seed = seed
        self.flow = flow
        self.log = logging.getLogger("cocotb.khop.tb")
        self.idle, self.ready = flow_patterns(flow, seed)
        self.scoreboard = Scoreboard(params, seed, self.log, on_result)
        self.clock = Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi")
        self.accepting = True          # the monitor may raise o_result.ready
        self.sent = 0
        self.query_transfers = []      # ns of every query transfer edge
        self.result_transfers = []     # ns of every result transfer edge
        self.load_done_at = None       # ns of the last load's final transfer edge
        self.load_offered_at = None    # ns at which the last load was first offered
        self._monitor = None
        self._t0 = 0.0
        self._wall0 = 0.0
        self._cpu0 = 0.0

    # Time ------------------------------------------------------------------------------------

    @staticmethod
    def now():
        return get_sim_time("ns")

    async def edges(self, count):
        """Wait ``count`` rising edges; long waits cost one timer, not ``count`` wake-ups."""
        clk = self.dut.clk
        if count > 4:
            await Timer((count - 1) * PERIOD_NS + PERIOD_NS // 2, "ns")
            count = 1
        for _ in range(count):
            await RisingEdge(clk)

    async def _wait_high(self, signal):
        """Return in a ``ReadOnly`` phase in which ``signal`` is 1 (a transfer at the next edge
        when the matching ``valid`` is high)."""
        while True:
            await ReadOnly()
            if int(signal.value):
                return
            await RisingEdge(signal)

    # Setup -----------------------------------------------------------------------------------

    async def start(self, reset_cycles=2):
        """Drive every input to its idle value, start the clock, reset, start the monitor."""
        d = self.dut
        d.rst.value = 1
        d.i_query__valid.value = 0
        d.i_query__payload.value = 0
        d.o_result__ready.value = 0
        d.i_load__valid.value = 0
        d.i_load__payload.value = 0
        cocotb.start_soon(self.clock.start())
        await self.reset(reset_cycles)
        self._monitor = cocotb.start_soon(self._monitor_results())
        self._t0 = self.now()
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()

    async def reset(self, cycles=2):
        """Hold ``rst`` for ``cycles`` rising edges (synchronous reset); queries in flight are
        lost, so the caller flushes the scoreboard."""
        d = self.dut
        d.i_query__valid.value = 0
        d.i_load__valid.value = 0
        d.rst.value = 1
        await self.edges(cycles)
        d.rst.value = 0

    # Query driver ----------------------------------------------------------------------------

    async def send(self, queries, *, scenario, targets=None, idle=None):
        """Drive 0/1 ``queries`` (Q, n) into ``i_query``, one after another.

        The model's results are computed in one batch with the network loaded now; a query
        taken after a :meth:`load` is recomputed with the new network. ``targets`` (Q,) are the
        stored patterns the queries were made from (for recall). ``idle`` overrides the flow's
        idle pattern (an iterator of idle cycles). Returns when the last query is transferred.
        """
        d = self.dut
        bits = np.atleast_2d(np.asarray(queries, dtype=np.uint8))
        idle = self.idle if idle is None else idle
        model = self.model
        res = model.retrieve(bits)
        packed = pack_bits(bits)
        states = pack_bits(res.states)
        tstates = None if targets is None else pack_bits(model.patterns[np.asarray(targets)])
        for j, q in enumerate(packed):
            gap = next(idle)
            if gap:
                d.i_query__valid.value = 0
                await self._wait_high(d.i_query__ready)
                await self.edges(gap)
            d.i_query__payload.value = q
            d.i_query__valid.value = 1
            await self._wait_high(d.i_query__ready)
            await RisingEdge(d.clk)
            t = self.now()
            self.query_transfers.append(t)
            if self.model is model:
                state, steps, conv = states[j], int(res.steps[j]), bool(res.converged[j])
            else:  # the network was reloaded while this query waited
                r = self.model.retrieve(bits[j:j + 1])
                state, steps, conv = (pack_bits(r.states)[0], int(r.steps[0]),
                                      bool(r.converged[0]))
            target = None if targets is None else int(targets[j])
            tstate = None
            if targets is not None:
                tstate = (tstates[j] if self.model is model
                          else pack_bits(self.model.patterns[target])[0])
            self.scoreboard.expect(Expected(self.sent, scenario, q, state, steps, conv, target,
                                            tstate, t))
            self.sent += 1
        d.i_query__valid.value = 0

    # Result monitor --------------------------------------------------------------------------

    async def _monitor_results(self):
        d = self.dut
        valid, ready, payload, rst = (d.o_result__valid, d.o_result__ready, d.o_result__payload,
                                      d.rst)
        t_first = None
        while True:
            await ReadOnly()
            if int(valid.value) and not int(rst.value):
                if t_first is None:
                    t_first = self.now()
                if int(ready.value):
                    value = int(payload.value)
                    await RisingEdge(d.clk)
                    self.result_transfers.append(self.now())
                    self.scoreboard.check(value, t_first, self.now())
                    t_first = None
                else:
                    await RisingEdge(d.clk)
            else:
                t_first = None
                await RisingEdge(valid)
            ready.value = next(self.ready) if self.accepting else 0

    async def drain(self, slack_cycles=2000):
        """Wait until every query taken has its result, with a generous simulated timeout."""
        if not self.scoreboard.pending:
            return
        per_query = self.params.cycles_per_query(self.params.max_steps) + slack_cycles
        limit = (len(self.scoreboard.pending) + 1) * per_query * PERIOD_NS
        await with_timeout(self.scoreboard.empty.wait(), limit, "ns")

    # Load driver -----------------------------------------------------------------------------

    async def load(self, inet: IntegerNetwork):
        """Write every word of ``inet`` through ``i_load`` (``valid`` held high throughout, so no
        query slips in between two words); the model follows at the last transfer."""
        d = self.dut
        prm = self.params
        words = load_words(prm, inet)
        d.i_load__valid.value = 1
        self.load_offered_at = self.now()
        for target, addr, value in words:
            d.i_load__payload.value = pack_load(prm, target, addr, value)
            await self._wait_high(d.i_load__ready)
            await RisingEdge(d.clk)
        d.i_load__valid.value = 0
        self.model = inet
        self.load_done_at = self.now()
        return len(words)

    # Figures ---------------------------------------------------------------------------------

    def stats(self):
        out = self.scoreboard.stats()
        out.update(sent=self.sent, flow=self.flow, seed=self.seed,
                   simulated_cycles=round((self.now() - self._t0) / PERIOD_NS),
                   wall_seconds=time.perf_counter() - self._wall0,
                   cpu_seconds=time.process_time() - self._cpu0)
        return out
