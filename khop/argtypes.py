"""argparse option types shared by every ``khop`` subcommand.

Their messages become ``argument --x: <message>``, then the one-line ``khop: error: ...``. Every
number option goes through one of these: none accepts NaN or an infinity (``float("inf")`` parses,
but no khop quantity is meaningful there).
"""

import argparse
import math

__all__ = ["int_in", "finite", "number_in", "fraction", "fraction_list", "positive", "int_list",
           "name_list"]


def int_in(lo, hi=None):
    """An integer option in ``lo..hi`` (``hi=None``: no upper limit)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}, not {value}")
        return value
    parse.__name__ = "integer"
    return parse


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def finite(text):
    """Any finite number (its range is checked where it is used, e.g. by a config class)."""
    return _number(text)


finite.__name__ = "number"


def number_in(lo, hi):
    """A finite number in ``lo..hi``."""
    def parse(text):
        value = _number(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be a number in [{lo:g}, {hi:g}], not {text}")
        return value
    parse.__name__ = "number"
    return parse


def fraction(text):
    """A number in [0, 1] (NaN is refused)."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], not {value}")
    return value


def fraction_list(text):
    """A comma list of numbers in [0, 1], e.g. ``0.1,0.2``; duplicates dropped, order kept."""
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers, not {text!r}")
    return list(dict.fromkeys(fraction(t) for t in items))


fraction_list.__name__ = "number list"


def positive(text):
    """A finite number above 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text}")
    return value


def int_list(lo, hi=None):
    """A comma list of integers in ``lo..hi`` (``hi=None``: no upper limit), e.g. ``8,16,32``;
    an item ``A:B`` stands for ``A..B`` inclusive (``8:20``, ``1,4:6``). Duplicates are dropped,
    the order kept."""
    one = int_in(lo, hi)

    def parse(text):
        items = [t.strip() for t in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"expected a comma list of integers or ranges "
                                             f"LO:HI, not {text!r}")
        values = []
        for item in items:
            if ":" not in item:
                values.append(one(item))
                continue
            ends = [t.strip() for t in item.split(":")]
            if len(ends) != 2 or not all(ends):
                raise argparse.ArgumentTypeError(f"expected a range LO:HI, not {item!r}")
            a, b = (one(t) for t in ends)
            if a > b:
                raise argparse.ArgumentTypeError(f"empty range {item!r}: {a} > {b}")
            values.extend(range(a, b + 1))
        return list(dict.fromkeys(values))
    parse.__name__ = "integer list"
    return parse


def name_list(choices):
    """A comma list of names from ``choices``; the message of a bad one lists them."""
    def parse(text):
        items = [t.strip() for t in text.split(",")]
        for t in items:
            if t not in choices:
                raise argparse.ArgumentTypeError(f"unknown {t!r}; choose from "
                                                 f"{', '.join(choices)}")
        return list(dict.fromkeys(items))
    parse.__name__ = "name list"
    return parse
