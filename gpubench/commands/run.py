"""``gpubench run``: expand a suite, run it through worker processes, store every case.

The command parses its options into a :class:`gpubench.runsuite.RunRequest` and hands it to
:func:`gpubench.runsuite.execute`, the same function :func:`gpubench.run` calls.
"""

from __future__ import annotations

from gpubench.commands import add_store_argument
from gpubench.runsuite import busy_summary, busy_warning  # noqa: F401 - their home before runsuite; still importable

HELP = "run a benchmark suite and store its results"


def add_arguments(p) -> None:
    p.add_argument("--suite", required=True,
                   help="built-in suite name (tour, matmul, saxpy, ...) or path to a .toml file")
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="only these backends (repeat or comma-separate)")
    p.add_argument("--device", action="append", metavar="DEV", help="only these devices: cpu, cuda, cuda:1, opencl:0:0")
    p.add_argument("--dtype", action="append", metavar="DTYPE",
                   help="only these dtypes: float64, float32, float16, bfloat16")
    p.add_argument("--quick", action="store_true", help="small sizes and a short time budget (seconds per suite)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="per-case timeout in seconds (default 600; inf for no limit)")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="finish within DURATION (90s, 8m, 1h30m; none: no limit, overriding a suite's own): the most "
                        "informative cases run first and no case starts that would not finish in the time left")
    p.add_argument("--budget", type=float, metavar="S", help="sampling time budget per case in seconds")
    p.add_argument("--target", type=float, metavar="FRAC",
                   help="stop when the median's 95%% CI is within ±FRAC (default 0.01)")
    p.add_argument("--label", default="", help="a label for this run (shown in reports)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                   help="before each case, wait up to S seconds for other processes to leave the cores")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cases in the order they would run, with estimated times, and exit")
    p.add_argument("--ref-cache", metavar="DIR|off",
                   help="where float64 references are kept between cases and runs (default: $GPUBENCH_REFCACHE, "
                        "else refcache/ beside the store); 'off' keeps none on disk")
    add_store_argument(p)


def run(args) -> int:
    import shlex
    import sys
    import time

    from gpubench.runsuite import RunRequest, execute

    started = time.monotonic()
    request = RunRequest(
        suite=args.suite, backends=tuple(args.backend or ()), devices=tuple(args.device or ()),
        dtypes=tuple(args.dtype or ()), quick=args.quick, timeout=args.timeout, time_limit=args.time_limit,
        budget=args.budget, target=args.target, label=args.label, wait_idle=args.wait_idle, ref_cache=args.ref_cache,
        store=args.store, command="gpubench " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    return execute(request, dry_run=args.dry_run, started=started).exit_code

