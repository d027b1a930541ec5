"""Threshold memory: one signed threshold ``r_fx`` per neuron, a group of lanes per word."""

from .layout import threshold_words
from .params import AccelParams
from .word_memory import WordMemory

__all__ = ["ThresholdMemory"]


class ThresholdMemory(WordMemory):
    """The n thresholds as ``blocks * threshold_groups`` words of ``threshold_units *
    threshold_bits`` bits.

    Word ``b * threshold_groups + g`` holds the thresholds ``r_fx`` of the lanes ``g * U ..
    g * U + U - 1`` (``U = threshold_units``) of block b, unit u in bits ``u * threshold_bits
    ..`` (see :mod:`khop.hw.layout`): the sign update reads one word per group, in address
    order, each unit taking its own field. Read latency: 1 cycle (the word holds while ``en``
    is low); a load writes one word.

    Parameters
    ----------
    params : AccelParams
    r_fx : (n,) array of signed thresholds, or None
        Initial contents; ``None`` leaves the memory zero until loaded.
    """

    def __init__(self, params: AccelParams, r_fx=None):
        init = [] if r_fx is None else threshold_words(params, r_fx)
        super().__init__(params.threshold_depth, params.threshold_width, init)
