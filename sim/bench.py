"""Speed of the cosimulation: simulated clock cycles per wall-clock second (a benchmark, not a
test).

:func:`bench_cosim` builds the ridge network's accelerator (N=100, P=300, gamma=0.02, seed 42,
2-bit weights, 16 lanes) for each simulator, from scratch unless asked otherwise, and runs noisy
queries through it without idle cycles or backpressure. Compile time is reported apart from run
time; the run's figure is cycles per second of the cocotb tests themselves (``test``) and of the
whole simulator process including its start-up (``process``). Goal: >= 200,000 cycles/s with
Verilator.
"""

import platform
import time
from pathlib import Path

import numpy as np

from khop.hw.params import configure
from khop.model.kernel import random_patterns
from khop.model.klr import TrainConfig, train_klr
from khop.model.netfile import Network, load_network

from . import runner

__all__ = ["RIDGE", "GOAL_CYCLES_PER_SECOND", "ridge_network", "bench_cosim", "format_bench"]

#: The paper's ridge network.
RIDGE = {"n": 100, "p": 300, "gamma": 0.02, "seed": 42}
GOAL_CYCLES_PER_SECOND = 200_000


def ridge_network(n=RIDGE["n"], p=RIDGE["p"], gamma=RIDGE["gamma"], seed=RIDGE["seed"],
                  epochs=300):
    """Train the ridge network (random patterns of ``default_rng(seed)``, exact-gradient KLR)."""
    patterns = random_patterns(np.random.default_rng(seed), n, p)
    config = TrainConfig(gamma=gamma, epochs=epochs)
    result = train_klr(patterns, config)
    return Network(patterns=patterns, alpha=result.alpha, gamma=gamma,
                   training={"seed": seed, "epochs": epochs, "gamma": gamma},
                   loss_history=result.loss_history)


def bench_cosim(network=None, *, bits=2, lanes=16, queries=100, icarus_queries=10, noise=0.2,
                seed=0, sims=("verilator", "icarus"),
                build_dir=runner.DEFAULT_BUILD_ROOT / "bench", rebuild=True, report=print):
    """Compile and run the ridge cosimulation on each available simulator.

    Parameters
    ----------
    network : path, Network or None
        ``None`` trains the ridge network.
    bits, lanes : int
        Hardware options (:func:`khop.hw.params.configure`).
    queries, icarus_queries : int
        Noisy queries per run with Verilator and with Icarus (about 30 times slower).
    rebuild : bool
        Compile from scratch (so the compile time is measured) even when a build exists.
    report : callable or None
        Called with one line of text per result.

    Returns
    -------
    list of dict
        Per simulator: ``sim``, ``available`` (and ``reason``), ``compile_seconds``,
        ``run_seconds`` (simulator process), ``test_seconds`` (the cocotb test), ``cycles``,
        ``cycles_per_second`` (test), ``process_cycles_per_second``, ``goal``, ``passed``
        (goal met), ``mismatches``.
    """
    report = report or (lambda line: None)
    if network is None:
        t0 = time.perf_counter()
        network = ridge_network()
        report(f"trained the ridge network in {time.perf_counter() - t0:.1f} s")
    if not isinstance(network, Network):
        network = load_network(network)
    params, inet = configure(network, bits=bits, lanes=lanes)
    report(f"ridge cosimulation: N={params.n} P={params.p} {params.weight_bits}-bit, "
           f"{params.lanes} lanes, noisy queries ({noise:.0%}), "
           f"{platform.machine()} {platform.python_version()}")
    figures = []
    for sim in sims:
        ok, reason = runner.sim_available(sim)
        if not ok:
            figures.append({"sim": sim, "available": False, "reason": reason})
            report(f"{sim:9s}  skipped: {reason}")
            continue
        bld = runner.build(params, inet, sim=sim, build_root=Path(build_dir), rebuild=rebuild,
                           name="bench")
        count = icarus_queries if sim == "icarus" else queries
        res = runner.run(bld, seed=seed, queries=count, noise=noise, scenarios=("noisy",),
                         flows=("none",), name="bench")
        cps = res.cycles_per_second
        fig = {"sim": sim, "available": True, "compile_seconds": bld.compiled.compile_seconds,
               "compile_cached": bld.compiled.cached, "run_seconds": res.wall_seconds,
               "test_seconds": res.test_wall_seconds, "cycles": res.simulated_cycles,
               "cycles_per_second": cps,
               "process_cycles_per_second": res.run_cycles_per_second,
               "cpu_cycles_per_second": (res.simulated_cycles / res.test_cpu_seconds
                                         if res.test_cpu_seconds else None),
               "goal": GOAL_CYCLES_PER_SECOND,
               "passed": bool(cps and cps >= GOAL_CYCLES_PER_SECOND),
               "mismatches": res.mismatches, "queries": res.queries}
        figures.append(fig)
        report(format_bench(fig))
    return figures


def format_bench(fig):
    """One line for a figure of :func:`bench_cosim`."""
    if not fig.get("available", True):
        return f"{fig['sim']:9s}  skipped: {fig['reason']}"
    cached = " (cached)" if fig["compile_cached"] else ""
    goal = "goal met" if fig["passed"] else "goal missed"
    return (f"{fig['sim']:9s}  compile {fig['compile_seconds']:6.1f} s{cached}  "
            f"run {fig['run_seconds']:5.1f} s ({fig['test_seconds']:.1f} s in tests)  "
            f"{fig['queries']} queries, {fig['cycles']:,} cycles  "
            f"{fig['cycles_per_second']:,.0f} cycles/s "
            f"({fig['process_cycles_per_second']:,.0f} with start-up, "
            f"{fig['cpu_cycles_per_second']:,.0f} per CPU second)  "
            f"goal >= {fig['goal']:,}: {goal}; {fig['mismatches']} mismatches")


def main():
    """``python -m khop.sim.bench`` (``make bench-cosim``): print the figures of
    :func:`bench_cosim`."""
    print("ridge cosimulation (N=100, P=300, 2-bit, 16 lanes): simulated cycles per second")
    bench_cosim()


if __name__ == "__main__":
    main()
