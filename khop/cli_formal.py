"""``khop formal``: the formal proofs of the accelerator's and the link's contracts. Parse and
print only; the runs are :mod:`khop.formal.suite`, the harnesses :mod:`khop.formal.accelerator`
and :mod:`khop.formal.bridge`.

Exit status 1 when any run is not as expected (a property not proven, a broken design not
refuted); a missing tool is one :class:`khop.model.errors.KhopError` line.
"""

import sys

from .argtypes import int_in, name_list
from .cli_common import add_subcommand
from .outputs import output_directory, to_json, write_files

__all__ = ["add_formal", "cmd_formal"]


def _names():
    from khop.formal.suite import tasks

    all_tasks = tasks()
    return (list(dict.fromkeys(t.prop for t in all_tasks)),
            list(dict.fromkeys(t.config.name for t in all_tasks)))


def add_formal(subparsers):
    """Declare ``khop formal`` on ``subparsers`` (of :meth:`ArgumentParser.add_subparsers`)."""
    props, configs = _names()
    p = add_subcommand(subparsers, "formal",
                       "prove the accelerator's and the UART bridge's contracts (SymbiYosys)",
                       cmd_formal)
    p.add_argument("--out", default="build/formal",
                   help="output directory: results.json, results.csv, one folder per run "
                        "(counterexample traces)")
    p.add_argument("--jobs", type=int_in(1), default=2, help="proofs run in parallel")
    p.add_argument("--quick", action="store_true",
                   help="only the quick subset (one configuration, the broken designs)")
    p.add_argument("--property", type=name_list(props), default=None,
                   help=f"comma-separated properties: {', '.join(props)}")
    p.add_argument("--config", type=name_list(configs), default=None,
                   help=f"comma-separated configurations: {', '.join(configs)}")
    p.add_argument("--list", action="store_true",
                   help="list the runs (property, configuration, mode, depth) and exit")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of a table")
    return p


def cmd_formal(args):
    """Prove the contracts of the accelerator (stream rules, one result per query in order,
    loads only between queries, exact latency steps * cycles_per_step, reset) by k-induction
    on small configurations and by bounded model checking on a larger one, reach the cover
    goals, refute two deliberately broken designs with counterexample traces, and check the
    UART frame bridge (at most one reply per frame, no deadlock) by bounded model checking.
    Prints a table of property, configuration, mode, depth, result and seconds, and writes
    OUT/results.json and OUT/results.csv. Exit status 1 when any run is not as expected.
    """
    from khop.formal.sby import check_tools
    from khop.formal.suite import format_table, results_csv, run_tasks, select, tasks

    chosen = select(tasks(), quick=args.quick, properties=args.property, configs=args.config)
    if args.list:
        for t in chosen:
            print(f"{t.prop:<34} {t.config.name:<6} {t.mode:<6} {t.depth:>5}"
                  f"{'  quick' if t.quick else ''}{'  expect FAIL' if t.expect == 'FAIL' else ''}")
        return
    if not chosen:
        print("no run matches the filters", file=sys.stderr)
        raise SystemExit(1)
    check_tools()
    with output_directory(args.out) as out:
        def progress(res):
            if not args.json:
                print(res.format(), file=sys.stderr, flush=True)

        results = run_tasks(chosen, out / "runs", jobs=args.jobs, progress=progress)
        doc = {"results": [r.as_dict() for r in results],
               "ok": all(r.ok for r in results)}
        write_files({out / "results.json": to_json(doc, indent=2) + "\n",
                     out / "results.csv": results_csv(results)})
    if args.json:
        print(to_json(doc, indent=2))
    else:
        print(format_table(results))
        print(f"results: {out / 'results.json'}, {out / 'results.csv'}")
    if not doc["ok"]:
        raise SystemExit(1)
