"""Pattern memory: the P stored patterns, ``popcount_width`` bits per word."""

import numpy as np

from .layout import pattern_words
from .params import AccelParams
from .word_memory import WordMemory

__all__ = ["PatternMemory"]


class PatternMemory(WordMemory):
    """P x N pattern bits as ``p * chunks`` words of ``popcount_width`` bits (block RAM).

    Word ``mu * chunks + c`` holds bits ``c*W .. c*W+W-1`` of pattern mu, bit value 1 meaning +1,
    zero past n (see :mod:`khop.hw.layout`). Read latency: 1 cycle.

    Parameters
    ----------
    params : AccelParams
    patterns : (p, n) array of 0/1 bits or None
        Initial contents; ``None`` leaves the memory zero until loaded.
    """

    def __init__(self, params: AccelParams, patterns=None):
        init = [] if patterns is None else pattern_words(params, np.asarray(patterns))
        super().__init__(params.pattern_depth, params.pattern_width, init)
