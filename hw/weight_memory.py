"""Weight memory: the k-bit dual weight codes, ``lanes`` codes per word."""

import numpy as np

from .layout import weight_words
from .params import AccelParams
from .word_memory import WordMemory

__all__ = ["WeightMemory"]


class WeightMemory(WordMemory):
    """P x N codes of k bits as ``p * blocks`` words of ``lanes * k`` bits (block RAM).

    Word ``mu * blocks + b`` holds the codes of neurons ``b*L .. b*L+L-1`` for pattern mu,
    lane l in bits ``l*k .. l*k+k-1``, zero past n (see :mod:`khop.hw.layout`). Streamed once per
    retrieval step in address order. Read latency: 1 cycle.

    Parameters
    ----------
    params : AccelParams
    codes : (p, n) array of codes in 0 .. 2^k - 1, or None
    """

    def __init__(self, params: AccelParams, codes=None):
        init = [] if codes is None else weight_words(params, np.asarray(codes))
        super().__init__(params.weight_depth, params.weight_width, init)
