"""The target table: every FPGA khop knows, and what khop puts on it.

This module is the one place where a board's device, clock and default geometry are written.

- :data:`DEVICES`: the silicon facts of each FPGA (part, family, LUT4s, flip-flops, block RAM,
  SPRAM, how nextpnr names it).
- :data:`TARGETS`: for each device, the accelerator clock and the default geometry
  (:class:`khop.hw.params.HardwareDefaults`) khop uses on it, and the board carrying it if there
  is one (its top class, its platform). A device without a board (``hx8k``, ``ecp5-25f``, used
  by ``khop estimate`` and ``khop sweep``) is a target of its own.

``khop build`` and ``khop run`` name a board (:func:`get_board`), ``khop estimate`` and
``khop sweep`` a device (:func:`device_target`); both give a :class:`Target`, whose
:meth:`Target.params` resolves the user's hardware options with the target's defaults through
:func:`khop.hw.params.hardware_params`.
"""

from dataclasses import dataclass

from khop.hw.params import HardwareDefaults, hardware_params

from .top import ICEBreakerPlatform, ICEBreakerTop, ULX3S85FPlatform, ULX3STop

__all__ = ["Device", "DEVICES", "Board", "Target", "TARGETS", "BOARDS", "device_names",
           "board_names", "get_device", "get_board", "device_target", "get_target"]


@dataclass(frozen=True)
class Device:
    """An FPGA: its logic, memories and how nextpnr names it.

    ``luts`` are LUT4s (on the iCE40 a logic cell is one LUT4, one carry and one flip-flop),
    ``bram`` block RAMs (``bram_cell``), ``spram`` SPRAM blocks, ``dsp`` DSP multipliers
    (``dsp_cell``, each ``dsp_width`` x ``dsp_width`` bits signed).
    """

    name: str
    part: str
    family: str
    luts: int
    ffs: int
    bram: int
    spram: int
    dsp: int
    nextpnr: tuple

    @property
    def bram_cell(self):
        return "SB_RAM40_4K" if self.family == "ice40" else "DP16KD"

    @property
    def dsp_cell(self):
        return "SB_MAC16" if self.family == "ice40" else "MULT18X18D"

    @property
    def dsp_width(self):
        return 16 if self.family == "ice40" else 18

    @property
    def weights_in_spram(self):
        return self.spram > 0

    def as_dict(self):
        return {"name": self.name, "part": self.part, "family": self.family,
                "luts": self.luts, "ffs": self.ffs, "bram": self.bram, "spram": self.spram,
                "dsp": self.dsp, "bram_cell": self.bram_cell, "dsp_cell": self.dsp_cell,
                "nextpnr": list(self.nextpnr)}


DEVICES = {d.name: d for d in (
    Device("up5k", "iCE40UP5K", "ice40", 5280, 5280, 30, 4, 8, ("--up5k", "--package", "sg48")),
    Device("hx8k", "iCE40HX8K", "ice40", 7680, 7680, 32, 0, 0, ("--hx8k", "--package", "ct256")),
    Device("ecp5-25f", "LFE5U-25F", "ecp5", 24288, 24288, 56, 0, 28,
           ("--25k", "--package", "CABGA381")),
    Device("ecp5-85f", "LFE5U-85F", "ecp5", 83640, 83640, 208, 0, 156,
           ("--85k", "--package", "CABGA381")),
)}


@dataclass(frozen=True)
class Board:
    """A board: its description, the top that puts the core on it and its Amaranth platform.

    ``top(params, clock_hz, baudrate)`` makes the top (:mod:`boards.top`); ``platform()`` a
    fresh platform instance.
    """

    description: str
    top_class: type
    platform_class: type

    def platform(self):
        return self.platform_class()


@dataclass(frozen=True)
class Target:
    """What khop puts on one device: the accelerator clock (chosen below the measured Fmax,
    see README) and the default geometry, on a board or on the bare device.

    Members
    -------
    name : str
        The board's name, or the device's for a bare device.
    device : Device
    clock_hz : float
        Default accelerator clock (the PLL's goal on a board; the clock of the retrieval-rate
        figure of an estimate; the clock nextpnr is asked for in a sweep).
    defaults : HardwareDefaults
        What unset hardware options become.
    board : Board or None
    """

    name: str
    device: Device
    clock_hz: float
    defaults: HardwareDefaults
    board: Board | None = None

    @property
    def clock_mhz(self):
        return self.clock_hz / 1e6

    @property
    def description(self):
        return self.board.description if self.board else self.device.part

    @property
    def geometry(self):
        """The default geometry and arithmetic in words (help texts, the boards' README)."""
        d = self.defaults
        kernel = ("kernel_bits without crosstalk" if d.kernel_bits is None
                  else f"kernel_bits {d.kernel_bits}")
        return (f"{d.lanes} lanes, batch {d.batch}, {kernel}, "
                f"threshold_frac_bits {d.threshold_frac_bits}, {d.threshold_units} threshold "
                f"units")

    def params(self, n, p, **options):
        """The :class:`~khop.hw.params.AccelParams` of an n x p network on this target
        (``options``: :data:`khop.hw.params.HARDWARE_OPTIONS`, ``None`` = this target's
        default, and the network's ``gamma``: :func:`~khop.hw.params.hardware_params`)."""
        return hardware_params(n, p, defaults=self.defaults, **options)

    def top(self, params, clock_hz=None, baudrate=None):
        """The board's top for ``params`` (``clock_hz`` ``None``: the target's clock)."""
        if self.board is None:
            raise ValueError(f"{self.name} is a device without a board; choose a board: "
                             f"{', '.join(board_names())}")
        kwargs = {} if baudrate is None else {"baudrate": baudrate}
        return self.board.top_class(params, self.clock_hz if clock_hz is None else clock_hz,
                                    **kwargs)

    def platform(self):
        return self.board.platform()


# One row per device: khop's clock and default geometry on it (chosen to fit and meet timing;
# see README), and its board.
TARGETS = {t.name: t for t in (
    Target("icebreaker", DEVICES["up5k"], 33.75e6,
           HardwareDefaults(lanes=20, kernel_bits=None, threshold_frac_bits=8,
                            threshold_units=8, batch=2),
           Board("iCEBreaker, iCE40 UP5K-SG48", ICEBreakerTop, ICEBreakerPlatform)),
    Target("ulx3s-85f", DEVICES["ecp5-85f"], 65e6,
           HardwareDefaults(lanes=100, kernel_bits=None, threshold_frac_bits=8,
                            threshold_units=50, batch=8),
           Board("ULX3S, ECP5 LFE5U-85F-6BG381", ULX3STop, ULX3S85FPlatform)),
    Target("hx8k", DEVICES["hx8k"], 30e6,
           HardwareDefaults(lanes=16, kernel_bits=12, threshold_units=1)),
    Target("ecp5-25f", DEVICES["ecp5-25f"], 75e6,
           HardwareDefaults(lanes=16, kernel_bits=16, threshold_units=4)),
)}

#: The targets that are boards.
BOARDS = {name: t for name, t in TARGETS.items() if t.board is not None}

_BY_DEVICE = {t.device.name: t for t in TARGETS.values()}
assert len(_BY_DEVICE) == len(TARGETS) and set(_BY_DEVICE) == set(DEVICES), \
    "every device has exactly one target"


def device_names():
    return tuple(DEVICES)


def board_names():
    return tuple(BOARDS)


def get_device(name):
    """The :class:`Device` called ``name``; ``ValueError`` listing the allowed names otherwise."""
    if isinstance(name, Device):
        return name
    try:
        return DEVICES[name]
    except KeyError:
        raise ValueError(f"unknown device {name!r}; choose one of "
                         f"{', '.join(DEVICES)}") from None


def device_target(device):
    """The :class:`Target` of a device (a name or a :class:`Device`)."""
    return _BY_DEVICE[get_device(device).name]


def get_board(name):
    """The board :class:`Target` called ``name``; ``ValueError`` listing the allowed names."""
    if isinstance(name, Target) and name.board is not None:
        return name
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unsupported board {name!r}; choose one of "
                         f"{', '.join(BOARDS)}") from None


def get_target(name):
    """The :class:`Target` of a board or a device name."""
    if name in BOARDS:
        return BOARDS[name]
    if name in DEVICES:
        return device_target(name)
    raise ValueError(f"unknown target {name!r}; choose a board ({', '.join(BOARDS)}) or a "
                     f"device ({', '.join(DEVICES)})")
