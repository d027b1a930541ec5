"""argparse option types shared by every ``khop`` subcommand.

Their messages become ``argument --x: <message>``, then the one-line ``khop: error: ...``.
"""

import argparse

__all__ = ["int_in", "fraction"]


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


def fraction(text):
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], not {value}")
    return value
