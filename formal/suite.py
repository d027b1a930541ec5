"""The proof suite: which property is proven on which configuration, how, and the results.

:func:`tasks` lists every run (:class:`FormalTask`): the accelerator's contract groups
(:data:`khop.formal.accelerator.GROUPS`) by k-induction on the small configurations of
:data:`CONFIGS`, by bounded model checking on the larger :data:`BMC_CONFIG`, the functional tie
rule by BMC, the cover goals, the two broken designs (expected to FAIL with a counterexample)
and the UART frame bridge by BMC. :func:`run_tasks` runs them (in parallel) and returns one
:class:`FormalResult` per run.
"""

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from khop.hw.params import hardware_params

from .accelerator import AcceleratorHarness
from .bridge import BridgeHarness, live_depth
from .invariants import mine, refine
from .sby import run_sby

__all__ = ["FormalConfig", "CONFIGS", "BMC_CONFIG", "FAULT_CONFIG", "CONTRACT", "PROVE_DEPTH",
           "MINING_QUERIES", "FormalTask", "FormalResult", "tasks", "select", "run_task",
           "run_tasks", "format_table", "results_csv"]


@dataclass(frozen=True)
class FormalConfig:
    """A small accelerator configuration (:func:`khop.hw.params.hardware_params` options)."""

    name: str
    n: int
    p: int
    bits: int
    lanes: int
    popcount_width: int
    kernel_bits: int = 3
    threshold_frac_bits: int = 1
    max_steps: int = 2
    threshold_units: int | None = None

    def params(self):
        return hardware_params(self.n, self.p, bits=self.bits, lanes=self.lanes,
                               popcount_width=self.popcount_width, kernel_bits=self.kernel_bits,
                               threshold_frac_bits=self.threshold_frac_bits,
                               max_steps=self.max_steps,
                               threshold_units=self.threshold_units)

    def describe(self):
        prm = self.params()
        return (f"N={prm.n} P={prm.p} k={prm.weight_bits} L={prm.lanes} W={prm.popcount_width} "
                f"KB={prm.kernel_bits} R={prm.threshold_frac_bits} S={prm.max_steps} "
                f"U={prm.threshold_units} ({prm.cycles_per_step} cycles/step)")


#: The configurations proven by k-induction: N 4..8, P 1..4, 1..4 weight bits, lanes 1..N and
#: popcount widths that divide N and that do not, threshold units taking a beat in one cycle
#: and in several (a last group of fewer lanes among them).
CONFIGS = (
    FormalConfig("c1", n=4, p=2, bits=1, lanes=2, popcount_width=3),
    FormalConfig("c2", n=5, p=3, bits=2, lanes=2, popcount_width=5, kernel_bits=4,
                 threshold_frac_bits=2, threshold_units=1),
    FormalConfig("c3", n=6, p=2, bits=3, lanes=6, popcount_width=4, max_steps=3,
                 threshold_units=4),
    FormalConfig("c4", n=8, p=4, bits=4, lanes=3, popcount_width=8, kernel_bits=4),
    FormalConfig("c5", n=7, p=1, bits=2, lanes=1, popcount_width=2, kernel_bits=5,
                 threshold_units=1),
)

#: The larger configuration checked by BMC to its worst-case latency (and by k-induction).
BMC_CONFIG = FormalConfig("big", n=16, p=3, bits=2, lanes=8, popcount_width=6, kernel_bits=6,
                          threshold_frac_bits=4, max_steps=2)

#: The configuration of the broken designs and of the non-converged cover (one step: their
#: traces are short).
FAULT_CONFIG = FormalConfig("f1", n=4, p=2, bits=1, lanes=2, popcount_width=3, max_steps=1)

#: The contract groups proven by k-induction.
CONTRACT = ("stream", "order", "load", "latency", "reset")

#: Queries simulated to mine a configuration's invariants (:func:`khop.formal.invariants.mine`).
MINING_QUERIES = 150

#: k of the k-induction (the mined invariants make the contract 1-inductive; a little margin).
PROVE_DEPTH = 3


@dataclass(frozen=True)
class FormalTask:
    """One run: ``prop`` on ``config`` in ``mode`` to ``depth``; ``expect`` is ``PASS`` (or
    ``FAIL`` for a broken design); ``quick`` runs in the quick subset."""

    prop: str
    config: FormalConfig
    mode: str
    depth: int
    expect: str = "PASS"
    quick: bool = False
    fault: str | None = None
    groups: tuple = ()
    covers: tuple = ()
    bridge: tuple = ()
    invariants: bool = False

    @property
    def key(self):
        """The run's folder name (``cover:result`` -> ``cover-result-c1-cover``: no ``:``,
        which some file systems refuse)."""
        return f"{self.prop}-{self.config.name}-{self.mode}".replace(":", "-")

    def harness(self, invariants=None):
        prm = self.config.params()
        if self.bridge:
            return BridgeHarness(prm, groups=self.bridge)
        return AcceleratorHarness(prm, groups=self.groups, covers=self.covers,
                                  invariants=invariants, fault=self.fault)


@dataclass
class FormalResult:
    """What one run gave.

    ``status``: ``PASS`` (proven, or every cover reached), ``FAIL`` (a counterexample, in
    ``trace``), ``UNKNOWN`` (k-induction did not close and the base case found nothing),
    ``ERROR`` (the run failed). ``ok``: the status is the ``expected`` one.
    """

    property: str
    configuration: str
    mode: str
    depth: int
    status: str
    seconds: float
    trace: str | None = None
    expected: str = "PASS"
    parameters: str = ""
    log: str = field(default="", repr=False)

    @property
    def ok(self):
        return self.status == self.expected

    def as_dict(self):
        d = asdict(self)
        d.pop("log")
        d["ok"] = self.ok
        return d

    def format(self):
        verdict = self.status if self.expected == "PASS" else f"{self.status} (expected FAIL)"
        return (f"{self.property:<34} {self.configuration:<6} {self.mode:<6} {self.depth:>5} "
                f"{verdict:<22} {self.seconds:>8.1f}")


def _latency(cfg):
    prm = cfg.params()
    return prm.max_steps * prm.cycles_per_step


def tasks():
    """Every run of ``make formal``, the quick subset marked."""
    out = []
    for i, cfg in enumerate(CONFIGS):
        quick = i == 0
        for group in CONTRACT:
            out.append(FormalTask(group, cfg, "prove", PROVE_DEPTH, quick=quick,
                                  groups=(group,), invariants=True))
        out.append(FormalTask("cover:result", cfg, "cover", cfg.params().cycles_per_step + 3,
                              quick=quick, covers=("result",)))
        out.append(FormalTask("cover:load", cfg, "cover", 3, quick=quick, covers=("load",)))
    big = BMC_CONFIG
    out.append(FormalTask("contract", big, "prove", PROVE_DEPTH, groups=CONTRACT,
                          invariants=True))
    out.append(FormalTask("contract", big, "bmc", _latency(big) + 3, groups=CONTRACT))
    first = CONFIGS[0]
    out.append(FormalTask("ties", first, "bmc", _latency(first) + 2, groups=("ties",)))
    one = FAULT_CONFIG
    # A result that did not converge: one step that changes the state (S = 1 keeps it short).
    out.append(FormalTask("cover:nonconverged", one, "cover", _latency(one) + 12,
                          covers=("nonconverged",)))
    for fault, groups in (("drop_under_backpressure", ("stream", "order")),
                          ("tie_sets_one", ("ties",))):
        out.append(FormalTask(f"fault:{fault}", one, "bmc", _latency(one) + 3,
                              expect="FAIL", quick=True, fault=fault, groups=groups))
    out.append(FormalTask("bridge:replies", first, "bmc", 30, quick=True, bridge=("replies",)))
    out.append(FormalTask("bridge:live", first, "bmc", live_depth(), bridge=("live",)))
    return out


def select(all_tasks, *, quick=False, properties=None, configs=None):
    """The tasks of the quick subset and/or of the named properties and configurations
    (``None``: all)."""
    chosen = [t for t in all_tasks if (t.quick or not quick)
              and (properties is None or t.prop in properties)
              and (configs is None or t.config.name in configs)]
    return chosen


class _Invariants:
    """Mined and refined invariants per configuration, made once (thread-safe)."""

    def __init__(self, workdir):
        self._lock = threading.Lock()
        self._cache = {}
        self._workdir = Path(workdir)

    def get(self, cfg):
        with self._lock:
            if cfg.name not in self._cache:
                prm = cfg.params()
                inv = mine(prm, queries=MINING_QUERIES)
                inv, _ = refine(prm, inv, self._workdir / f"invariants-{cfg.name}",
                                depth=PROVE_DEPTH)
                self._cache[cfg.name] = inv
            return self._cache[cfg.name]


def run_task(task, workdir, invariants=None):
    """Run one task in ``workdir``; its :class:`FormalResult`. ``invariants`` caches the
    configurations' invariants between tasks (``None``: a cache for this task)."""
    if invariants is None:
        invariants = _Invariants(workdir)
    inv = invariants.get(task.config) if task.invariants else None
    harness = task.harness(inv)
    out = run_sby(harness, harness.ports, Path(workdir) / task.key, mode=task.mode,
                  depth=task.depth)
    return FormalResult(task.prop, task.config.name, task.mode, task.depth, out.status,
                        round(out.seconds, 2), out.trace, task.expect, task.config.describe(),
                        out.log)


def run_tasks(chosen, workdir, *, jobs=1, progress=None):
    """Run ``chosen`` tasks, ``jobs`` at a time; the results in the order of ``chosen``.
    ``progress(result)`` is called as each finishes."""
    invariants = _Invariants(workdir)

    def one(task):
        res = run_task(task, workdir, invariants)
        if progress is not None:
            progress(res)
        return res

    # The deep BMC runs first, so the other runs fill the other workers meanwhile.
    order = sorted(range(len(chosen)),
                   key=lambda i: -(chosen[i].depth if chosen[i].mode == "bmc" else 0))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {i: pool.submit(one, chosen[i]) for i in order}
        return [futures[i].result() for i in range(len(chosen))]


HEADER = (f"{'property':<34} {'config':<6} {'mode':<6} {'depth':>5} {'result':<22} "
          f"{'seconds':>8}")


def format_table(results):
    """The table ``khop formal`` prints, the configurations explained below it."""
    lines = [HEADER, "-" * len(HEADER), *(r.format() for r in results)]
    configs = {}
    for r in results:
        configs.setdefault(r.configuration, r.parameters)
    lines.append("")
    lines += [f"{name}: {text}" for name, text in configs.items()]
    failed = [r for r in results if not r.ok]
    total = sum(r.seconds for r in results)
    lines.append(f"{len(results) - len(failed)} of {len(results)} as expected "
                 f"({total:.0f} s of proofs)")
    for r in failed:
        where = f", counterexample {r.trace}" if r.trace else ""
        lines.append(f"NOT AS EXPECTED: {r.property} on {r.configuration}: {r.status}{where}")
    return "\n".join(lines)


def results_csv(results):
    buf = io.StringIO()
    rows = [r.as_dict() for r in results]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["property"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
