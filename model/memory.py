"""Refusing sizes the machine cannot hold, before allocating them.

A function that allocates arrays whose size the user chooses (N, P, the number of queries) first
estimates the bytes of its dominant arrays, next to the code that allocates them (e.g.
:func:`khop.model.klr.training_bytes`), and passes the estimate to :func:`require_memory`, which
raises a :class:`~khop.model.errors.ParameterError` naming the sizes, the bytes they need and the
memory of the machine, instead of a ``MemoryError`` or a machine that swaps for hours.
"""

import os

from .errors import ParameterError

__all__ = ["physical_memory", "require_memory", "format_bytes", "query_bytes", "check_queries"]


def physical_memory():
    """Bytes of physical memory of this machine, or ``None`` where the system does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def format_bytes(nbytes):
    """``nbytes`` in binary units with three significant digits, e.g. ``"29.1 TiB"``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def require_memory(nbytes, sizes, what):
    """Raise a ParameterError when ``nbytes`` exceed this machine's physical memory.

    Parameters
    ----------
    nbytes : int
        Estimated peak bytes of the dominant arrays.
    sizes : str
        The sizes that drive them, as the user gave them, e.g. ``"N=100 P=2000000"``.
    what : str
        What the dominant arrays are, e.g. ``"the P x P kernel matrix"``.
    """
    limit = physical_memory()
    if limit is not None and nbytes > limit:
        raise ParameterError(f"{sizes} needs about {format_bytes(nbytes)} ({what}); this "
                             f"machine has {format_bytes(limit)}")


def query_bytes(q, n, p):
    """Estimated peak bytes of drawing ``q`` noisy queries of ``n`` bits and retrieving them
    against ``p`` stored patterns (:func:`khop.model.metrics.noisy_queries`,
    :func:`khop.model.retrieval.retrieve`, the integer model's retrieval): the (q, p) distance and
    kernel matrices in float64 and int64 (about three at once) and the (q, n) random keys, sort
    indices and potentials."""
    return 8 * int(q) * (3 * int(p) + 3 * int(n))


def check_queries(q, n, p):
    """Raise a ParameterError when ``q`` queries of a network of ``n`` neurons and ``p``
    patterns need more memory than the machine has (:func:`query_bytes`)."""
    require_memory(query_bytes(q, n, p), f"{q} queries of N={n} against P={p}",
                   "the queries x P distance and kernel matrices")
