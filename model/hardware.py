"""From a trained network to the hardware: parameters and the integer network, validated."""

from .errors import ParameterError
from .fixed import FixedConfig, integer_network

__all__ = ["hardware_for"]


def hardware_for(net, bits=2, lanes=16, popcount_width=None, kernel_bits=16,
                 threshold_frac_bits=16, max_steps=30):
    """``(AccelParams, IntegerNetwork)`` for network ``net``; bad values raise ParameterError.

    ``AccelParams`` lives in ``hw``; it is imported here lazily so ``model`` itself never needs
    Amaranth (only callers that build hardware do).
    """
    from khop.hw.params import AccelParams

    try:
        params = AccelParams(n=net.n, p=net.p, weight_bits=bits, lanes=lanes,
                             popcount_width=popcount_width, kernel_bits=kernel_bits,
                             threshold_frac_bits=threshold_frac_bits, max_steps=max_steps)
        config = FixedConfig(weight_bits=bits, kernel_bits=kernel_bits,
                             threshold_frac_bits=threshold_frac_bits, max_steps=max_steps)
    except (ValueError, TypeError) as e:
        raise ParameterError(f"{e} (network N={net.n}, P={net.p})") from None
    return params, integer_network(net.patterns, net.alpha, net.gamma, config)
