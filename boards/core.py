"""Board-independent cores: the accelerator behind the frame bridge, with or without the UART.

The board tops (:mod:`boards.top`) add only clocking, I/O and LEDs around :class:`BoardCore`;
the cosimulation (:mod:`boards.cosim`) runs :class:`BoardCore` itself with a UART model on its
pins.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from khop.hw.accelerator import RetrievalAccelerator
from khop.hw.params import AccelParams

from .bridge import Bridge
from .uart import UARTRx, UARTTx, check_divisor

__all__ = ["AcceleratorLink", "BoardCore"]


class AcceleratorLink(wiring.Component):
    """:class:`~hw.accelerator.RetrievalAccelerator` driven by a :class:`~boards.bridge.Bridge`.

    Parameters
    ----------
    params : AccelParams
    clock_hz : int
        Reported by PARAMS.
    network : IntegerNetwork or None
        Initial memory contents (``None``: zero until loaded over the link).
    accelerator_options : dict
        More keyword arguments of :class:`RetrievalAccelerator` (e.g. its memory factory).

    Members
    -------
    i_rx : In(stream.Signature(8))
    o_tx : Out(stream.Signature(8))
    o_loaded, o_busy, o_error : Out(1)
    """

    i_rx: In(stream.Signature(8))
    o_tx: Out(stream.Signature(8))
    o_loaded: Out(1)
    o_busy: Out(1)
    o_error: Out(1)

    def __init__(self, params: AccelParams, clock_hz=0, network=None, **accelerator_options):
        self._params = params
        self._clock_hz = clock_hz
        self._network = network
        self._options = accelerator_options
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = Bridge(self._params, self._clock_hz)
        m.submodules.accel = accel = RetrievalAccelerator(self._params, self._network,
                                                           **self._options)
        wiring.connect(m, wiring.flipped(self.i_rx), bridge.i_rx)
        wiring.connect(m, bridge.o_tx, wiring.flipped(self.o_tx))
        wiring.connect(m, bridge.o_load, accel.i_load)
        wiring.connect(m, bridge.o_query, accel.i_query)
        wiring.connect(m, accel.o_result, bridge.i_result)
        m.d.comb += [self.o_loaded.eq(bridge.o_loaded), self.o_busy.eq(bridge.o_busy),
                     self.o_error.eq(bridge.o_error)]
        return m


class BoardCore(wiring.Component):
    """:class:`AcceleratorLink` behind an 8N1 UART: everything of a board but clock and pins.

    Parameters
    ----------
    params : AccelParams
    divisor : int
        Clock cycles per UART bit.
    clock_hz : int
        Reported by PARAMS.

    Members
    -------
    rx : In(1)
        UART line from the host (idle high).
    tx : Out(1)
        UART line to the host.
    leds : Out(4)
        0: a network was loaded, 1: a query is running, 2: the last frame was rejected,
        3: heartbeat (toggles every 2^23 cycles).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    leds: Out(4)

    def __init__(self, params: AccelParams, divisor, clock_hz=0, network=None,
                 **accelerator_options):
        self._params = params
        self._divisor = divisor
        self._clock_hz = clock_hz
        self._network = network
        self._options = accelerator_options
        check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.link = link = AcceleratorLink(self._params, self._clock_hz, self._network,
                                                   **self._options)
        wiring.connect(m, urx.o_data, link.i_rx)
        wiring.connect(m, link.o_tx, utx.i_data)
        heartbeat = Signal(24)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        m.d.comb += [urx.i_rx.eq(self.rx), self.tx.eq(utx.o_tx),
                     self.leds.eq(Cat(link.o_loaded, link.o_busy, link.o_error,
                                      heartbeat[-1]))]
        return m

