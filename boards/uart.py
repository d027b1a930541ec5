"""UART receiver and transmitter, 8N1, LSB first, ``divisor`` clock cycles per bit."""

import operator

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for", "check_divisor"]


def check_divisor(divisor):
    """``divisor`` as an int; ``TypeError``/``ValueError`` naming it when it is not >= 4."""
    try:
        d = operator.index(divisor)
    except TypeError:
        raise TypeError(f"divisor must be an integer, not {divisor!r}") from None
    if d < 4:
        raise ValueError(f"divisor must be an integer >= 4 (clock cycles per bit), not {divisor!r}")
    return d


def divisor_for(clock_hz, baudrate):
    """The divisor nearest to ``clock_hz / baudrate``; ``ValueError`` if the baud rate it gives
    is off by more than 2 % (8N1 tolerates about 4 % between both ends)."""
    d = round(clock_hz / baudrate)
    if d < 4 or abs(clock_hz / d - baudrate) / baudrate > 0.02:
        raise ValueError(f"{baudrate} baud cannot be made from a {clock_hz / 1e6:g} MHz clock "
                         f"within 2 %")
    return d


class _UARTComponent(wiring.Component):
    """A UART half: its ports are the subclass's annotations, its one parameter the divisor.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, >= 4.
    """

    def __init__(self, divisor):
        self._divisor = check_divisor(divisor)
        super().__init__()

    @property
    def divisor(self):
        """Clock cycles per bit."""
        return self._divisor


class UARTRx(_UARTComponent):
    """8N1 receiver.

    The line goes through a two-flip-flop synchronizer; a falling edge starts a byte, the start
    bit is checked half a bit later and every data bit is sampled in the middle of its bit time.
    A byte with a bad stop bit is dropped (``o_frame_error`` pulses). ``o_data`` holds each byte
    until it is taken; a byte arriving while the previous one is still held replaces it and
    ``o_overrun`` pulses.

    Parameters: ``divisor`` (:class:`_UARTComponent`).

    Members
    -------
    i_rx : In(1)
        The line (idle high).
    o_data : Out(stream.Signature(8))
    o_overrun, o_frame_error : Out(1)
        One-cycle pulses.
    """

    i_rx: In(1, init=1)
    o_data: Out(stream.Signature(8))
    o_overrun: Out(1)
    o_frame_error: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        sync1 = Signal(init=1)
        rx = Signal(init=1)
        m.d.sync += [sync1.eq(self.i_rx), rx.eq(sync1)]

        timer = Signal(range(d))
        bits = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o_data.ready):
            m.d.sync += self.o_data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.o_data.payload.eq(shreg), self.o_data.valid.eq(1)]
                        m.d.comb += self.o_overrun.eq(self.o_data.valid & ~self.o_data.ready)
                    with m.Else():
                        m.d.comb += self.o_frame_error.eq(1)
                    m.next = "IDLE"
        return m


class UARTTx(_UARTComponent):
    """8N1 transmitter: takes a byte from ``i_data`` whenever it is idle.

    A byte takes ``10 * divisor`` cycles; the next one is taken in the cycle after its stop bit
    ends, so back-to-back bytes leave no idle time on the line.

    Parameters: ``divisor`` (:class:`_UARTComponent`).

    Members
    -------
    i_data : In(stream.Signature(8))
    o_tx : Out(1)
        The line (idle high).
    """

    i_data: In(stream.Signature(8))
    o_tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        left = Signal(range(11))          # bits still to send, 0: idle
        shreg = Signal(10, init=0x3FF)    # stop bit, data LSB first, start bit; bit 0 on the line
        m.d.comb += self.o_tx.eq(shreg[0])

        with m.If(left == 0):
            m.d.comb += self.i_data.ready.eq(1)
            with m.If(self.i_data.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i_data.payload, Const(1, 1))),
                             left.eq(10), timer.eq(d - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [timer.eq(d - 1), left.eq(left - 1),
                             shreg.eq(Cat(shreg[1:], Const(1, 1)))]
        return m
