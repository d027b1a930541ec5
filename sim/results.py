"""Results of a cosimulation as dataclasses that print and serialise themselves.

- :class:`TestCase` / :class:`TestResults`: the cocotb tests of one simulator run, read from
  its ``results.xml`` by :func:`parse_results`.
- :class:`CyclesPerStep`: measured, modelled and lower-bound clock cycles per retrieval step.
- :class:`CosimResult`: what :func:`khop.sim.runner.run` returns and ``khop cosim`` prints:
  :meth:`CosimResult.format` is the table, :meth:`CosimResult.as_dict` the ``--json`` object.
"""

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from khop.hw.params import AccelParams

__all__ = ["TestCase", "TestResults", "parse_results", "CyclesPerStep", "CosimResult"]


@dataclass(frozen=True)
class TestCase:
    """One cocotb test: ``status`` is ``"passed"``, ``"failed"`` or ``"skipped"``."""

    __test__ = False   # not a pytest class

    name: str
    status: str
    message: str = ""
    wall_seconds: float = 0.0
    sim_time_ns: float = 0.0

    def as_dict(self):
        return {"name": self.name, "status": self.status, "message": self.message,
                "wall_seconds": self.wall_seconds, "sim_time_ns": self.sim_time_ns}


@dataclass(frozen=True)
class TestResults:
    """The cocotb tests of one simulator run."""

    __test__ = False

    cases: tuple = ()

    def count(self, status):
        return sum(c.status == status for c in self.cases)

    @property
    def total(self):
        return len(self.cases)

    @property
    def passed(self):
        return self.count("passed")

    @property
    def failed(self):
        return self.count("failed")

    @property
    def skipped(self):
        return self.count("skipped")

    @property
    def ok(self):
        """At least one test passed and none failed."""
        return self.failed == 0 and self.passed > 0

    def as_dict(self):
        return {"total": self.total, "passed": self.passed, "failed": self.failed,
                "skipped": self.skipped, "cases": [c.as_dict() for c in self.cases]}


def parse_results(xml_path):
    """The :class:`TestResults` of a cocotb ``results.xml``."""
    cases = []
    for tc in ET.parse(xml_path).getroot().iter("testcase"):
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = tc.find(tag)
            if el is not None:
                status = {"failure": "failed", "error": "failed", "skipped": "skipped"}[tag]
                message = (el.get("message") or el.text or "").strip()
                break
        cases.append(TestCase(name=tc.get("name"), status=status, message=message,
                              wall_seconds=float(tc.get("time", 0) or 0),
                              sim_time_ns=float(tc.get("sim_time_ns", 0) or 0)))
    return TestResults(tuple(cases))


@dataclass(frozen=True)
class CyclesPerStep:
    """Clock cycles per retrieval step: ``measured`` in the simulation (``None`` before any
    result), ``model`` (:attr:`AccelParams.cycles_per_step`), ``bound``
    (:attr:`AccelParams.bound_cycles_per_step`)."""

    measured: float | None = None
    model: int | None = None
    bound: int | None = None

    @property
    def ratio(self):
        """Measured over bound, ``None`` when unknown."""
        return self.measured / self.bound if self.measured and self.bound else None

    def as_dict(self):
        return {"measured": self.measured, "model": self.model, "bound": self.bound}


_SUMMED = ("sent", "results", "mismatches", "cycle_mismatches", "steps", "timed_steps",
           "latency_cycles", "simulated_cycles", "wall_seconds", "cpu_seconds")
_RECALL = ("recall_bits", "recall_hw_equal", "recall_model_equal", "recall_queries", "exact_hw",
           "exact_model")


def _ratio(a, b):
    return a / b if b else None


def _fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


@dataclass
class CosimResult:
    """One cosimulation of the accelerator against the integer model.

    Attributes
    ----------
    queries, sent : int
        Results checked, queries sent.
    mismatches, cycle_mismatches : int
        Results that differ from the integer model; latencies off the cycle model.
    recall_accuracy, model_recall_accuracy : float or None
        Fraction of the state bits equal to the stored target, hardware and integer model
        (the ``noisy`` scenario when it ran, else every scenario with targets).
    exact_recall, model_exact_recall : float or None
        Fraction of the queries recalled exactly, hardware and model.
    mean_steps : float or None
        Retrieval steps per result.
    cycles_per_step : CyclesPerStep
    simulated_cycles : int
    test_wall_seconds, test_cpu_seconds : float
        Time in the cocotb tests themselves.
    messages : list of str
        The first mismatch reports.
    sim : str
        ``"verilator"`` or ``"icarus"``.
    passed : bool
        Every cocotb test that ran passed (and at least one ran).
    tests : TestResults
    wall_seconds, compile_seconds : float
        The simulator process, and the build (of the cached build when ``cached_build``).
    cycles_per_second, run_cycles_per_second : float or None
        Simulated cycles per second of the tests, and of the whole simulator process.
    params : AccelParams or None
    fault, seed, noise, build_dir, test_dir, log, waves :
        The run: injected fault, seed, noise, directories, log file, waves file or ``None``.
    per_test : dict
        The cocotb side's figures per test (``"scenario/flow"``); not in :meth:`as_dict`.
    """

    queries: int = 0
    sent: int = 0
    mismatches: int = 0
    cycle_mismatches: int = 0
    recall_accuracy: float | None = None
    model_recall_accuracy: float | None = None
    exact_recall: float | None = None
    model_exact_recall: float | None = None
    mean_steps: float | None = None
    cycles_per_step: CyclesPerStep = field(default_factory=CyclesPerStep)
    simulated_cycles: int = 0
    test_wall_seconds: float = 0.0
    test_cpu_seconds: float = 0.0
    messages: list = field(default_factory=list)
    sim: str = ""
    passed: bool = False
    tests: TestResults = field(default_factory=TestResults)
    wall_seconds: float = 0.0
    compile_seconds: float = 0.0
    cached_build: bool = False
    cycles_per_second: float | None = None
    run_cycles_per_second: float | None = None
    params: AccelParams | None = None
    fault: str | None = None
    seed: int = 0
    noise: float = 0.0
    build_dir: str = ""
    test_dir: str = ""
    log: str = ""
    waves: str | None = None
    per_test: dict = field(default_factory=dict)

    @classmethod
    def from_figures(cls, per_test, params: AccelParams, *, tests: TestResults, wall_seconds,
                     **run):
        """Totals over the cocotb side's per-test figures (``per_test``) of a run on a design
        of ``params``; ``run`` gives the remaining fields (sim, seed, directories...)."""
        tot = {k: sum(t.get(k, 0) for t in per_test.values()) for k in _SUMMED}
        noisy = {k: t for k, t in per_test.items() if k.startswith("noisy/")} or per_test
        tot.update({k: sum(t.get(k, 0) for t in noisy.values()) for k in _RECALL})
        bits, rq, results = tot["recall_bits"], tot["recall_queries"], tot["results"]
        return cls(
            queries=results, sent=tot["sent"], mismatches=tot["mismatches"],
            cycle_mismatches=tot["cycle_mismatches"],
            recall_accuracy=_ratio(tot["recall_hw_equal"], bits),
            model_recall_accuracy=_ratio(tot["recall_model_equal"], bits),
            exact_recall=_ratio(tot["exact_hw"], rq),
            model_exact_recall=_ratio(tot["exact_model"], rq),
            mean_steps=_ratio(tot["steps"], results),
            cycles_per_step=CyclesPerStep(
                measured=_ratio(tot["latency_cycles"], tot["timed_steps"]),
                model=params.cycles_per_step, bound=params.bound_cycles_per_step),
            simulated_cycles=tot["simulated_cycles"],
            test_wall_seconds=tot["wall_seconds"], test_cpu_seconds=tot["cpu_seconds"],
            messages=[m for t in per_test.values() for m in t.get("messages", [])][:20],
            passed=tests.ok, tests=tests, wall_seconds=wall_seconds,
            cycles_per_second=_ratio(tot["simulated_cycles"], tot["wall_seconds"]),
            run_cycles_per_second=(tot["simulated_cycles"] / wall_seconds
                                   if wall_seconds > 0 else None),
            params=params, per_test=per_test, **run)

    @property
    def clean(self):
        """Passed, and no result or latency differs from the models."""
        return self.passed and not self.mismatches and not self.cycle_mismatches

    def as_dict(self):
        """The JSON object of ``khop cosim --json`` (every field but ``per_test``)."""
        out = {}
        for name in self.__dataclass_fields__:
            if name == "per_test":
                continue
            value = getattr(self, name)
            if hasattr(value, "as_dict"):
                value = value.as_dict()
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def format(self, network_label=""):
        """The table ``khop cosim`` prints, headed ``khop cosim NETWORK_LABEL``."""
        prm, cps, tests = self.params, self.cycles_per_step, self.tests
        cached = " (cached build)" if self.cached_build else ""
        design = (f"N={prm.n} P={prm.p}, {prm.weight_bits}-bit weights, {prm.lanes} lanes, "
                  f"batch {prm.batch}, popcount width {prm.popcount_width}"
                  ) if prm is not None else "-"
        ran = tests.total - tests.skipped
        simulator = f"{self.sim}, {tests.passed} of {ran} cocotb tests passed"
        exact = f"{_fmt(self.exact_recall)} hardware, {_fmt(self.model_exact_recall)} model"
        steps = (f"{_fmt(cps.measured, '.1f')} measured, {cps.model} model, "
                 f"{cps.bound} bound ({_fmt(cps.ratio, '.3f')} x bound)")
        speed = f"{self.wall_seconds:.1f} s, {_fmt(self.cycles_per_second, ',.0f')} cycles/s"
        rows = [
            ("design", design),
            ("simulator", simulator),
            ("queries", f"{self.queries} (noise {self.noise:.0%}, seed {self.seed})"),
            ("mismatches", f"{self.mismatches} results, {self.cycle_mismatches} latencies"),
            ("recall (hardware)", _fmt(self.recall_accuracy)),
            ("recall (model)", _fmt(self.model_recall_accuracy)),
            ("exact recall", exact),
            ("cycles per step", steps),
            ("simulated cycles", f"{self.simulated_cycles:,}"),
            ("compile", f"{self.compile_seconds:.1f} s{cached}"),
            ("run", speed),
            ("log", self.log),
        ]
        if self.waves:
            rows.append(("waves", self.waves))
        width = max(len(k) for k, _ in rows)
        head = f"khop cosim {network_label}".rstrip()
        lines = [head] + [f"  {k:<{width}}  {v}" for k, v in rows]
        lines += [f"  ! {m}" for m in self.messages[:5]]
        return "\n".join(lines)

    def __str__(self):
        return self.format()
