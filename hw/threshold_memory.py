"""Threshold memory: one signed threshold ``r_fx`` per neuron, digit-sliced."""

from .layout import threshold_words
from .params import AccelParams
from .word_memory import WordMemory

__all__ = ["ThresholdMemory"]


class ThresholdMemory(WordMemory):
    """The n thresholds as ``blocks * threshold_digits`` words of ``lanes * D`` bits
    (``D = threshold_digit_bits``).

    Word ``b * threshold_digits + j`` holds digit j of the thresholds ``r_fx`` of neurons
    ``b*L .. b*L+L-1``, lane l in bits ``l*D .. l*D+D-1`` (see :mod:`khop.hw.layout`): the sign
    update reads one word per digit step, in address order, so no lane selects a digit from a
    wide word. Read latency: 1 cycle (the word holds while ``en`` is low); a load writes one
    word.

    Parameters
    ----------
    params : AccelParams
    r_fx : (n,) array of signed thresholds, or None
        Initial contents; ``None`` leaves the memory zero until loaded.
    """

    def __init__(self, params: AccelParams, r_fx=None):
        init = [] if r_fx is None else threshold_words(params, r_fx)
        super().__init__(params.threshold_depth, params.threshold_width, init)
