"""``khop build``, ``run``, ``estimate`` and ``sweep``: the board and synthesis subcommands.

Parse and print only; the work is in :mod:`khop.boards`. Boards, devices, their clocks and
default geometry come from the target table (:mod:`khop.boards.targets`).
"""

import argparse
import sys

from khop.model.memory import check_queries
from khop.model.netfile import load_network
from khop.model.retrieval import MAX_STEPS_RANGE

from .argtypes import fraction, int_in, int_list, name_list, number_in, positive
from .cli_common import UsageError, add_subcommand, checked
from .options import add_hardware_options, hardware_options
from .outputs import to_json

__all__ = ["add_build", "add_run", "add_estimate", "add_sweep"]


def _geometry(t):
    return f"{t.clock_mhz:g} MHz, {t.geometry}"


def _board_help():
    from khop.boards.targets import BOARDS

    return "; ".join(f"{b.name} ({b.description}: {_geometry(b)})" for b in BOARDS.values())


def _device_help():
    from khop.boards.targets import TARGETS

    out = []
    for t in TARGETS.values():
        d = t.device
        out.append(f"{d.name} ({d.part}: {d.luts} LUT4, {d.bram} {d.bram_cell}"
                   + (f", {d.spram} SPRAM" if d.spram else "")
                   + (f", {d.dsp} {d.dsp_cell}" if d.dsp else "")
                   + f"; {_geometry(t)}" + (f", as the {t.name}" if t.board else "") + ")")
    return "; ".join(out)


# khop build

def add_build(subparsers):
    from khop.boards.build import PLACEMENT_SEEDS
    from khop.boards.targets import board_names

    p = add_subcommand(subparsers, "build",
                       "bitstream of the accelerator and its UART link for a board",
                       cmd_build, boards=_board_help())
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--board", required=True, choices=board_names(),
                   help="target board")
    add_hardware_options(p)
    p.add_argument("--clock-mhz", type=positive, default=None,
                   help="accelerator clock made by the PLL; None means the board's default")
    p.add_argument("-o", "--out", default="build/board", help="output directory")
    p.add_argument("--seeds", type=int_in(1), default=PLACEMENT_SEEDS,
                   help="placements to try (nextpnr --seed 1..SEEDS, one after the other) until "
                        "one meets the clock: near a device's limits Fmax moves with the "
                        "placement")
    p.add_argument("--generate-only", action="store_true",
                   help="write the Yosys/nextpnr inputs and scripts without running them")


def cmd_build(args):
    """Synthesises, places and routes the accelerator (memories empty: the network is loaded at run
    time with 'khop run') behind the UART frame bridge for a board, with YoWASP Yosys/nextpnr
    from PyPI, and writes OUT/khop_board.bin or .bit and OUT/report.json and report.txt
    (LUTs/LCs, FFs, block RAM, SPRAM, DSP blocks, Fmax against the clock, the synthesis by
    module); OUT
    appears only when the build succeeds (a failed build's files go to OUT.failed). Boards
    (default clock and geometry): {boards}. NET sets N and P; unset hardware options take the
    board's default.
    """
    from khop.boards.build import build_board
    from khop.boards.targets import get_board

    net = load_network(args.network)
    board = checked(get_board, name=args.board)
    params = board.params(net.n, net.p, gamma=net.gamma, **hardware_options(args))
    clock = None if args.clock_mhz is None else args.clock_mhz * 1e6
    report = build_board(board.name, params, args.out, clock_hz=clock,
                         run=not args.generate_only, seeds=args.seeds)
    print(report.format())
    if args.generate_only:
        print(f"  generated {args.out} (not run: --generate-only)")


# khop run

def add_run(subparsers):
    from khop.boards.protocol import DEFAULT_BAUDRATE

    p = add_subcommand(subparsers, "run",
                       "load a network into a board and check its recall", cmd_run)
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB1")
    p.add_argument("--baud", type=int_in(1200), default=DEFAULT_BAUDRATE, help="UART baud rate")
    p.add_argument("--timeout", type=positive, default=2.0,
                   help="seconds each link operation may take (a request with its resends, "
                        "or a window of LOADs); a finite number above 0")
    p.add_argument("--queries", type=int_in(1), default=100, help="number of noisy queries")
    p.add_argument("--noise", type=fraction, default=0.2,
                   help="fraction of the bits flipped in each query")
    p.add_argument("--seed", type=int_in(0), default=0, help="seed of the noisy queries")
    add_hardware_options(p)
    # Test only: talk to the device emulator instead of a serial port (lanes of the emulated
    # hardware).
    p.add_argument("--emulate-lanes", type=int_in(1), default=None, help=argparse.SUPPRESS)


def cmd_run(args):
    """Opens the board's serial port, reads the hardware's parameters, loads NET (quantized for
    them) over the UART link, recalls noisy queries on the board and compares every result
    (state, steps, converged) with the bit-exact integer model. Hardware options, if given, must
    equal what the board reports. Exit status 1 when any result differs.
    """
    from khop.boards.host import Device, run_network

    net = load_network(args.network)
    check_queries(args.queries, net.n, net.p)
    if args.emulate_lanes is not None:
        from khop.boards.emulator import EmulatedDevice
        from khop.hw.params import hardware_params
        emu = EmulatedDevice(hardware_params(net.n, net.p, lanes=args.emulate_lanes))
        device = Device(transport=emu)
    else:
        device = Device(args.port, baudrate=args.baud, timeout=args.timeout)
    with device:
        report = run_network(device, net, queries=args.queries, noise=args.noise,
                             seed=args.seed, options=hardware_options(args), port=args.port,
                             name=args.network)
    print(report.format())
    return 1 if report.mismatches else 0


# khop estimate

#: The fastest clock ``khop estimate`` takes: beyond every supported device's fabric.
MAX_CLOCK_MHZ = 1000.0


def add_estimate(subparsers):
    from khop.boards.targets import device_names

    p = add_subcommand(subparsers, "estimate",
                       "instant resource, cycle and throughput estimate",
                       cmd_estimate, devices=_device_help())
    p.add_argument("--device", required=True, choices=device_names(), help="target FPGA")
    p.add_argument("-N", "--neurons", dest="n", type=int_in(2), default=100,
                   help="number of neurons")
    p.add_argument("-P", "--patterns", dest="p", type=int_in(1), default=300,
                   help="number of stored patterns")
    add_hardware_options(p)
    p.add_argument("--clock-mhz", type=number_in(0.001, MAX_CLOCK_MHZ), default=None,
                   help="clock of the retrieval rate (MHz); None means the device's default")
    _add_steps(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_steps(p):
    """The ``--steps`` option of the retrieval-rate figures (estimate, sweep)."""
    p.add_argument("--steps", type=number_in(1, MAX_STEPS_RANGE[1]), default=2.0,
                   help="mean retrieval steps per query assumed for the retrieval rate "
                        f"(1..{MAX_STEPS_RANGE[1]}: a query takes at least one step; "
                        "'make bench-hardware' prints the mean of the ridge network's noisy "
                        "queries)")


def cmd_estimate(args):
    """Estimates, without running any tool, what the accelerator behind the UART frame bridge (the
    design 'khop build' puts on a board and 'khop sweep' synthesises) needs on a device: block
    RAM, SPRAM and distributed RAM exactly as Yosys infers them from the memory shapes, the DSP
    blocks of the sign update's threshold units as Yosys splits their multipliers, LUT4s,
    carries and flip-flops from a model fitted to Yosys runs (boards/calibration.json), the
    logic the device offers, cycles per retrieval step, retrievals per second at a clock, and
    whether it fits (else which resource is short and by how much; "may not fit" when only the
    logic estimate exceeds the device, by less than the model's tolerance: 'khop build' tries
    such a design). On the UP5K the weights are in SPRAM, as on the iCEBreaker. Unset hardware
    options and the clock take the device's defaults. Exit status 1 when it does not fit (0
    when it may). Devices (default clock and geometry):
    {devices}. Example: khop estimate --device up5k -N 100 -P 300 --bits 2 --lanes 8
    """
    from khop.boards.estimate import estimate
    from khop.boards.targets import device_target

    target = checked(device_target, device=args.device)
    params = target.params(args.n, args.p, **hardware_options(args))
    est = checked(estimate, params=params, device=target.device, clock_mhz=args.clock_mhz,
                  steps=args.steps)
    print(to_json(est.as_dict(), indent=2) if args.json else est.format())
    return 0 if est.fits or est.borderline else 1


# khop sweep

def add_sweep(subparsers):
    from khop.boards.sweep import DEFAULT_TIMEOUT, EXECUTORS
    from khop.boards.targets import device_names

    p = add_subcommand(subparsers, "sweep",
                       "synthesise a grid of configurations, tables and plots",
                       cmd_sweep, devices=_device_help())
    p.add_argument("--device", required=True, type=name_list(device_names()),
                   help="comma list of devices: " + ", ".join(device_names()))
    p.add_argument("--neurons", type=int_list(2), default="64,100,128,256",
                   help="comma list of N")
    p.add_argument("--load", type=int_list(1), default="2",
                   help="comma list of patterns per neuron (P = load x N)")
    add_hardware_options(p, multi=True)
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
    _add_steps(p)
    p.add_argument("-o", "--out", default="build/sweep", help="output directory")


def cmd_sweep(args):
    """Synthesises with Yosys (and with --pnr places and routes with nextpnr, for Fmax) the
    accelerator behind the UART frame bridge (boards.core.BoardCore, memories empty, weights in
    SPRAM on the UP5K) for every combination of the options (P = load x N; more lanes than N is
    a skipped row), JOBS at a time, each result cached in OUT/cache by a hash of the
    configuration, the tool versions and the design's sources, so a rerun only builds what
    changed. Writes OUT/results.csv, results.json, results.md (synthesis next to 'khop
    estimate', with the errors) and PNG plots (resources against N and lanes, the estimate
    against synthesis, Fmax, and retrievals/s at each device's clock and --steps against the
    synthesised LUTs). A configuration that fails, times out or does not
    fit is a row saying so. Unset hardware options take each device's default. Devices (default
    clock and geometry): {devices}. Example: khop sweep --device up5k,ecp5-85f --neurons 64,128
    --bits 1,2 --lanes 8,16 --jobs 2 --out build/sweep
    """
    import time

    from khop.boards.sweep import config_grid, run_sweep, tool_versions
    from khop.boards.sweep_report import summary_lines, write_outputs

    if args.executor == "process" and args.scheduler:
        raise UsageError("--scheduler is only for --executor dask")
    configs, skipped = config_grid(args.device, args.neurons, args.load, pnr=args.pnr,
                                   **hardware_options(args))
    versions = tool_versions()
    t0 = time.perf_counter()
    results = run_sweep(configs, args.out, jobs=args.jobs, executor=args.executor,
                        scheduler=args.scheduler, timeout=args.timeout, versions=versions)
    seconds = time.perf_counter() - t0
    built = sum(not r["cached"] for r in results)
    command = "khop " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["sweep"] else None
    meta = {"command": command, "versions": versions, "seconds": round(seconds, 1),
            "built": built, "cached": len(results) - built, "steps": args.steps}
    rows, summary = write_outputs(results + skipped, args.out, meta=meta, steps=args.steps)
    print(f"{len(configs)} configurations ({built} built, {len(results) - built} from the "
          f"cache) in {seconds:.1f} s; {len(skipped)} skipped")
    for line in summary_lines(summary):
        print(f"  {line}")
    print(f"  wrote {args.out}/results.csv, results.json, results.md and plots")
