"""PLL settings for the board clocks: iCE40 SB_PLL40 (like ``icepll``) and ECP5 EHXPLLL (like
``ecppll``), pure arithmetic so they can be tested and reported without a toolchain."""

from dataclasses import dataclass

__all__ = ["ICE40PLL", "ice40_pll", "ECP5PLL", "ecp5_pll"]


@dataclass(frozen=True)
class ICE40PLL:
    """SB_PLL40 in SIMPLE feedback mode: ``f_out = f_in (DIVF + 1) / ((DIVR + 1) 2^DIVQ)``."""

    f_in: float
    divr: int
    divf: int
    divq: int
    filter_range: int

    @property
    def f_pfd(self):
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self):
        return self.f_pfd * (self.divf + 1)

    @property
    def f_out(self):
        return self.f_vco / 2 ** self.divq


def ice40_pll(f_in, f_out):
    """The SB_PLL40 setting closest to ``f_out`` (ties: the lowest output error, then the
    highest phase-detector frequency), within the iCE40 limits (PFD 10..133 MHz, VCO
    533..1066 MHz, output 16..275 MHz)."""
    if not 16e6 <= f_out <= 275e6:
        raise ValueError(f"an iCE40 PLL output must be 16..275 MHz, not {f_out / 1e6:g} MHz")
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divq in range(1, 7):
            for divf in range(128):
                f_vco = f_pfd * (divf + 1)
                if not 533e6 <= f_vco <= 1066e6:
                    continue
                err = abs(f_vco / 2 ** divq - f_out)
                key = (err, -f_pfd)
                if best is None or key < best[0]:
                    best = (key, divr, divf, divq, f_pfd)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    _, divr, divf, divq, f_pfd = best
    mhz = f_pfd / 1e6
    filter_range = next(i for i, lim in enumerate((17, 26, 44, 66, 101), 1) if mhz < lim) \
        if mhz < 101 else 6
    return ICE40PLL(f_in, divr, divf, divq, filter_range)


@dataclass(frozen=True)
class ECP5PLL:
    """EHXPLLL with CLKOP feedback: ``f_out = f_in CLKFB_DIV / CLKI_DIV``,
    ``f_vco = f_out CLKOP_DIV``."""

    f_in: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_out(self):
        return self.f_in * self.clkfb_div / self.clki_div

    @property
    def f_vco(self):
        return self.f_out * self.clkop_div


def ecp5_pll(f_in, f_out):
    """The EHXPLLL setting closest to ``f_out`` (PFD 3.125..400 MHz, VCO 400..800 MHz)."""
    if not 3.125e6 <= f_out <= 400e6:
        raise ValueError(f"an ECP5 PLL output must be 3.125..400 MHz, not {f_out / 1e6:g} MHz")
    best = None
    for clki in range(1, 129):
        f_pfd = f_in / clki
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for fb in range(1, 81):
            out = f_pfd * fb
            for op in range(1, 129):
                vco = out * op
                if not 400e6 <= vco <= 800e6:
                    continue
                key = (abs(out - f_out), abs(vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, clki, fb, op)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    return ECP5PLL(f_in, *best[1:])
