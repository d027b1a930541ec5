"""``khop cosim``: the generated Verilog against the integer model. Parse and print only; the
work is in :mod:`khop.sim.runner`, the table and JSON in :class:`khop.sim.results.CosimResult`.

Exit status 1 when any result differs from the integer model or misses the cycle model. Errors a
user can fix (missing simulator, unreadable network, bad parameters) are raised as
:class:`khop.model.errors.KhopError`.
"""

from khop.model.errors import ParameterError
from khop.sim.config import FLOWS, SCENARIOS
from khop.sim.runner import DEFAULT_BUILD_ROOT, run_cosim
from khop.sim.tools import SIMULATORS

from .argtypes import fraction, int_in, name_list
from .cli_common import add_subcommand
from .options import add_hardware_options, hardware_options
from .outputs import to_json

__all__ = ["add_cosim", "cmd_cosim"]


def add_cosim(subparsers):
    """Declare ``khop cosim`` on ``subparsers`` (of :meth:`ArgumentParser.add_subparsers`)."""
    p = add_subcommand(subparsers, "cosim",
                       "cosimulate the generated Verilog against the integer model", cmd_cosim)
    p.add_argument("network", metavar="NET", help="network file written by 'khop train'")
    add_hardware_options(p)
    p.add_argument("--queries", type=int_in(1), default=300, help="number of noisy queries")
    p.add_argument("--noise", type=fraction, default=0.2,
                   help="fraction of bits flipped in each query")
    p.add_argument("--seed", type=int_in(0), default=0,
                   help="seed of the queries, idle cycles and backpressure")
    p.add_argument("--sim", choices=SIMULATORS, default=None,
                   help="simulator; unset: $SIM, else verilator")
    p.add_argument("--scenarios", type=name_list(SCENARIOS), default="noisy",
                   help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    p.add_argument("--flows", type=name_list(FLOWS), default="none",
                   help=f"comma-separated idle/backpressure modes: {', '.join(FLOWS)}")
    p.add_argument("--waves", action="store_true",
                   help="record waves (VCD with Verilator, FST with Icarus) in the run directory")
    p.add_argument("--build-dir", default=str(DEFAULT_BUILD_ROOT),
                   help="root of the per-configuration build directories")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    return p


def cmd_cosim(args):
    """Generate the accelerator's Verilog for a trained network, compile it with Verilator (or
    Icarus) and drive noisy queries of the stored patterns through it with cocotb. Every result
    (all state bits, steps, converged flag) is compared with the bit-exact integer model and
    every latency with the cycle model. Exit status 1 when any result differs.
    """
    try:
        res = run_cosim(args.network, hardware=hardware_options(args), queries=args.queries,
                        noise=args.noise, sim=args.sim, waves=args.waves, seed=args.seed,
                        build_dir=args.build_dir, progress=True, scenarios=args.scenarios,
                        flows=args.flows)
    except (ValueError, TypeError) as e:
        raise ParameterError(str(e)) from None
    if args.json:
        print(to_json({**res.as_dict(), "network": args.network}, indent=2))
    else:
        print(res.format(args.network))
    if not res.clean:
        raise SystemExit(1)
