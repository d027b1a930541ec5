"""The formal harness of the UART frame bridge (:class:`khop.boards.bridge.Bridge`).

The bridge receives an arbitrary byte sequence; the accelerator behind it is abstract: its
streams obey the stream rules and it answers or takes a word within ``stall`` cycles, as does
the transmitter (assumptions). Two properties (:data:`BRIDGE_GROUPS`):

- ``replies``: at most one reply per received frame. Replies are counted on ``o_tx`` (a reply
  is ``END``, the escaped body, ``END``: no ``END`` inside), frames where the frame parser
  presents them to the executor (a white-box handshake: the parser's ``o_frame.valid`` rising).
- ``live``: no deadlock. After ``prefix`` cycles of arbitrary received bytes (any values but
  the probe's request id, any gaps) and ``idle`` cycles of silence, a valid STATUS request with
  that id is received, one byte per cycle; its reply (``END``, ``0x81``, the id) must be on
  ``o_tx`` within ``deadline`` cycles. As the id is not in the prefix, no earlier frame can be
  answered with it. Bounded: proven by BMC to the depth of the whole scenario.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, ClockDomain, Elaboratable, Fragment, Module, Signal

from khop.boards.bridge import Bridge
from khop.boards.protocol import END, REPLY, Command, encode_frame
from khop.hw.params import AccelParams

from .invariants import registers

__all__ = ["BRIDGE_GROUPS", "PROBE_ID", "PREFIX", "IDLE", "DEADLINE", "live_depth",
           "BridgeHarness"]

BRIDGE_GROUPS = ("replies", "live")

#: The request id of the probe frame of ``live`` (its frame has no byte to escape).
PROBE_ID = 0x5A

#: Defaults of ``live``: cycles of arbitrary bytes, of silence, and from the probe's first byte
#: to its reply.
PREFIX, IDLE, DEADLINE = 4, 40, 24


def live_depth(prefix=PREFIX, idle=IDLE, deadline=DEADLINE):
    """The BMC depth of ``live``: the whole scenario and two cycles."""
    return prefix + idle + deadline + 2


class BridgeHarness(Elaboratable):
    """:class:`Bridge` with an abstract accelerator and the properties of ``groups``.

    Parameters
    ----------
    params : AccelParams
    groups : iterable of str
        :data:`BRIDGE_GROUPS`.
    rx_buffer : int
        Bytes of the bridge's receive buffer (small: a proof explores every fill level).
    stall : int
        The most consecutive cycles the accelerator and the transmitter keep the bridge
        waiting.
    prefix, idle : int
        Cycles of arbitrary bytes, then of silence, before the probe of ``live``.
    """

    def __init__(self, params: AccelParams, groups=("replies",), *, rx_buffer=8, stall=1,
                 prefix=PREFIX, idle=IDLE, deadline=None):
        unknown = set(groups) - set(BRIDGE_GROUPS)
        if unknown:
            self._MustUse__silence = True   # never elaborated: no "created but never used"
            raise ValueError(f"unknown properties {sorted(unknown)}")
        self.params = params
        self.groups = frozenset(groups)
        self.rx_buffer, self.stall, self.prefix, self.idle = rx_buffer, stall, prefix, idle
        self._deadline = deadline
        self.probe = encode_frame(Command.STATUS, PROBE_ID)
        assert len(self.probe) == 6, "the probe frame must need no escapes"
        self.sync = ClockDomain("sync")

    @property
    def ports(self):
        return [self.sync.clk]

    def deadline(self):
        """Cycles after the probe's first byte by which its reply has started (the STATUS
        reply's first three bytes)."""
        return DEADLINE if self._deadline is None else self._deadline

    def depth(self):
        """The BMC depth of ``live``: the whole scenario."""
        return live_depth(self.prefix, self.idle, self.deadline())

    def check_at(self):
        """The cycle at which the probe's reply must have started."""
        return self.prefix + self.idle + self.deadline()

    def elaborate(self, platform):
        m = Module()
        prm = self.params
        dut = Bridge(prm, clock_hz=0, rx_buffer=self.rx_buffer)
        frag = Fragment.get(dut, platform)
        m.submodules.dut = frag
        m.domains.sync = self.sync

        # The abstract accelerator: stream rules, answers within `stall` cycles.
        waiting = Signal()          # a query was taken, its result not yet
        with m.If(dut.o_query.valid & dut.o_query.ready):
            m.d.sync += waiting.eq(1)
        with m.If(dut.i_result.valid & dut.i_result.ready):
            m.d.sync += waiting.eq(0)
        r_valid = Signal()
        m.d.comb += [dut.o_query.ready.eq(AnySeq(1) & ~waiting), dut.o_load.ready.eq(AnySeq(1)),
                     r_valid.eq(AnySeq(1) & waiting), dut.i_result.valid.eq(r_valid),
                     dut.i_result.payload.eq(AnySeq(len(dut.i_result.payload.as_value()))),
                     dut.o_tx.ready.eq(AnySeq(1))]
        prev_rv = Signal(reset_less=True)
        prev_rr = Signal(reset_less=True)
        prev_rp = Signal(len(dut.i_result.payload.as_value()), reset_less=True)
        m.d.sync += [prev_rv.eq(r_valid), prev_rr.eq(dut.i_result.ready),
                     prev_rp.eq(dut.i_result.payload.as_value())]
        with m.If(prev_rv & ~prev_rr):
            m.d.comb += Assume(r_valid & (dut.i_result.payload.as_value() == prev_rp))
        for valid, ready in ((dut.o_query.valid, dut.o_query.ready),
                             (waiting, dut.i_result.valid),
                             (dut.o_load.valid, dut.o_load.ready),
                             (dut.o_tx.valid, dut.o_tx.ready)):
            stalled = Signal(range(self.stall + 2))
            with m.If(valid & ~ready):
                m.d.sync += stalled.eq(stalled + 1)
            with m.Else():
                m.d.sync += stalled.eq(0)
            m.d.comb += Assume(stalled <= self.stall)
            with m.If(stalled == self.stall):
                m.d.comb += Assume(~valid | ready)

        # Received bytes.
        rx = dut.i_rx
        rx_valid, rx_byte = Signal(), Signal(8)
        m.d.comb += [rx.valid.eq(rx_valid), rx.payload.eq(rx_byte)]
        if "live" in self.groups:
            start = self.prefix + self.idle
            t = Signal(range(self.depth() + 2))
            with m.If(t != self.depth() + 1):
                m.d.sync += t.eq(t + 1)
            with m.If(t < self.prefix - 1):
                m.d.comb += [rx_valid.eq(AnySeq(1)), rx_byte.eq(AnySeq(8)),
                             Assume(~rx_valid | (rx_byte != PROBE_ID))]
            with m.Elif(t == self.prefix - 1):     # the prefix ends a frame
                m.d.comb += [rx_valid.eq(1), rx_byte.eq(END)]
            for i, byte in enumerate(self.probe):
                with m.If(t == start + i):
                    m.d.comb += [rx_valid.eq(1), rx_byte.eq(byte)]
            # The reply to the probe: END, STATUS | REPLY, PROBE_ID in a row on o_tx.
            last2 = Signal(16, reset_less=True)
            seen = Signal()
            tx = dut.o_tx
            with m.If(tx.valid & tx.ready):
                m.d.sync += last2.eq((last2 << 8) | tx.payload)
                with m.If((t >= start) & (last2 == (END << 8 | (Command.STATUS | REPLY)))
                          & (tx.payload == PROBE_ID)):
                    m.d.sync += seen.eq(1)
            with m.If(t == self.check_at()):
                m.d.comb += Assert(seen)
        else:
            m.d.comb += [rx_valid.eq(AnySeq(1)), rx_byte.eq(AnySeq(8))]

        if "replies" in self.groups:
            frame_valid = _find(registers(frag), ("parser",), "o_frame__valid")
            prev_fv = Signal()
            m.d.sync += prev_fv.eq(frame_valid)
            frames = Signal(8)
            with m.If(frame_valid & ~prev_fv):
                m.d.sync += frames.eq(frames + 1)
            ends = Signal(9)      # END bytes sent: two per reply
            tx = dut.o_tx
            with m.If(tx.valid & tx.ready & (tx.payload == END)):
                m.d.sync += ends.eq(ends + 1)
            # Started replies (ceil(ends / 2)) never exceed presented frames.
            m.d.comb += Assert((ends + 1) >> 1 <= frames)
            # Keep the counters from wrapping within the bound.
            m.d.comb += Assume(frames < 250)
        return m


def _find(regs, path, name):
    found = [s for p, s in regs if p == path and s.name == name]
    if len(found) != 1:
        raise ValueError(f"{'/'.join((*path, name))} not found in the bridge")
    return found[0]
