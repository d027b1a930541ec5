"""``khop demo``: the paper's ridge network end to end, as a pipeline of named stages.

Every stage is a function of one shared :class:`DemoContext`; it reads what earlier stages left
there and adds its own results. Later stages (Verilog export, cosimulation, resource estimates)
are appended to :data:`STAGES`; a stage marked ``slow`` is skipped by ``--quick``.
"""

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from khop.model.compress import DEFAULT_QUANTIZER
from khop.model.errors import NetworkFileError
from khop.model.evaluate import (
    METRICS,
    compare,
    format_table,
    small_weight_fraction,
    variant_label,
    variant_spec,
    weight_variants,
)
from khop.model.klr import TrainConfig
from khop.model.netfile import load_network, save_network
from khop.model.retrieval import DEFAULT_MAX_STEPS
from khop.model.train import RIDGE_CONFIG, RIDGE_N, RIDGE_P, same_recipe, train_network

from .outputs import atomic_write, output_directory, to_json
from .progress import training_progress

__all__ = ["DemoContext", "Stage", "STAGES", "RIDGE", "run_demo"]


@dataclass(frozen=True)
class Ridge:
    """The operating point of the demo: docs/model.md section 2, the author's recipe
    (:data:`khop.model.train.RIDGE_CONFIG`)."""

    n: int = RIDGE_N
    p: int = RIDGE_P
    seed: int = 42
    config: TrainConfig = RIDGE_CONFIG
    bits: tuple = (None, 1, 2, 3, 4)        # None: the float weights; k: the paper's quantizer
    quantizer: str = DEFAULT_QUANTIZER      # shown beside the paper's at quantizer_bits
    quantizer_bits: tuple = (1, 2)
    noise: float = 0.2
    queries: int = 300
    query_seed: int = 0
    max_steps: int = DEFAULT_MAX_STEPS


RIDGE = Ridge()


@dataclass
class DemoContext:
    """State shared by the stages of one demo run."""

    out: Path
    quick: bool = False
    ridge: Ridge = RIDGE
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    net: object = None          # khop.model.netfile.Network, from the train stage
    rows: dict = None           # {label: {metric: value}}, the paper's, from the evaluate stage
    quantizer_rows: dict = None  # the same for the default quantizer's variants
    hw: tuple = None            # (AccelParams, IntegerNetwork), from _hardware
    failed: bool = False        # a stage found the hardware wrong

    def say(self, *args):
        print(*args, file=self.stream, flush=True)


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[DemoContext], None]
    slow: bool = False


def stage_train(ctx):
    """Reuse ``<out>/net.npz`` when it holds exactly this recipe, else train and save it."""
    r = ctx.ridge
    path = ctx.out / "net.npz"
    if path.exists():
        try:
            net = load_network(path)
        except NetworkFileError as e:
            ctx.say(f"ignoring unreadable {path}: {e}")
        else:
            if same_recipe(net, r.n, r.p, r.seed, r.config):
                ctx.net = net
                ctx.say(f"reusing {path} (same recipe; trained in "
                        f"{net.training.get('wall_seconds', float('nan')):.2f} s)")
            else:
                ctx.say(f"{path} holds another recipe; retraining")
    if ctx.net is None:
        with training_progress(r.config.epochs, "train") as progress:
            ctx.net = train_network(r.n, r.p, r.seed, r.config, progress)
        save_network(path, ctx.net)
        ctx.say(f"trained in {ctx.net.training['wall_seconds']:.2f} s, saved {path}")
    t = ctx.net.training
    a = ctx.net.alpha
    ctx.say(f"N={ctx.net.n} P={ctx.net.p} gamma={ctx.net.gamma} seed={t['seed']} "
            f"gradient={t['gradient']} epochs={t['epochs_run']} final loss={t['final_loss']:.2f}")
    ctx.say(f"weights in [{a.min():.3f}, {a.max():.3f}]")


def _demo_variants(r):
    """The paper's 1..4-bit variants, each of ``quantizer_bits`` followed by the default
    quantizer's (when it is not the paper's)."""
    out = []
    for v in r.bits:
        out.append(v)
        if v in r.quantizer_bits and r.quantizer != "paper":
            out.append((v, r.quantizer))
    return out


def stage_evaluate(ctx):
    """Float versus 1..4-bit weights (the paper's quantizer) and the default quantizer's 1- and
    2-bit weights on one shared set of noisy queries; writes metrics.json."""
    r = ctx.ridge
    variants = _demo_variants(r)
    evals = compare(ctx.net, variants, r.noise, r.queries, r.query_seed, r.max_steps)
    weights = weight_variants(ctx.net.alpha, variants)
    table = {label: {**ev.as_dict(),
                     "small_weight_fraction": small_weight_fraction(weights[label])}
             for label, ev in evals.items()}
    paper = {variant_label(*variant_spec(v)) for v in r.bits}
    ctx.rows = {label: row for label, row in table.items() if label in paper}
    ctx.quantizer_rows = extra = {label: row for label, row in table.items()
                                  if label not in paper}
    noise = f"{r.noise:.0%}"
    columns = {"bit_accuracy": "bit acc", "stability_margin": "margin",
               "recall_accuracy": f"recall@{noise}", "exact_recall": f"exact@{noise}",
               "small_weight_fraction": "|w|<1"}
    ctx.say(f"{r.queries} queries with {noise} of the bits flipped (seed {r.query_seed}), "
            f"at most {r.max_steps} synchronous steps; <k>-bit: the paper's quantizer, "
            f"<k>-bit {r.quantizer}: khop's default (docs/model.md section 6)")
    ctx.say(format_table(table, columns,
                         {"bit_accuracy": ".5f", "stability_margin": ".3f"}))
    path = ctx.out / "metrics.json"
    doc = {"network": str(ctx.out / "net.npz"), "n": ctx.net.n, "p": ctx.net.p,
           "gamma": ctx.net.gamma, "noise": r.noise, "queries": r.queries,
           "seed": r.query_seed, "max_steps": r.max_steps,
           "metrics": [*METRICS, "small_weight_fraction"], "rows": ctx.rows,
           "quantizer": r.quantizer, "quantizer_rows": extra}
    atomic_write(path, to_json(doc, indent=2) + "\n")
    ctx.say(f"wrote {path}")


def stage_paper(ctx):
    """Our figures next to the paper's claims (docs/model.md section 5), either way."""
    rows = ctx.rows
    a = ctx.net.alpha
    low = min(rows[k]["bit_accuracy"] for k in ("2-bit", "3-bit", "4-bit"))
    pos, neg = np.median(a[a > 0]), np.median(a[a < 0])
    claims = [
        ("R1", "bit accuracy 1.0 from float down to 2 bits",
         f"float {rows['float']['bit_accuracy']:.5f}, lowest of 2..4 bits {low:.5f}",
         rows["float"]["bit_accuracy"] == 1.0 and low == 1.0),
        ("R1", "1 bit near perfect", f"{rows['1-bit']['bit_accuracy']:.5f}",
         rows["1-bit"]["bit_accuracy"] >= 0.99),
        ("R2", "stability margin rises at very low k",
         (f"float {rows['float']['stability_margin']:.3f}, "
          f"2-bit {rows['2-bit']['stability_margin']:.3f}"),
         rows["2-bit"]["stability_margin"] > rows["float"]["stability_margin"]),
        ("R6", "2-bit recall > 0.85 at 20% noise", f"{rows['2-bit']['recall_accuracy']:.4f}",
         rows["2-bit"]["recall_accuracy"] > 0.85),
        ("R7", "bimodal weights, peaks near +-3, empty valley at 0",
         f"medians {neg:+.2f} / {pos:+.2f}, |alpha|<1: {small_weight_fraction(a):.4f}",
         small_weight_fraction(a) < 0.01),
    ]
    if ctx.ridge.noise != 0.2:
        claims = [c for c in claims if c[0] != "R6"]
    width = max(len(c[1]) for c in claims)
    for tag, claim, ours, holds in claims:
        ctx.say(f"{tag}  {claim.ljust(width)}  ours: {ours}  [{'holds' if holds else 'differs'}]")


def _hardware(ctx):
    """The demo's accelerator for the ridge network (2-bit weights, 16 lanes, the demo's
    quantizer with its threshold per neuron, the rest default), configured once for the verilog
    and cosim stages."""
    from khop.hw.params import configure

    if ctx.hw is None:
        ctx.hw = configure(ctx.net, bits=2, lanes=16, quantizer=ctx.ridge.quantizer)
    return ctx.hw


def stage_verilog(ctx):
    """The 2-bit, 16-lane accelerator for the ridge network: Verilog, JSON, Verilator lint."""
    from khop.hw.export import export
    from khop.sim.tools import verilator_lint

    params, inet = _hardware(ctx)
    v_path, j_path = export(params, inet, ctx.out / "rtl",
                            network_info={"file": str(ctx.out / "net.npz"),
                                          "gamma": ctx.net.gamma,
                                          "quantizer": params.fixed.quantizer})
    info = json.loads(j_path.read_text())
    ok, output = verilator_lint(v_path)
    ctx.say(f"wrote {v_path} ({v_path.stat().st_size // 1024} KiB) and {j_path} in "
            f"{info['generation_seconds']:.1f} s; verilator --lint-only: "
            f"{'clean' if ok else 'FAILED'}")
    if not ok:
        ctx.say(output)
    mem = params.memory_bits
    ctx.say(f"memories: patterns {mem['pattern']} b, weights {mem['weight']} b, "
            f"LUT {mem['lut']} b, thresholds {mem['threshold']} b; accumulators "
            f"{params.accumulator_bits} FFs ({params.batch} x {params.lanes} lanes)")
    ctx.say(f"cycles per retrieval step {params.cycles_per_step} against the bound "
            f"P*ceil(N/L) = {params.bound_cycles_per_step} "
            f"(x{params.cycles_per_step / params.bound_cycles_per_step:.3f})")
    int_acc = inet.bit_accuracy()
    label = variant_label(params.weight_bits, params.fixed.quantizer)
    float_acc = {**ctx.rows, **ctx.quantizer_rows}[label]["bit_accuracy"]
    ctx.say(f"integer model (kernel_bits {params.kernel_bits}, {label}): bit accuracy "
            f"{int_acc:.5f} (float {label} {float_acc:.5f})")


def stage_cosim(ctx):
    """A short cocotb + Verilator cosimulation of the generated Verilog against the model."""
    from khop.sim.runner import cosimulate

    params, inet = _hardware(ctx)
    res = cosimulate(params, inet, queries=50, noise=ctx.ridge.noise, seed=0,
                     build_dir=ctx.out / "cosim", progress=True)
    ctx.say(res.format(str(ctx.out / "net.npz")))
    if res.mismatches:
        ctx.failed = True


STAGES = (
    Stage("train", "train (or reuse) the ridge network", stage_train),
    Stage("evaluate", "float vs quantized weights", stage_evaluate),
    Stage("paper", "compare with the paper", stage_paper),
    Stage("verilog", "generate and lint the accelerator's Verilog", stage_verilog),
    Stage("cosim", "cosimulate 50 noisy queries in Verilator against the integer model",
          stage_cosim, slow=True),
)


def run_demo(out, quick=False, stages=STAGES, stream=None, ridge=RIDGE):
    """Run ``stages`` in order on a fresh :class:`DemoContext`; returns the context."""
    with output_directory(out) as out:
        ctx = DemoContext(out=out, quick=quick, ridge=ridge, stream=stream or sys.stdout)
        todo = [s for s in stages if not (quick and s.slow)]
        for i, stage in enumerate(todo, 1):
            ctx.say(f"\n== [{i}/{len(todo)}] {stage.name}: {stage.title} ==")
            stage.run(ctx)
    return ctx
