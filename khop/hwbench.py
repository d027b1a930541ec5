"""``khop bench --hardware``: retrievals per second of each board's accelerator against NumPy on
the same queries (a benchmark, not a test: it prints figures, it asserts nothing).

For each board of :data:`khop.boards.targets.TARGETS` and one trained network (default: the
ridge network, N=100, P=300, trained as ``khop train`` does):

1. the design: the board's default geometry (:meth:`Target.params`), its clock;
2. the Verilator cosimulation (``cosim_queries`` noisy queries, then a back-to-back stream of
   about half as many): cycles per step measured on the queries that found the accelerator
   idle against the cycle model and the weight-read bound; the stream's cycles measured against
   the slots' timing model (:func:`khop.hw.timing.back_to_back`); the number of results and
   latencies that differ from the models (0 expected);
3. the mean number of steps of ``queries`` noisy queries (20 % of the bits flipped) in the
   integer model, which the hardware equals on every bit, step and flag, and how often it
   returns the stored pattern: exact recall (the whole pattern) and bit-wise recall;
4. the clock the design meets: ``khop build``'s nextpnr Fmax against the board clock (a build
   per board, cached in ``out`` by configuration; ``build=False`` skips it and assumes the board
   clock);
5. retrievals/s at the clock met: the ``queries`` noisy queries offered back to back, their
   results taken at once, timed by :func:`khop.hw.timing.back_to_back` from their steps (the
   model the cosimulated stream equals to the edge), and what that stream gets of the slots'
   capacity (:func:`slot_use`);

next to the float model's retrievals/s in NumPy on the same queries (one batch, best of three,
one BLAS thread: :func:`khop.bench.numpy_retrievals`), its recall on them, and the ratio.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from khop.hw.params import configure
from khop.hw.timing import back_to_back
from khop.model.fixed import to_bits
from khop.model.metrics import noisy_queries, recall_stats, summarize_recall

from .bench import blas_threads, numpy_retrievals

__all__ = ["HardwareFigure", "build_directory", "bench_board", "run_hardware_bench",
           "format_hardware_figures", "slot_use"]

#: The ridge network of the paper and of ``khop demo``.
RIDGE = {"n": 100, "p": 300, "gamma": 0.02, "seed": 42}


@dataclass(frozen=True)
class HardwareFigure:
    """One board's figures (see the module docstring)."""

    board: str
    device: str
    n: int
    p: int
    weight_bits: int
    lanes: int
    batch: int                       # queries in flight
    clock_mhz: float                 # the board's clock
    fmax_mhz: float | None           # nextpnr; None when not built
    build: str                       # "ok", "not built", or why the build failed
    clock_met_mhz: float | None      # the board clock if met, else None
    cycles_per_step_model: int
    cycles_per_step_measured: float | None
    bound_cycles_per_step: int
    stream_queries: int              # the cosimulated back-to-back stream
    stream_cycles_measured: int | None
    stream_cycles_model: int | None
    cosim_queries: int
    cosim_mismatches: int
    queries: int
    noise: float
    mean_steps: float
    exact_recall: float              # the integer model's final state is the stored pattern
    recall_accuracy: float           # bit-wise: final bits equal to the stored pattern's
    retrievals_per_s: float | None   # at the clock met
    slot_use: float                  # the stream's rate over the slots' capacity (slot_use)
    numpy_retrievals_per_s: float
    ratio: float | None              # hardware over NumPy

    def as_dict(self):
        return asdict(self)


def build_directory(out, target, params):
    """Where the build of ``params`` on ``target`` is cached: ``out/<board>-<key>``, the key a
    hash of the parameters, the board's clock, the tool and design versions
    (:func:`khop.boards.sweep.tool_versions`: a change of the design's sources builds again) and
    the placements a build tries (:data:`khop.boards.build.PLACEMENT_SEEDS`)."""
    from khop.boards.build import PLACEMENT_SEEDS
    from khop.boards.sweep import tool_versions

    doc = {"params": params.as_dict(), "clock_mhz": target.clock_mhz,
           "versions": tool_versions(), "placement_seeds": PLACEMENT_SEEDS}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:10]
    return Path(out) / f"{target.name}-{key}"


def slot_use(params, timing, mean_steps):
    """What a back-to-back stream (``timing``, a :class:`~khop.hw.timing.StreamTiming` of
    queries taking ``mean_steps`` steps on average) gets of the slots' capacity: its retrievals
    per cycle over ``batch / (cycles_per_step * mean_steps)``, the rate with every slot running
    a query in every step. The rest is lost to results leaving in query order (a slot whose
    query is done waits for the results before it to be taken before it takes the next query),
    to the join windows and to the handshakes."""
    capacity = params.batch / (params.cycles_per_step * mean_steps)
    return timing.retrievals_per_second(1.0) / capacity


def _built_fmax(target, params, out, build, report):
    """``(fmax_mhz, status)`` of ``khop build`` for ``params`` on ``target``, from the cache
    ``out/<board>-<key>`` or a new build."""
    if not build:
        return None, "not built"
    from khop.boards.build import BuildError, build_board

    directory = build_directory(out, target, params)
    cached = directory / "report.json"
    if cached.exists():
        doc = json.loads(cached.read_text())
        return doc.get("fmax_mhz"), "ok (cached)"
    try:
        result = build_board(target.name, params, directory,
                             report=lambda s: report(f"  {target.name}: {s}"))
    except BuildError as e:
        return None, f"build failed: {str(e).splitlines()[0][:160]}"
    return result.fmax_mhz, "ok"


def bench_board(target, net, queries, stored, numpy_rate, *, cosim_queries=50, noise=0.2,
                seed=0, build=True, out="build/bench-hardware", report=print):
    """The :class:`HardwareFigure` of ``target`` (a :class:`~khop.boards.targets.Target`) for
    trained network ``net`` and bipolar ``queries`` with ``stored``, the indices of the
    patterns they are noisy copies of (as :func:`noisy_queries` draws them), next to
    ``numpy_rate`` (NumPy's retrievals/s on the same queries)."""
    from khop.sim.runner import cosimulate

    params, inet = configure(net, defaults=target.defaults)
    report(f"  {target.name}: cosimulation of {cosim_queries} queries (Verilator) ...")
    cos = cosimulate(params, inet, queries=cosim_queries, noise=noise, seed=seed,
                     progress=False, name=f"bench-{target.name}",
                     scenarios=("noisy", "back_to_back"))
    stream = cos.per_test.get("back_to_back", {})
    model = inet.retrieve(to_bits(queries))
    recall = summarize_recall(model.states, to_bits(net.patterns[stored]), model.steps,
                              model.converged)
    mean_steps = recall.mean_steps
    timing = back_to_back(params, model.steps)
    fmax, status = _built_fmax(target, params, out, build, report)
    clock = target.clock_mhz
    if build:
        met = clock if fmax is not None and fmax >= clock else None
    else:
        met = clock
    rate = None if met is None else timing.retrievals_per_second(met * 1e6)
    return HardwareFigure(
        board=target.name, device=target.device.part, n=params.n, p=params.p,
        weight_bits=params.weight_bits, lanes=params.lanes, batch=params.batch,
        clock_mhz=clock,
        fmax_mhz=fmax, build=status, clock_met_mhz=met,
        cycles_per_step_model=params.cycles_per_step,
        cycles_per_step_measured=cos.cycles_per_step.measured,
        bound_cycles_per_step=params.bound_cycles_per_step,
        stream_queries=stream.get("stream_queries", 0),
        stream_cycles_measured=stream.get("stream_cycles"),
        stream_cycles_model=stream.get("stream_cycles_model"), cosim_queries=cos.queries,
        cosim_mismatches=cos.mismatches + cos.cycle_mismatches, queries=len(queries),
        noise=noise, mean_steps=mean_steps, exact_recall=recall.exact_recall,
        recall_accuracy=recall.recall_accuracy, retrievals_per_s=rate,
        slot_use=slot_use(params, timing, mean_steps), numpy_retrievals_per_s=numpy_rate,
        ratio=None if rate is None else rate / numpy_rate)


def run_hardware_bench(net=None, *, boards=None, queries=1000, cosim_queries=50, noise=0.2,
                       seed=0, build=True, out="build/bench-hardware", report=print):
    """Measure every board (default: every board of the target table); returns ``(figures,
    numpy)`` with ``numpy`` the NumPy side (retrievals/s, mean steps, exact and bit-wise
    recall, BLAS threads)."""
    from khop.boards.targets import board_names, get_board
    from khop.model.klr import TrainConfig
    from khop.model.train import train_network

    if net is None:
        report(f"training the ridge network (N={RIDGE['n']}, P={RIDGE['p']}) ...")
        net = train_network(RIDGE["n"], RIDGE["p"], RIDGE["seed"],
                            TrainConfig(gamma=RIDGE["gamma"]))
    q, stored = noisy_queries(net.patterns, noise, queries, np.random.default_rng(seed))
    rate, _, steps = numpy_retrievals(net, q)
    recall = recall_stats(net.patterns, net.alpha, net.gamma, q, stored)
    numpy = {"retrievals_per_s": rate, "mean_steps": steps, "exact_recall": recall.exact_recall,
             "recall_accuracy": recall.recall_accuracy, "threads": blas_threads(),
             "queries": queries}
    figures = [bench_board(get_board(name), net, q, stored, rate, cosim_queries=cosim_queries,
                           noise=noise, seed=seed, build=build, out=out, report=report)
               for name in (boards or board_names())]
    return figures, numpy


def _num(value, fmt="{:,.0f}"):
    return "--" if value is None else fmt.format(value)


def _pct(value):
    return f"{100 * value:.1f} %"


def format_hardware_figures(figures, numpy):
    """The table ``khop bench --hardware`` prints."""
    lines = [(f"NumPy float model, {numpy['queries']} queries at 20 % noise, one batch "
             f"({numpy['threads']}): {numpy['retrievals_per_s']:,.0f} retrievals/s, mean "
             f"{numpy['mean_steps']:.2f} steps, exact recall {_pct(numpy['exact_recall'])}, "
             f"bit-wise {_pct(numpy['recall_accuracy'])}"),
             "",
             (f"{'board':<11} {'lanes':>5} {'B':>2} {'clock':>7} {'Fmax':>7} {'cyc/step':>9} "
             f"{'model':>6} {'bound':>6} {'stream':>13} {'differ':>6} {'steps':>5} "
             f"{'exact':>7} {'bits':>7} {'slots':>7} {'retr/s':>9} {'NumPy':>9} {'ratio':>6}")]
    for f in figures:
        stream = f"{_num(f.stream_cycles_measured)}/{_num(f.stream_cycles_model)}"
        lines.append(
            f"{f.board:<11} {f.lanes:>5} {f.batch:>2} {f.clock_mhz:>7g} "
            f"{_num(f.fmax_mhz, '{:.2f}'):>7} {_num(f.cycles_per_step_measured, '{:.0f}'):>9} "
            f"{f.cycles_per_step_model:>6} {f.bound_cycles_per_step:>6} {stream:>13} "
            f"{f.cosim_mismatches:>6} {f.mean_steps:>5.2f} {_pct(f.exact_recall):>7} "
            f"{_pct(f.recall_accuracy):>7} {_pct(f.slot_use):>7} {_num(f.retrievals_per_s):>9} "
            f"{_num(f.numpy_retrievals_per_s):>9} {_num(f.ratio, '{:.2f}x'):>6}")
        if not f.build.startswith("ok"):
            lines.append(f"  {f.board}: {f.build}")
    first = figures[0] if figures else None
    lines.append(
        "clock, Fmax in MHz; cyc/step measured in the cosimulation (queries that found the "
        "accelerator idle), model = cycle model, bound = p x ceil(n / lanes) weight reads per "
        f"step for B queries; stream = cycles of a cosimulated back-to-back stream of "
        f"{first.stream_queries if first else 0} queries, measured/model; differ = results "
        "or latencies not equal to the models; steps, exact (the whole stored pattern "
        "returned) and bits (bit-wise) recall: the integer model the hardware equals, on the "
        "same queries as NumPy; slots: what those queries back to back get of the slots' "
        "capacity (B queries per cyc/step x steps; the rest waits for earlier results to leave "
        "in order, and for the join windows); retr/s: that stream (khop.hw.timing) at the "
        "board clock when nextpnr meets it")
    return "\n".join(lines)
