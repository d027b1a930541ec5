"""The exact timing of the accelerator's query slots: when each result is presented.

With ``batch`` slots, a query's latency depends on when it joins a step: the accelerator runs
*steps* (sweeps over every pattern, :attr:`~khop.hw.params.AccelParams.cycles_per_step` cycles
from the START cycle to the decision) back to back while a slot holds a running or waiting
query, and a query joins the next step after its transfer. Edges are numbered as in the
testbenches: a query is transferred at edge ``E``; its result is valid in the cycles after edge
``R`` (first sampled valid at edge ``R + 1``); it is taken at an edge ``T > R``.

- A *train* of steps starts when a query finds the accelerator idle (transferred at ``E``):
  its first step's START cycle follows edge ``S = E + join_cycles`` (a join window of
  ``batch - 1`` cycles, none for one slot: :attr:`~khop.hw.params.AccelParams.join_cycles`).
- A query transferred at edge ``E`` joins the first step of the train with ``S + 1 >= E``.
- Step k decides at edge ``D = S_k + cycles_per_step``. The train goes on if a query of it is
  still running after ``D`` or a query was transferred at ``D`` or before without joining;
  then ``S_{k+1} = D + rejoin_cycles`` if a query was decided at ``D`` (a join window of
  ``batch`` cycles for the replacements, none for one slot), else ``D``. Otherwise the train
  ends at ``D``, and a query transferred later starts a new one.
- A query of ``s`` steps that joined at ``S`` is decided at edge
  ``D = S + cycles_per_step + sum of the windows of the steps it spans after the first``.
- Results are presented in the order the queries came: ``R = max(D, T_prev)``, ``T_prev`` the
  edge at which the previous result was taken (``R = D`` for the first).

A query that finds the accelerator idle has ``R - E = join_cycles + steps * cycles_per_step``
(:meth:`~khop.hw.params.AccelParams.cycles_per_query`; ``steps * cycles_per_step`` with one
slot). The model is checked against the
hardware at every result in the Amaranth and cocotb testbenches.
"""

from dataclasses import dataclass

from .params import QUERY_HANDSHAKE_CYCLES, AccelParams

__all__ = ["SlotTiming", "StreamTiming", "back_to_back", "steady_rate"]


class SlotTiming:
    """Predicts each result's valid edge from the transfer edges seen so far (online).

    Call :meth:`transfer` for every query transfer (in order), then :meth:`result` for every
    result (in order) with the edge at which the previous result was taken. ``idle[q]`` says
    whether query q found the accelerator idle (it started a train: its latency is then
    exactly :meth:`idle_latency`, unless the result before it is still waiting to be taken);
    ``last_decided`` is the decision edge D of the last result asked for.
    """

    def __init__(self, params: AccelParams):
        self.cps = params.cycles_per_step
        self.join = params.join_cycles
        self.rejoin = params.rejoin_cycles
        self._start = None           # S of the current train's latest step, None: no train
        self._queries = []           # [index, steps left] of the current train's queries
        self._decided = []           # D of every query transferred, in order (None: unknown)
        self._next_result = 0
        self.idle = []
        self.last_decided = None     # D of the query of the last result()

    def idle_latency(self, steps):
        """Edges from the transfer of a query that finds the accelerator idle to its result
        (:meth:`~khop.hw.params.AccelParams.cycles_per_query`)."""
        return self.join + steps * self.cps

    def _running(self):
        return [q for q in self._queries if q[1] > 0]

    def _next_step(self):
        """Decide the current step: returns its decision edge D and whether a query of it
        ended there; the queries' remaining steps count down."""
        decision = self._start + self.cps
        ended = False
        for q in self._running():
            q[1] -= 1
            if q[1] == 0:
                self._decided[q[0]] = decision
                ended = True
        return decision, ended

    def transfer(self, edge, steps):
        """A query of ``steps`` steps transferred at ``edge``."""
        index = len(self._decided)
        self._decided.append(None)
        starts = self._start is None
        while not starts and edge > self._start + 1:
            decision, ended = self._next_step()
            if self._running() or edge <= decision:
                self._start = decision + (self.rejoin if ended else 0)
            else:
                starts = True
        if starts:
            self._start = edge + self.join
            self._queries = []
        self.idle.append(starts)
        self._queries.append([index, steps])

    def _settle(self):
        """Run the train on until every query transferred so far is decided (no more
        transfers can join it before then)."""
        while self._running():
            decision, ended = self._next_step()
            if self._running():
                self._start = decision + (self.rejoin if ended else 0)
            else:
                self._start = None

    def result(self, previous_taken=None):
        """The edge R after which the next result is valid (``previous_taken``: the edge at
        which the result before it was taken, ``None`` for the first)."""
        decided = self._decided[self._next_result]
        if decided is None:
            # Its train has not been simulated that far: nothing transferred since can still
            # change it, since the result is asked for after every transfer before it.
            saved = (self._start, [list(q) for q in self._queries], list(self._decided))
            self._settle()
            decided = self._decided[self._next_result]
            self._start, self._queries, self._decided = saved[0], saved[1], saved[2]
            self._decided[self._next_result] = decided
        self._next_result += 1
        self.last_decided = decided
        return decided if previous_taken is None else max(decided, previous_taken)


@dataclass(frozen=True)
class StreamTiming:
    """A stream of queries offered back to back with every result taken at once.

    ``transfers[q]`` and ``valid[q]`` are the edges of query q's transfer and of its result's
    first valid cycle (edge numbers of :class:`SlotTiming`); ``cycles`` the edges from the
    first transfer to the last result's transfer.
    """

    transfers: tuple
    valid: tuple

    @property
    def cycles(self):
        return self.valid[-1] + 1 - self.transfers[0]

    def retrievals_per_second(self, clock_hz):
        """Queries per second of the stream at ``clock_hz``: its count over its cycles."""
        return len(self.transfers) * clock_hz / self.cycles


def back_to_back(params: AccelParams, steps):
    """:class:`StreamTiming` of queries taking ``steps`` (a sequence) steps, offered back to back
    and their results taken at once: query q goes into slot ``q % batch`` once that slot's
    previous result is taken (one query per cycle), results leave in order."""
    timing = SlotTiming(params)
    batch = params.batch
    transfers, valid = [], []

    def next_result():
        valid.append(timing.result(None if not valid else valid[-1] + 1))

    for q, s in enumerate(steps):
        edge = 1 if q == 0 else transfers[-1] + 1
        if q >= batch:
            # The slot is free in the cycle after its result's transfer (edge R + 1): every
            # transfer before that one is known, so R is.
            while len(valid) <= q - batch:
                next_result()
            edge = max(edge, valid[q - batch] + QUERY_HANDSHAKE_CYCLES)
        transfers.append(edge)
        timing.transfer(edge, int(s))
    while len(valid) < len(transfers):
        next_result()
    return StreamTiming(tuple(transfers), tuple(valid))


def steady_rate(params: AccelParams, steps, count=None):
    """Retrievals per cycle of a long back-to-back stream whose queries take ``steps`` steps on
    average (a float: the stream mixes ``floor(steps)`` and ``ceil(steps)`` in proportion),
    measured between the results of its second quarter and its end (:func:`back_to_back`).
    With ``batch == 1`` this is ``1 / query_interval(steps)`` up to the rounding of the mix."""
    if not steps >= 1:
        raise ValueError(f"steps must be at least 1, not {steps!r}")
    count = 64 * params.batch + 64 if count is None else count
    low, frac = int(steps // 1), steps % 1
    seq, carry = [], 0.0
    for _ in range(count):
        carry += frac
        seq.append(low + (carry >= 1 - 1e-9))
        carry -= carry >= 1 - 1e-9
    timing = back_to_back(params, seq)
    first = count // 4
    return (count - 1 - first) / (timing.valid[-1] - timing.valid[first])
