"""``khop cosim``: the generated Verilog against the integer model, from the command line.

:func:`add_cosim_command` declares the subcommand on an ``argparse`` subparsers object and
:func:`cmd_cosim` runs it: one table (or one JSON object with ``--json``) and exit status 1 when
any result differs from the integer model or misses the cycle model. Errors a user can fix
(missing simulator, unreadable network, bad parameters) are raised as
:class:`model.errors.KhopError`.
"""

import argparse
import json

from khop.argtypes import fraction, int_in
from khop.model.errors import ParameterError

from .config import FLOWS, SCENARIOS
from .runner import DEFAULT_BUILD_ROOT, run_cosim
from .tools import SIMULATORS

__all__ = ["add_cosim_command", "cmd_cosim", "format_summary"]




def _names(allowed, what):
    def parse(text):
        names = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in names if s not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"unknown {what} {bad[0] if bad else text!r}; "
                                             f"choose from {', '.join(allowed)}")
        return names
    parse.__name__ = what
    return parse


def add_cosim_command(subparsers):
    """Declare ``khop cosim`` on ``subparsers`` (of :meth:`ArgumentParser.add_subparsers`)."""
    p = subparsers.add_parser(
        "cosim", help="cosimulate the generated Verilog against the integer model",
        description="Generate the accelerator's Verilog for a trained network, compile it with "
                    "Verilator (or Icarus) and drive noisy queries of the stored patterns "
                    "through it with cocotb. Every result (all state bits, steps, converged "
                    "flag) is compared with the bit-exact integer model and every latency with "
                    "the cycle model. Exit status 1 when any result differs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    p.add_argument("--bits", type=int_in(1, 4), default=2, help="weight bits, 1..4")
    p.add_argument("--lanes", type=int_in(1), default=16,
                   help="neurons accumulated in parallel (1..N)")
    p.add_argument("--popcount-width", type=int_in(1), default=None,
                   help="bits of the distance popcount per cycle (1..N); unset: N")
    p.add_argument("--queries", type=int_in(1), default=300, help="number of noisy queries")
    p.add_argument("--noise", type=fraction, default=0.2,
                   help="fraction of bits flipped in each query")
    p.add_argument("--seed", type=int_in(0), default=0,
                   help="seed of the queries, idle cycles and backpressure")
    p.add_argument("--sim", choices=SIMULATORS, default=None,
                   help="simulator; unset: $SIM, else verilator")
    p.add_argument("--scenarios", type=_names(SCENARIOS, "scenario"), default="noisy",
                   help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    p.add_argument("--flows", type=_names(FLOWS, "flow"), default="none",
                   help=f"comma-separated idle/backpressure modes: {', '.join(FLOWS)}")
    p.add_argument("--waves", action="store_true",
                   help="record waves (VCD with Verilator, FST with Icarus) in the run directory")
    p.add_argument("--build-dir", default=str(DEFAULT_BUILD_ROOT),
                   help="root of the per-configuration build directories")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_cosim)
    return p


def _fmt(x, spec=".4f"):
    return "-" if x is None else format(x, spec)


def format_summary(res, network=""):
    """The table ``khop cosim`` prints for a :func:`sim.runner.run_cosim` summary."""
    prm = res["params"]
    cps = res["cycles_per_step"]
    ratio = cps["measured"] / cps["bound"] if cps["measured"] else None
    cached = " (cached build)" if res["cached_build"] else ""
    tests = res["tests"]
    design = (f"N={prm['n']} P={prm['p']}, {prm['weight_bits']}-bit weights, "
              f"{prm['lanes']} lanes, popcount width {prm['popcount_width']}")
    ran = tests["total"] - tests["skipped"]
    simulator = f"{res['sim']}, {tests['passed']} of {ran} cocotb tests passed"
    exact = f"{_fmt(res['exact_recall'])} hardware, {_fmt(res['model_exact_recall'])} model"
    steps = (f"{_fmt(cps['measured'], '.1f')} measured, {cps['model']} model, "
             f"{cps['bound']} bound ({_fmt(ratio, '.3f')} x bound)")
    speed = f"{res['wall_seconds']:.1f} s, {_fmt(res['cycles_per_second'], ',.0f')} cycles/s"
    rows = [
        ("design", design),
        ("simulator", simulator),
        ("queries", f"{res['queries']} (noise {res['noise']:.0%}, seed {res['seed']})"),
        ("mismatches", f"{res['mismatches']} results, {res['cycle_mismatches']} latencies"),
        ("recall (hardware)", _fmt(res["recall_accuracy"])),
        ("recall (model)", _fmt(res["model_recall_accuracy"])),
        ("exact recall", exact),
        ("cycles per step", steps),
        ("simulated cycles", f"{res['simulated_cycles']:,}"),
        ("compile", f"{res['compile_seconds']:.1f} s{cached}"),
        ("run", speed),
        ("log", res["log"]),
    ]
    if res.get("waves"):
        rows.append(("waves", res["waves"]))
    width = max(len(k) for k, _ in rows)
    head = f"khop cosim {network}".rstrip()
    lines = [head] + [f"  {k:<{width}}  {v}" for k, v in rows]
    lines += [f"  ! {m}" for m in res["messages"][:5]]
    return "\n".join(lines)


def cmd_cosim(args):
    """Run ``khop cosim``; exits with status 1 when any result or latency is wrong."""
    try:
        res = run_cosim(args.network, bits=args.bits, lanes=args.lanes,
                        popcount_width=args.popcount_width, queries=args.queries,
                        noise=args.noise, sim=args.sim, waves=args.waves, seed=args.seed,
                        build_dir=args.build_dir, progress=True,
                        scenarios=args.scenarios, flows=args.flows)
    except (ValueError, TypeError) as e:
        raise ParameterError(str(e)) from None
    if args.json:
        doc = {k: v for k, v in res.items() if k != "per_test"}
        doc["network"] = args.network
        print(json.dumps(doc, indent=2))
    else:
        print(format_summary(res, args.network))
    if res["mismatches"] or res["cycle_mismatches"] or not res["passed"]:
        raise SystemExit(1)
