"""Bipolar patterns, Hamming distances and the RBF kernel as a function of the Hamming distance.

For bipolar vectors ``x, y`` in {-1,+1}^N, ``||x - y||^2 = 4 * hamming(x, y)``, so the RBF kernel
``exp(-gamma * ||x - y||^2)`` equals ``exp(-4 * gamma * d)`` with ``d`` the Hamming distance
(docs/model.md section 1). Everything here is vectorized over patterns and queries.
"""

import numpy as np

__all__ = ["MAX_GAMMA", "random_patterns", "hamming", "kernel_from_distance", "kernel_matrix",
           "gram_matrix"]

#: The largest kernel parameter: ``4 gamma d`` must stay finite for every distance ``d`` (above
#: about 186 the kernel at ``d >= 1`` is 0 in float64 already; beyond ~1e307 ``-inf * 0`` is NaN).
MAX_GAMMA = 1e300


def random_patterns(rng, n, p):
    """Return ``p`` uniform random bipolar patterns of ``n`` neurons as an ``int8`` (p, n) array."""
    if n < 1 or p < 1:
        raise ValueError(f"need n >= 1 and p >= 1, not n={n!r}, p={p!r}")
    # rng.integers(0, 2) is the draw of rng.choice([-1, 1]): seed 42 reproduces the figures of
    # docs/model.md.
    return (2 * rng.integers(0, 2, size=(p, n)) - 1).astype(np.int8)


def hamming(a, b):
    """Hamming distances between the rows of bipolar arrays ``a`` (q, n) and ``b`` (p, n).

    Returns an ``int64`` (q, n) -> (q, p) array. Uses ``d = (n - a . b) / 2``, exact in integers.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    n = a.shape[-1]
    # float64 matrix products are exact for |dot| < 2**53 and use BLAS.
    dot = a.astype(np.float64) @ b.astype(np.float64).T
    return ((n - dot) / 2).astype(np.int64)


def kernel_from_distance(d, gamma, dtype=np.float64):
    """The kernel ``exp(-4 gamma d)`` of Hamming distances ``d``."""
    return np.exp(-4.0 * gamma * np.asarray(d, dtype=dtype)).astype(dtype, copy=False)


def kernel_matrix(a, b, gamma, dtype=np.float64):
    """Kernel values ``K(a_q, b_mu)`` between the rows of two bipolar arrays, shape (q, p)."""
    return kernel_from_distance(hamming(a, b), gamma, dtype)


def gram_matrix(patterns, gamma, dtype=np.float64):
    """The P x P Gram matrix of the stored patterns."""
    return kernel_matrix(patterns, patterns, gamma, dtype)
