"""Board tops: clock (PLL), reset, UART pins and LEDs around :class:`boards.core.BoardCore`.

No accelerator logic lives here: a top only makes the clock, synchronises the reset to the
PLL's lock, buffers the pins and instantiates the core.

==============  ===================  ============  ============================================
board           FPGA                 clock         memories
==============  ===================  ============  ============================================
``icebreaker``  iCE40 UP5K (SG48)    12 MHz osc.   weights in SPRAM (SB_SPRAM256KA), patterns
                                     -> SB_PLL40   and LUT in block RAM; the network is loaded
                                     _PAD, 30 MHz  over the UART at run time (SPRAM has no init)
``ulx3s-85f``   ECP5 LFE5U-85F       25 MHz osc.   all in block RAM (DP16KD), empty until
                (CABGA381)           -> EHXPLLL,   loaded
                                     75 MHz
==============  ===================  ============  ============================================

UART: 8N1 over the boards' FTDI bridges, ``DEFAULT_BAUDRATE`` unless told otherwise.
LEDs (iCEBreaker: red = last frame rejected, green = network loaded; ULX3S LEDs 0..3: loaded,
query running, last frame rejected, heartbeat).
"""

from dataclasses import dataclass

from amaranth import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.hdl import Instance
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from khop.hw.params import AccelParams

from .core import BoardCore
from .pll import ecp5_pll, ice40_pll
from .spram import SPRAMWeightMemory, check_spram_fit
from .uart import divisor_for

__all__ = ["DEFAULT_BAUDRATE", "Board", "BOARDS", "BOARD_DEFAULTS", "board_names", "get_board",
           "board_params", "ICEBreakerTop",
           "ULX3STop", "ULX3S85FPlatform"]

DEFAULT_BAUDRATE = 115200


class ICEBreakerTop(Elaboratable):
    """iCEBreaker (iCE40 UP5K): SB_PLL40_PAD from the 12 MHz oscillator to ``clock_hz``,
    weights in SPRAM.

    Parameters
    ----------
    params : AccelParams
    clock_hz : float
        Requested accelerator clock; the PLL's nearest setting is used (:attr:`pll`).
    baudrate : int
    """

    def __init__(self, params: AccelParams, clock_hz=30e6, baudrate=DEFAULT_BAUDRATE):
        self.params = params
        self.pll = ice40_pll(12e6, clock_hz)
        self.clock_hz = self.pll.f_out
        self.baudrate = baudrate
        self.divisor = divisor_for(self.clock_hz, baudrate)
        check_spram_fit(params)  # fails now, with the SPRAM count, if the weights do not fit

    def elaborate(self, platform):
        m = Module()
        pll = self.pll
        clk12 = platform.request("clk12", dir="-")
        locked = Signal()
        clk = Signal()
        m.domains.sync = ClockDomain("sync")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=pll.divr, p_DIVF=pll.divf, p_DIVQ=pll.divq, p_FILTER_RANGE=pll.filter_range,
            i_PACKAGEPIN=clk12.io,
            i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk,
            o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, self.clock_hz)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")

        m.submodules.core = core = BoardCore(self.params, self.divisor, int(self.clock_hz),
                                             weight_memory=SPRAMWeightMemory)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.submodules.led_g = led_g = io.Buffer("o", platform.request("led_g", 0, dir="-"))
        m.submodules.led_r = led_r = io.Buffer("o", platform.request("led_r", 0, dir="-"))
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx),
                     led_g.o.eq(core.leds[0]), led_r.o.eq(core.leds[2])]
        return m


class ULX3S85FPlatform(ULX3S_85F_Platform):
    """``amaranth_boards.ulx3s.ULX3S_85F_Platform`` that does not require ``openFPGALoader``
    for building (it is only needed to program a board)."""

    @property
    def required_tools(self):
        return [t for t in super().required_tools if t != "openFPGALoader"]


class ULX3STop(Elaboratable):
    """ULX3S (ECP5 85F): EHXPLLL from the 25 MHz oscillator to ``clock_hz``, memories in block
    RAM.

    Parameters
    ----------
    params : AccelParams
    clock_hz : float
    baudrate : int
    """

    def __init__(self, params: AccelParams, clock_hz=75e6, baudrate=DEFAULT_BAUDRATE):
        self.params = params
        self.pll = ecp5_pll(25e6, clock_hz)
        self.clock_hz = self.pll.f_out
        self.baudrate = baudrate
        self.divisor = divisor_for(self.clock_hz, baudrate)

    def elaborate(self, platform):
        m = Module()
        pll = self.pll
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        locked = Signal()
        clk = Signal()
        m.domains.sync = ClockDomain("sync")
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
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, self.clock_hz)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")

        m.submodules.core = core = BoardCore(self.params, self.divisor, int(self.clock_hz))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        for i in range(4):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(core.leds[i])
        return m


@dataclass(frozen=True)
class Board:
    name: str
    family: str            # "ice40" or "ecp5"
    description: str
    default_clock_hz: float
    target_clock_hz: float  # the goal of the issue, reported next to Fmax

    def platform(self):
        if self.name == "icebreaker":
            from amaranth_boards.icebreaker import ICEBreakerPlatform
            return ICEBreakerPlatform()
        return ULX3S85FPlatform()

    def top(self, params, clock_hz=None, baudrate=DEFAULT_BAUDRATE):
        cls = ICEBreakerTop if self.name == "icebreaker" else ULX3STop
        return cls(params, self.default_clock_hz if clock_hz is None else clock_hz, baudrate)


BOARDS = {
    "icebreaker": Board("icebreaker", "ice40", "iCEBreaker, iCE40 UP5K-SG48", 30e6, 30e6),
    "ulx3s-85f": Board("ulx3s-85f", "ecp5", "ULX3S, ECP5 LFE5U-85F-6BG381", 75e6, 75e6),
}


def board_names():
    return tuple(BOARDS)


def get_board(name):
    """The :class:`Board` called ``name``; ``ValueError`` listing the allowed names otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unsupported board {name!r}; choose one of "
                         f"{', '.join(BOARDS)}") from None


#: Accelerator defaults per board (chosen to fit and meet timing; see README/boards report).
BOARD_DEFAULTS = {
    "icebreaker": {"lanes": 8, "kernel_bits": 12, "narrow_popcount": True},
    "ulx3s-85f": {"lanes": 32, "kernel_bits": 16, "narrow_popcount": True},
}


def board_params(board_name, n, p, *, bits=2, lanes=None, popcount_width=None,
                 kernel_bits=None, max_steps=30):
    """:class:`AccelParams` for a board, unset options from :data:`BOARD_DEFAULTS`.

    A "narrow" popcount is the narrowest that costs no cycles: ``ceil(n / blocks)`` bits, so
    the distance unit takes as many cycles per pattern as the MAC array.
    """
    get_board(board_name)
    d = BOARD_DEFAULTS[board_name]
    lanes = min(n, d["lanes"]) if lanes is None else lanes
    kernel_bits = d["kernel_bits"] if kernel_bits is None else kernel_bits
    if popcount_width is None and d["narrow_popcount"] and 1 <= lanes <= n:
        blocks = -(-n // lanes)
        popcount_width = -(-n // blocks)
    return AccelParams(n=n, p=p, weight_bits=bits, lanes=lanes, popcount_width=popcount_width,
                       kernel_bits=kernel_bits, max_steps=max_steps)
