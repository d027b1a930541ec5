"""The hardware option group: one set of names, ranges, defaults and help for every subcommand
that builds or describes hardware (``verilog``, ``cosim``, ``build``, ``run``, ``estimate``,
``sweep``, ``precision``).

The options are :data:`khop.hw.params.HARDWARE_OPTIONS`, their ranges those of
:class:`khop.model.fixed.FixedConfig` and :class:`khop.hw.params.AccelParams`. Every option
defaults to "unset" (``None``); :func:`khop.hw.params.hardware_params` resolves an unset option
to the target's preference (:class:`khop.hw.params.HardwareDefaults`, from the target table) or
the generic default, so the defaults live in one place and the help text is derived from it.

A sweep takes a comma list where a single value would go (``multi=True``, or ``multi`` naming
the options that take one): the same names, ranges and help (plus :data:`LIST_SUFFIX`), one
value or several. The help states what an unset option becomes, so the help formatter
(:class:`khop.cli_common.HelpFormatter`) does not add argparse's "(default: None)".
"""

from khop.hw.params import GENERIC_DEFAULTS, HARDWARE_OPTIONS, MAX_BATCH
from khop.model.compress import QUANTIZERS
from khop.model.fixed import FixedConfig

from .argtypes import int_in, int_list, name_list
from .cli_common import explains_default

__all__ = ["add_hardware_options", "hardware_options", "HARDWARE_HELP", "HARDWARE_RANGES",
           "HARDWARE_CHOICES",
           "ARITHMETIC_OPTIONS", "LIST_SUFFIX"]

# The hardware options that are fields of FixedConfig (the arithmetic), by their FixedConfig name.
_FIXED_FIELD = {"bits": "weight_bits", "kernel_bits": "kernel_bits",
                "threshold_frac_bits": "threshold_frac_bits", "max_steps": "max_steps",
                "quantizer": "quantizer"}

#: ``{option: allowed names}`` of the options that take a name, not an integer.
HARDWARE_CHOICES = {"quantizer": QUANTIZERS}

#: The options of the integer arithmetic alone (no geometry): what a subcommand that models the
#: arithmetic without building hardware (``khop precision``) offers.
ARITHMETIC_OPTIONS = tuple(name for name in HARDWARE_OPTIONS if name in _FIXED_FIELD)

#: ``{option: (lo, hi)}``, ``hi=None``: up to N (checked with the network's shape).
HARDWARE_RANGES = {name: FixedConfig.RANGES[_FIXED_FIELD[name]] if name in _FIXED_FIELD
                   else (1, MAX_BATCH) if name == "batch"
                   else (1, None) for name in HARDWARE_OPTIONS if name not in HARDWARE_CHOICES}

#: Appended to an option's help where it takes a list (``multi``).
LIST_SUFFIX = "; a comma list, with ranges LO:HI (e.g. 8,12:16)"

_FIXED = FixedConfig()


def _span(name):
    lo, hi = HARDWARE_RANGES[name]
    return f"{lo}..{hi}"


#: The help of each option (the same on every subcommand).
HARDWARE_HELP = {
    "bits": f"bits per dual weight code, {_span('bits')}; unset: {_FIXED.weight_bits}",
    "lanes": f"MAC lanes, neurons accumulated in parallel, 1..N; unset: the target's default, "
             f"else {GENERIC_DEFAULTS.lanes} (at most N)",
    "batch": f"queries in flight, sharing every pattern and weight read, "
             f"{_span('batch')}; unset: the target's default, else {GENERIC_DEFAULTS.batch}",
    "popcount_width": "bits of the XNOR/popcount per cycle, 1..N (fewer: p * (ceil(N/W) - 1) "
                      "more cycles per step); unset: N",
    "kernel_bits": f"width of the kernel lookup-table entries, {_span('kernel_bits')}; unset: "
                   f"the target's default, else {GENERIC_DEFAULTS.kernel_bits}",
    "threshold_frac_bits": f"fractional bits of the threshold constant r_fx, "
                           f"{_span('threshold_frac_bits')}; unset: the target's default, "
                           f"else {GENERIC_DEFAULTS.threshold_frac_bits}",
    "max_steps": f"retrieval step limit of the hardware, {_span('max_steps')}; unset: "
                 f"{_FIXED.max_steps}",
    "quantizer": f"how the dual weights become codes and a threshold per neuron, one of "
                 f"{', '.join(QUANTIZERS)}; unset: the network file's (paper for a version-1 "
                 f"file), else {_FIXED.quantizer}",
}


def add_hardware_options(parser, *, multi=False, only=HARDWARE_OPTIONS):
    """Add the hardware option group to ``parser``; returns the argument group.

    ``multi``: ``True`` (every option takes a comma list, see :func:`khop.argtypes.int_list`)
    or the names of the options that do. ``only`` restricts the group to some of the options (a
    subcommand that cannot honour an option does not offer it); names, ranges, defaults and help
    are always these.
    """
    lists = set(HARDWARE_OPTIONS if multi is True else (multi or ()))
    for name in (*only, *lists):
        if name not in HARDWARE_OPTIONS:
            raise ValueError(f"unknown hardware option {name!r}; choose from "
                             f"{', '.join(HARDWARE_OPTIONS)}")
    group = parser.add_argument_group(
        "hardware options", "the accelerator's arithmetic and geometry (the same on every "
        "subcommand; unset options take the target's default)")
    for name in only:
        many = name in lists
        if name in HARDWARE_CHOICES:
            names = HARDWARE_CHOICES[name]
            kind = dict(type=name_list(names), metavar="LIST") if many else \
                dict(choices=names, metavar="NAME")
        else:
            lo, hi = HARDWARE_RANGES[name]
            kind = dict(type=int_list(lo, hi), metavar="LIST") if many else \
                dict(type=int_in(lo, hi), metavar="INT")
        explains_default(group.add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None, **kind,
            help=HARDWARE_HELP[name] + (LIST_SUFFIX if many else "")))
    return group


def hardware_options(args):
    """``{option: value or None}`` of the hardware options in parsed ``args``, the keyword
    arguments of :func:`khop.hw.params.hardware_params` and :func:`khop.hw.params.configure`."""
    return {name: getattr(args, name) for name in HARDWARE_OPTIONS if hasattr(args, name)}

