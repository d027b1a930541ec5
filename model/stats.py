"""Summary statistics for the paper's experiments: the Gini coefficient and a log-log slope fit.

- Gini coefficient of non-negative values ``x_1 <= ... <= x_n`` (sorted ascending):
  ``G = 2 sum_k k x_k / (n sum_k x_k) - (n + 1) / n``; 0 when all values are equal, ``(n-1)/n``
  when one value holds everything, 1/3 for a large uniform(0, 1) sample (docs/model.md R4).
- Power law ``y = c x^beta``: ordinary least squares of ``log y`` on ``log x`` (docs/model.md R5),
  with the standard error of the slope and r^2.
"""

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["gini", "LogLogFit", "loglog_fit", "mean_std"]


def gini(x, axis=-1):
    """Gini coefficient of non-negative values along ``axis``; ``float64`` array (or float).

    A slice whose values are all zero has Gini 0 (nothing to be unequal about).
    """
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0 or a.shape[axis] == 0:
        raise ValueError("the Gini coefficient needs at least one value")
    if np.any(a < 0) or not np.all(np.isfinite(a)):
        raise ValueError("the Gini coefficient needs finite non-negative values")
    a = np.sort(np.moveaxis(a, axis, -1), axis=-1)
    n = a.shape[-1]
    k = np.arange(1, n + 1, dtype=np.float64)
    total = a.sum(axis=-1)
    safe = np.where(total > 0, total, 1.0)
    g = np.where(total > 0, 2.0 * (a @ k) / (n * safe) - (n + 1.0) / n, 0.0)
    return float(g) if g.ndim == 0 else g


@dataclass(frozen=True)
class LogLogFit:
    """``log y = intercept + slope * log x`` by least squares (natural logarithms)."""

    slope: float
    intercept: float
    slope_se: float     # standard error of the slope (nan with fewer than 3 points)
    r2: float
    points: int

    def predict(self, x):
        return np.exp(self.intercept) * np.asarray(x, dtype=np.float64) ** self.slope

    def as_dict(self):
        return asdict(self)


def loglog_fit(x, y):
    """Fit ``y = exp(intercept) * x^slope`` to positive ``x``, ``y`` (1-D, same length >= 2)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need two equally long arrays of >= 2 points, not {x.size} and {y.size}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("a log-log fit needs positive x and y")
    lx, ly = np.log(x), np.log(y)
    mx, my = lx.mean(), ly.mean()
    sxx = np.sum((lx - mx) ** 2)
    if sxx == 0:
        raise ValueError("a log-log fit needs at least two distinct x values")
    slope = np.sum((lx - mx) * (ly - my)) / sxx
    intercept = my - slope * mx
    resid = ly - (intercept + slope * lx)
    ssr = float(np.sum(resid ** 2))
    sst = float(np.sum((ly - my) ** 2))
    n = x.size
    se = float(np.sqrt(ssr / (n - 2) / sxx)) if n > 2 else float("nan")
    r2 = 1.0 - ssr / sst if sst > 0 else 1.0
    return LogLogFit(slope=float(slope), intercept=float(intercept), slope_se=se, r2=float(r2),
                     points=int(n))


def mean_std(values, axis=0):
    """Mean and sample standard deviation (ddof = 1; 0 for a single value) along ``axis``."""
    a = np.asarray(values, dtype=np.float64)
    std = a.std(axis=axis, ddof=1) if a.shape[axis] > 1 else np.zeros_like(a.mean(axis=axis))
    return a.mean(axis=axis), std
