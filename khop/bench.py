"""``khop bench``: speed of the golden model against its goals (a benchmark, not a test).

Figures:

- training time, N=100, P=300, 300 epochs, float64: goal < 2 s
- training time, N=1000, P=3000, 300 epochs, float32: goal < 180 s (skipped by ``--quick``)
- float retrieval throughput on the ridge network, a batch of 1000 queries with 20 % noise:
  queries/s and synchronous update steps/s (one step = one update of one query's N neurons).
  The goals (>= 5000 queries/s, >= 20000 steps/s) are khop's own: they keep the float oracle far
  faster than any simulated hardware it checks.
"""

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from khop.model.klr import TrainConfig
from khop.model.metrics import noisy_queries
from khop.model.retrieval import retrieve
from khop.model.train import train_network

from .progress import training_progress

__all__ = ["Figure", "time_training", "numpy_retrievals", "blas_threads", "retrieval_throughput",
           "run_bench", "format_figures"]


@dataclass(frozen=True)
class Figure:
    """One measured figure and its goal."""

    name: str
    value: float
    unit: str
    goal: float
    better: Literal["lower", "higher"]

    @property
    def passed(self):
        return self.value < self.goal if self.better == "lower" else self.value >= self.goal

    def as_dict(self):
        return {**asdict(self), "passed": self.passed}


def time_training(n, p, config, seed=42, progress=None):
    """Train on ``p`` random patterns of ``n`` neurons; returns ``(seconds, network)``."""
    net = train_network(n, p, seed, config, progress)
    return net.training["wall_seconds"], net


#: BLAS threads of the NumPy retrieval figures: one, because two threads on a busy 2-core machine
#: are several times slower than one for these matrix sizes (measured: 4,169 against 41,863
#: retrievals/s of the ridge network while a build ran).
BLAS_THREADS = 1


def numpy_retrievals(net, queries, repeats=3, threads=BLAS_THREADS):
    """Float retrieval of bipolar ``queries`` in one batch, best of ``repeats``, with NumPy's
    BLAS limited to ``threads`` threads (``None``: as NumPy started).

    Returns ``(queries per second, update steps per second, mean steps)``.
    """
    from threadpoolctl import threadpool_limits

    best, steps = float("inf"), 0
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            res = retrieve(queries, net.patterns, net.alpha, net.gamma)
            best = min(best, time.perf_counter() - start)
            steps = int(res.steps.sum())
    return len(queries) / best, steps / best, steps / len(queries)


def blas_threads(threads=BLAS_THREADS):
    """How the retrieval figures were measured, e.g. ``"1 BLAS thread (openblas)"``."""
    from threadpoolctl import threadpool_info

    libs = sorted({i.get("internal_api", "?") for i in threadpool_info()
                   if i.get("user_api") == "blas"}) or ["no BLAS found"]
    count = "all BLAS threads" if threads is None else \
        f"{threads} BLAS thread{'s' if threads != 1 else ''}"
    return f"{count} ({', '.join(libs)})"


def retrieval_throughput(net, count=1000, noise=0.2, seed=0, repeats=3):
    """Best of ``repeats`` float retrievals of ``count`` noisy queries
    (:func:`numpy_retrievals`).

    Returns ``(queries per second, update steps per second)``.
    """
    queries, _ = noisy_queries(net.patterns, noise, count, np.random.default_rng(seed))
    qps, sps, _ = numpy_retrievals(net, queries, repeats)
    return qps, sps


def run_bench(quick=False, report: Callable[[Figure], None] | None = None):
    """Measure every figure (the long training unless ``quick``); returns the list of figures.

    ``report`` is called with each figure as soon as it is measured.
    """
    figures = []

    def add(fig):
        figures.append(fig)
        if report is not None:
            report(fig)

    small = TrainConfig(gamma=0.02, epochs=300, dtype="float64")
    seconds, net = time_training(100, 300, small)
    add(Figure("train N=100 P=300, 300 epochs, float64", seconds, "s", 2.0, "lower"))
    if not quick:
        large = TrainConfig(gamma=0.02, epochs=300, dtype="float32")
        with training_progress(large.epochs, "train N=1000 P=3000") as progress:
            seconds, _ = time_training(1000, 3000, large, progress=progress)
        add(Figure("train N=1000 P=3000, 300 epochs, float32", seconds, "s", 180.0, "lower"))
    qps, sps = retrieval_throughput(net)
    add(Figure("float retrieval, 1000 queries, 20% noise", qps, "queries/s", 5000.0, "higher"))
    add(Figure("float retrieval, update steps", sps, "steps/s", 20000.0, "higher"))
    return figures


def format_figure(fig):
    op = "<" if fig.better == "lower" else ">="
    value = f"{fig.value:.2f}" if fig.value < 100 else f"{fig.value:,.0f}"
    goal = f"{fig.goal:g}" if fig.goal < 100 else f"{fig.goal:,.0f}"
    return (f"{fig.name:<42} {value:>10} {fig.unit:<10} goal {op} {goal:<7} "
            f"{'PASS' if fig.passed else 'MISS'}")


def format_figures(figures):
    return "\n".join(map(format_figure, figures))


def machine():
    """A one-line description of where the figures were measured."""
    return f"{os.cpu_count()} CPUs, NumPy {np.__version__}, retrieval on {blas_threads()}"
