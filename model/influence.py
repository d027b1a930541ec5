"""Walsh influence of one neuron's input on another's output, estimated by sampling
(docs/model.md R4).

The influence of input j on output i is ``Inf[i, j] = P_s[ sign(h_i(s)) != sign(h_i(s^(j))) ]``
over uniformly random states ``s`` in {-1,+1}^N, with ``s^(j)`` the state ``s`` with bit j
flipped. It is estimated from ``S`` independent uniform states.

Flipping ``s_j`` moves the Hamming distance to pattern ``xi^mu`` by ``+1`` when
``s_j == xi^mu_j`` and by ``-1`` otherwise, so the kernel becomes
``K'(s^(j), xi^mu) = K(s, xi^mu) * exp(-4 gamma * s_j xi^mu_j)``: one (S, N, P) elementwise product
and one (S N, P) @ (P, N) matrix product give all N flips of all S states at once.

Signs compare with ``numpy.sign`` (a potential of exactly 0 has sign 0 on both sides).
"""

from dataclasses import dataclass

import numpy as np

from .kernel import kernel_matrix
from .stats import gini

__all__ = ["Influence", "walsh_influence", "cross_influences", "cross_influence_gini"]


@dataclass(frozen=True)
class Influence:
    """Estimated influences: ``matrix[i, j]`` = Inf of input j on output i, from ``samples``."""

    matrix: np.ndarray   # (N, N) float64
    samples: int         # number of uniform random states the estimate averages over

    @property
    def standard_error(self):
        """Binomial standard error of every entry, ``sqrt(p (1 - p) / samples)``."""
        m = self.matrix
        return np.sqrt(m * (1 - m) / self.samples)


def walsh_influence(patterns, weights, gamma, samples, rng, batch=128):
    """Estimate the (N, N) Walsh influence matrix from ``samples`` uniform random states.

    Parameters
    ----------
    patterns : (P, N) array of +-1
    weights : (P, N) dual weights
    gamma : RBF kernel width
    samples : number of random states S
    rng : numpy.random.Generator drawing the states
    batch : states per vectorized batch (memory ~ 8 * batch * N * P bytes)
    """
    if not (isinstance(samples, int | np.integer) and samples >= 1):
        raise ValueError(f"samples must be a positive integer, not {samples!r}")
    X = np.asarray(patterns)
    A = np.asarray(weights, dtype=np.float64)
    p, n = X.shape
    up, down = np.exp(-4.0 * gamma), np.exp(4.0 * gamma)
    xt = X.T.astype(np.int8)                                   # (N, P)
    changed = np.zeros((n, n), dtype=np.int64)                 # [j, i] while counting
    done = 0
    while done < samples:
        b = min(batch, samples - done)
        s = (2 * rng.integers(0, 2, size=(b, n)) - 1).astype(np.int8)
        K = kernel_matrix(s, X, gamma)                         # (b, P)
        sign_h = np.sign(K @ A)                                # (b, N)
        agree = s[:, :, None] * xt[None, :, :]                 # (b, N_j, P): +1 -> distance +1
        Kf = K[:, None, :] * np.where(agree > 0, up, down)     # kernel after flipping s_j
        sign_f = np.sign((Kf.reshape(b * n, p) @ A).reshape(b, n, n))   # (b, j, i)
        changed += np.sum(sign_f != sign_h[:, None, :], axis=0)
        done += b
    return Influence(matrix=(changed.T / samples).astype(np.float64), samples=int(samples))


def cross_influences(matrix):
    """The (N, N-1) off-diagonal influences: row i holds ``Inf[i, j]`` for every ``j != i``."""
    m = np.asarray(matrix)
    n = m.shape[0]
    return m[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def cross_influence_gini(matrix):
    """Gini coefficient of each output neuron's cross-influences (self-influence excluded), (N,)."""
    return gini(cross_influences(matrix), axis=-1)
