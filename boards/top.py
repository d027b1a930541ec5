"""Board tops: clock (PLL), reset, UART pins and LEDs around :class:`boards.core.BoardCore`.

No accelerator logic lives here: a top only makes the clock, synchronises the reset to the
PLL's lock, buffers the pins and instantiates the core.

==============  ===================  ============  ============================================
top             FPGA                 clock         memories
==============  ===================  ============  ============================================
ICEBreakerTop   iCE40 UP5K (SG48)    12 MHz osc.   weights in SPRAM (SB_SPRAM256KA), patterns
                                     -> SB_PLL40   and LUT in block RAM; the network is loaded
                                     _PAD          over the UART at run time (SPRAM has no init)
ULX3STop        ECP5 LFE5U-85F       25 MHz osc.   all in block RAM (DP16KD), empty until
                (CABGA381)           -> EHXPLLL    loaded
==============  ===================  ============  ============================================

Which board carries which top, its device, clock and default geometry: :mod:`boards.targets`.

UART: 8N1 over the boards' FTDI bridges, ``DEFAULT_BAUDRATE`` unless told otherwise.
LEDs (iCEBreaker: red = last frame rejected, green = network loaded; ULX3S LEDs 0..3: loaded,
query running, last frame rejected, heartbeat).
"""

from amaranth import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.hdl import Instance
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from khop.hw.params import AccelParams

from .core import BoardCore
from .pll import ecp5_pll, ice40_pll
from .protocol import DEFAULT_BAUDRATE
from .spram import SPRAMWeightMemory, check_spram_fit
from .uart import divisor_for

__all__ = ["DEFAULT_BAUDRATE", "ICEBreakerTop", "ULX3STop", "ICEBreakerPlatform",
           "ULX3S85FPlatform"]


class _BoardTop(Elaboratable):
    """What every top does: the PLL from the board's oscillator to ``clock_hz`` (its nearest
    setting, :attr:`pll`), the reset synchronised to the PLL's lock, the UART pins and the core.

    A board's top says how its PLL is made (:meth:`_pll`, :meth:`_clock`), which weight memory
    the core uses and where its LEDs go (:meth:`_leds`).

    Parameters
    ----------
    params : AccelParams
    clock_hz : float
        Requested accelerator clock; the PLL's nearest setting is used (:attr:`clock_hz`).
    baudrate : int
    """

    weight_memory = None  # the core's default (block RAM)

    def __init__(self, params: AccelParams, clock_hz, baudrate=DEFAULT_BAUDRATE):
        self.params = params
        self.pll = self._pll(clock_hz)
        self.clock_hz = self.pll.f_out
        self.baudrate = baudrate
        self.divisor = divisor_for(self.clock_hz, baudrate)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        clk, locked = self._clock(m, platform)
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, self.clock_hz)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")

        extra = {} if self.weight_memory is None else {"weight_memory": self.weight_memory}
        m.submodules.core = core = BoardCore(self.params, self.divisor, int(self.clock_hz),
                                             **extra)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        self._leds(m, platform, core)
        return m


class ICEBreakerTop(_BoardTop):
    """iCEBreaker (iCE40 UP5K): SB_PLL40_PAD from the 12 MHz oscillator to ``clock_hz``,
    weights in SPRAM (checked to fit when the top is made)."""

    weight_memory = SPRAMWeightMemory

    def __init__(self, params: AccelParams, clock_hz, baudrate=DEFAULT_BAUDRATE):
        super().__init__(params, clock_hz, baudrate)
        check_spram_fit(params)  # fails now, with the SPRAM count, if the weights do not fit

    def _pll(self, clock_hz):
        return ice40_pll(12e6, clock_hz)

    def _clock(self, m, platform):
        pll = self.pll
        clk12 = platform.request("clk12", dir="-")
        locked = Signal()
        clk = Signal()
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=pll.divr, p_DIVF=pll.divf, p_DIVQ=pll.divq, p_FILTER_RANGE=pll.filter_range,
            i_PACKAGEPIN=clk12.io,
            i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk,
            o_LOCK=locked,
        )
        return clk, locked

    def _leds(self, m, platform, core):
        m.submodules.led_g = led_g = io.Buffer("o", platform.request("led_g", 0, dir="-"))
        m.submodules.led_r = led_r = io.Buffer("o", platform.request("led_r", 0, dir="-"))
        m.d.comb += [led_g.o.eq(core.leds[0]), led_r.o.eq(core.leds[2])]


class ULX3S85FPlatform(ULX3S_85F_Platform):
    """``amaranth_boards.ulx3s.ULX3S_85F_Platform`` that does not require ``openFPGALoader``
    for building (it is only needed to program a board)."""

    @property
    def required_tools(self):
        return [t for t in super().required_tools if t != "openFPGALoader"]


class ULX3STop(_BoardTop):
    """ULX3S (ECP5 85F): EHXPLLL from the 25 MHz oscillator to ``clock_hz``, memories in block
    RAM."""

    def _pll(self, clock_hz):
        return ecp5_pll(25e6, clock_hz)

    def _clock(self, m, platform):
        pll = self.pll
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        locked = Signal()
        clk = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{pll.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll.clkop_div,
            p_CLKOP_CPHASE=pll.clkop_div // 2, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=pll.clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=clk25.i, o_CLKOP=clk,
            i_CLKFB=clk, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
            i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_LOCK=locked,
        )
        return clk, locked

    def _leds(self, m, platform, core):
        for i in range(4):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(core.leds[i])
