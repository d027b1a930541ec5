"""The formal harness of :class:`khop.hw.accelerator.RetrievalAccelerator`.

:class:`AcceleratorHarness` wraps the accelerator, drives every input with ``AnySeq`` (reset
included), assumes the stream rules on the inputs (docs/datasheet.md, "Ports") and asserts the
contract groups of :data:`GROUPS` on the outputs, from a harness that watches the ports only:

- ``outstanding``: a query was transferred and its result not yet (cleared by a reset);
- ``since``: edges after that query's transfer edge E0 (0 in the cycle after E0), frozen while
  its result is presented: the result is presented from the cycle after edge
  ``E0 + steps * cycles_per_step`` (docs/datasheet.md, "Timing"), so ``since`` is then
  ``steps * cycles_per_step``;
- the previous cycle's valid, ready and payload of every stream (Amaranth has no ``Past``).

With ``invariants`` (:class:`khop.formal.invariants.Invariants`) it also asserts the mined
white-box invariants, which make the contract k-inductive.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import (
    Assert,
    Assume,
    Cat,
    ClockDomain,
    Cover,
    Elaboratable,
    Fragment,
    Module,
    Signal,
)

from khop.hw.accelerator import RetrievalAccelerator
from khop.hw.layout import LoadTarget
from khop.hw.params import AccelParams

from .invariants import phases, registers

__all__ = ["GROUPS", "COVERS", "AcceleratorHarness"]

#: The contract groups (issue 14's list; docs/datasheet.md is the contract):
#: ``stream``: a presented result stays presented, its payload steady, until taken;
#: ``order``: a result only for a transferred query, one per query, none while none runs, and a
#: query is only taken while none runs (so results come out in order);
#: ``load``: a load word is only taken while no query runs, never on the same edge as a query,
#: holds queries off while offered, and the memories are written only by a taken load word;
#: ``latency``: a result is presented exactly ``steps * cycles_per_step`` cycles after its
#: query's transfer edge whatever the backpressure, ``1 <= steps <= max_steps``, and
#: ``converged = 0`` only with ``steps = max_steps``;
#: ``reset``: after a reset the core is idle and presents no result until a query is taken;
#: ``ties`` (functional): with an all-zero lookup table every neuron ties, so the result is the
#: query itself after one step, converged.
GROUPS = ("stream", "order", "load", "latency", "reset", "ties")

#: Reachability goals (``Cover``): a result, a load, a result after ``max_steps`` steps that did
#: not converge.
COVERS = ("result", "load", "nonconverged")


class AcceleratorHarness(Elaboratable):
    """The accelerator with its environment and the properties of ``groups`` / ``covers``.

    Parameters
    ----------
    params : AccelParams
    groups : iterable of str
        Contract groups asserted (:data:`GROUPS`).
    covers : iterable of str
        Cover goals (:data:`COVERS`).
    invariants : Invariants or None
        Mined white-box invariants to assert too (needed for k-induction).
    fault : str or None
        A test-only fault of the design (:data:`khop.hw.sign_update.FAULTS`).
    """

    def __init__(self, params: AccelParams, groups=(), covers=(), invariants=None, fault=None):
        unknown = set(groups) - set(GROUPS) | set(covers) - set(COVERS)
        if unknown:
            self._MustUse__silence = True   # never elaborated: no "created but never used"
            raise ValueError(f"unknown properties {sorted(unknown)}")
        self.params = params
        self.groups = frozenset(groups)
        self.covers = frozenset(covers)
        self.invariants = invariants
        self.fault = fault
        self.sync = ClockDomain("sync")

    @property
    def ports(self):
        """The top's ports: the clock (every other input is ``AnySeq``)."""
        return [self.sync.clk]

    def elaborate(self, platform):
        m = Module()
        prm = self.params
        dut = RetrievalAccelerator(prm, fault=self.fault)
        frag = Fragment.get(dut, platform)
        m.submodules.dut = frag
        m.domains.sync = sync = self.sync
        rst = Signal()
        m.d.comb += [rst.eq(AnySeq(1)), sync.rst.eq(rst)]
        q, r, ld = dut.i_query, dut.o_result, dut.i_load
        m.d.comb += [q.valid.eq(AnySeq(1)), q.payload.eq(AnySeq(prm.n)),
                     r.ready.eq(AnySeq(1)), ld.valid.eq(AnySeq(1)),
                     ld.payload.eq(AnySeq(len(ld.payload.as_value())))]

        q_xfer, r_xfer, l_xfer = Signal(), Signal(), Signal()
        m.d.comb += [q_xfer.eq(q.valid & q.ready & ~rst), r_xfer.eq(r.valid & r.ready & ~rst),
                     l_xfer.eq(ld.valid & ld.ready & ~rst)]

        # The previous cycle (harness registers, reset-less: they describe the past).
        prev = {name: Signal(len(sig), name=f"prev_{name}", reset_less=True) for name, sig in (
            ("rst", rst), ("q_valid", q.valid), ("q_ready", q.ready),
            ("q_payload", q.payload), ("l_valid", ld.valid), ("l_ready", ld.ready),
            ("l_payload", ld.payload.as_value()), ("r_valid", r.valid), ("r_ready", r.ready),
            ("r_payload", r.payload.as_value()))}
        now = {"rst": rst, "q_valid": q.valid, "q_ready": q.ready, "q_payload": q.payload,
               "l_valid": ld.valid, "l_ready": ld.ready, "l_payload": ld.payload.as_value(),
               "r_valid": r.valid, "r_ready": r.ready, "r_payload": r.payload.as_value()}
        has_past = Signal(init=0, reset_less=True)
        m.d.sync += [has_past.eq(1), *(prev[k].eq(now[k]) for k in prev)]

        # Environment: the stream rules on the inputs; no valid input while in reset.
        m.d.comb += Assume(~(rst & (q.valid | ld.valid)))
        with m.If(has_past & ~prev["rst"]):
            with m.If(prev["q_valid"] & ~prev["q_ready"]):
                m.d.comb += Assume(q.valid & (q.payload == prev["q_payload"]))
            with m.If(prev["l_valid"] & ~prev["l_ready"]):
                m.d.comb += Assume(ld.valid & (ld.payload.as_value() == prev["l_payload"]))
        if "ties" in self.groups:
            # An all-zero lookup table (its initial contents, and only zeros written).
            m.d.comb += Assume(~(ld.valid & (ld.payload.target == LoadTarget.LUT)
                                 & (ld.payload.data != 0)))

        # The harness's view of a query.
        lq = prm.max_steps * prm.cycles_per_step
        outstanding = Signal()
        since = Signal(range(lq + 1))
        query = Signal(prm.n)
        with m.If(r_xfer):
            m.d.sync += outstanding.eq(0)
        with m.If(q_xfer):
            m.d.sync += [outstanding.eq(1), since.eq(0), query.eq(q.payload)]
        with m.Elif(outstanding & ~r.valid & (since < lq)):
            m.d.sync += since.eq(since + 1)

        res = r.payload
        g = self.groups
        if "stream" in g:
            with m.If(has_past & ~prev["rst"] & prev["r_valid"] & ~prev["r_ready"]):
                m.d.comb += Assert(r.valid & (res.as_value() == prev["r_payload"]))
        if "order" in g or "reset" in g:
            m.d.comb += Assert(~r.valid | outstanding)
        if "order" in g:
            m.d.comb += [Assert(~(q_xfer & outstanding & ~r_xfer)),
                         Assert(~(q.ready & outstanding))]
        if "load" in g:
            m.d.comb += [Assert(~(l_xfer & outstanding)), Assert(~(l_xfer & q_xfer)),
                         Assert(~(ld.ready & outstanding)),
                         Assert(~(ld.valid & q.ready))]
            for en in _write_enables(frag):
                m.d.comb += Assert(~en | (ld.valid & ld.ready))
        if "latency" in g:
            cps = prm.cycles_per_step
            with m.If(outstanding & ~r.valid):
                m.d.comb += Assert(since < lq)
            with m.If(outstanding & r.valid):
                m.d.comb += [Assert(since == res.steps * cps),
                             Assert((res.steps >= 1) & (res.steps <= prm.max_steps)),
                             Assert(res.converged | (res.steps == prm.max_steps))]
        if "reset" in g:
            with m.If(has_past & prev["rst"]):
                m.d.comb += Assert(~r.valid & ld.ready & ~outstanding)
        if "ties" in g:
            with m.If(outstanding & r.valid):
                m.d.comb += Assert((res.state == query) & (res.steps == 1) & res.converged)

        if "result" in self.covers:
            m.d.comb += Cover(r_xfer)
        if "load" in self.covers:
            m.d.comb += Cover(l_xfer & (ld.payload.target == LoadTarget.WEIGHT))
        if "nonconverged" in self.covers:
            m.d.comb += Cover(r_xfer & ~res.converged)

        if self.invariants is not None:
            # The harness's own invariants (the timing of a query as the phases see it), then
            # the mined ones of the design.
            with m.If(outstanding & ~r.valid):
                m.d.comb += Assert(since < lq)
            with m.If(outstanding & r.valid):
                m.d.comb += Assert(since == res.steps * prm.cycles_per_step)
            m.d.comb += Assert(~r.valid | outstanding)
            self._assert_invariants(m, frag, outstanding, since, r.valid)
        return m

    def _assert_invariants(self, m, frag, outstanding, since, valid):
        inv = self.invariants
        regs = registers(frag)
        names = ["/".join((*p, s.name)) for p, s in regs]
        if names != inv.names:
            raise ValueError("the invariants were mined on another design")
        n_phases = phases(self.params)
        phase = Signal(range(n_phases))
        with m.If(~outstanding):
            m.d.comb += phase.eq(0)
        with m.Elif(valid):
            m.d.comb += phase.eq(n_phases - 1)
        with m.Else():
            m.d.comb += phase.eq(since + 1)
        for ph, row in enumerate(inv.table):
            if not row:
                continue
            lhs = Cat(*(regs[i][1] for i in sorted(row)))
            value = 0
            shift = 0
            for i in sorted(row):
                value |= row[i] << shift
                shift += len(regs[i][1])
            with m.If(phase == ph):
                m.d.comb += Assert(lhs == value)


def _write_enables(fragment):
    """The write enables of the accelerator's memories: the signals named ``*write__en`` that
    its top fragment drives."""
    out = []
    for stmt in fragment.statements.get("comb", []):
        for sig in stmt._lhs_signals():
            if sig.name.endswith("write__en") and all(sig is not o for o in out):
                out.append(sig)
    if not out:
        raise ValueError("no memory write enables found in the accelerator")
    return out
