"""``gpubench run``: expand a suite, run it through worker processes, store every case."""

from __future__ import annotations

import sys
from typing import Any

from gpubench.commands import add_store_argument, check_limit, split_csv

HELP = "run a benchmark suite and store its results"


def add_arguments(p) -> None:
    p.add_argument("--suite", required=True, help="built-in suite name (matmul, saxpy, ...) or path to a .toml file")
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="only these backends (repeat or comma-separate)")
    p.add_argument("--device", action="append", metavar="DEV", help="only these devices: cpu, cuda, cuda:1, opencl:0:0")
    p.add_argument("--dtype", action="append", metavar="DTYPE",
                   help="only these dtypes: float64, float32, float16, bfloat16")
    p.add_argument("--quick", action="store_true", help="small sizes and a short time budget (seconds per suite)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="per-case timeout in seconds (default 600; inf for no limit)")
    p.add_argument("--budget", type=float, metavar="S", help="sampling time budget per case in seconds")
    p.add_argument("--target", type=float, metavar="FRAC",
                   help="stop when the median's 95%% CI is within ±FRAC (default 0.01)")
    p.add_argument("--label", default="", help="a label for this run (shown in reports)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                   help="before each case, wait up to S seconds for other processes to leave the cores")
    p.add_argument("--dry-run", action="store_true", help="list the cases and exit without running")
    p.add_argument("--ref-cache", metavar="DIR|off",
                   help="where float64 references are kept between cases and runs (default: $GPUBENCH_REFCACHE, "
                        "else refcache/ beside the store); 'off' keeps none on disk")
    add_store_argument(p)


def run(args) -> int:
    import shlex

    from gpubench.envinfo import capture_host
    from gpubench.errors import UsageError
    from gpubench.profile import resolve_profile
    from gpubench.progress import Progress
    from gpubench.runner import DEFAULT_TIMEOUT_S, Runner
    from gpubench.spec import Filters, expand, load_suite
    from gpubench.store import open_store

    if not args.suite:
        raise UsageError("--suite must not be empty")
    check_limit("--timeout", args.timeout, allow_inf=True)
    # --budget and --target are checked where the run profile is resolved (gpubench.profile).
    suite = load_suite(args.suite)
    filters = Filters(split_csv(args.backend, "--backend"), split_csv(args.device, "--device"),
                      split_csv(args.dtype, "--dtype"))
    profile = resolve_profile(args.quick, budget=args.budget, target=args.target)
    broken: dict[str, str] = {}
    specs = expand(suite, filters, quick=profile.quick_sizes, broken=broken)
    for reason in broken.values():
        print(f"gpubench: warning: {reason}; its cases are left out", file=sys.stderr)
    settings = profile.settings
    timeout = args.timeout or suite.timeout_s or DEFAULT_TIMEOUT_S
    if not (args.wait_idle >= 0 and args.wait_idle != float("inf")):
        raise UsageError(f"--wait-idle must be a non-negative number of seconds, got {args.wait_idle}")
    from gpubench import refcache

    # Resolved once here and handed to the workers through their environment (refcache.exported).
    ref_cache = refcache.resolve(args.ref_cache, args.store)
    refcache.max_bytes_from_environment()  # a malformed $GPUBENCH_REFCACHE_SIZE is a usage error now, not later
    if args.dry_run:
        for spec in specs:
            print(spec.label())
        print(f"{len(specs)} cases", file=sys.stderr)
        return 0

    from gpubench.machine import probe_cpu

    # The store first: a store that cannot be written (damaged, read-only, unreachable) is refused before any work.
    with refcache.exported(ref_cache), open_store(args.store) as store:
        environment = capture_host()
        environment["backends"] = {name: {"available": False, "reason": reason} for name, reason in broken.items()}
        warning = busy_warning(probe_cpu(0.5))
        if warning:
            print(warning, file=sys.stderr)
        progress = Progress(sys.stderr)
        runner = Runner(store, settings, timeout, progress=progress.update, wait_idle_s=args.wait_idle)
        command = "gpubench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        try:
            run_id, _ = runner.run(specs, suite=suite.name, baseline=suite.baseline, label=args.label,
                                   command=command, environment=environment)
        except KeyboardInterrupt:
            progress.finish()
            print(f"gpubench: interrupted; finished cases kept in run {runner.run_id} ({store.location})",
                  file=sys.stderr)
            return 130
        except BaseException:
            progress.finish()  # the one-line error starts on its own line
            raise
        progress.finish()
        from gpubench.commands.show import print_run

        print_run(store, run_id)
        summary = busy_summary(store.results(run_id))
        if summary:
            print(summary, file=sys.stderr)
    return 0


def busy_warning(probe: dict[str, Any] | None, threshold: float | None = None) -> str | None:
    """The one-line warning printed when the machine is already busy before the run (None when it is not).

    ``probe`` is :func:`gpubench.machine.probe_cpu`'s reading; ``threshold`` defaults to the ``busy``
    flag's :data:`gpubench.machine.BUSY_CORES`.
    """
    from gpubench.machine import BUSY_CORES, load_average

    threshold = BUSY_CORES if threshold is None else threshold
    if not probe or probe.get("other_cores") is None or probe["other_cores"] <= threshold:
        return None
    load = load_average()
    load_text = f", load average {load[0]:g}" if load else ""
    return (f"gpubench: warning: the machine is busy: other processes use {probe['other_cores']:.2g} of "
            f"{probe.get('cores', '?')} cores{load_text}; cases measured meanwhile are flagged busy "
            "(--wait-idle S waits for quiet before each case)")


def busy_summary(results: list[Any]) -> str | None:
    """``14 of 39 measured cases ran on a busy machine; 2 throttled`` (None when no case was measured)."""
    from gpubench.machine import BUSY_CORES

    measured = [r for r in results if getattr(r, "status", "") == "ok"]
    if not measured:
        return None
    busy = sum("busy" in r.flags for r in measured)
    throttled = sum("throttled" in r.flags for r in measured)
    text = f"{busy} of {len(measured)} measured cases ran on a busy machine (other work above {BUSY_CORES:g} cores)"
    if throttled:
        from collections import Counter

        reasons = Counter(name for r in measured if "throttled" in r.flags
                          for name in ((r.machine or {}).get("gpu") or {}).get("throttled_by") or ())
        text += f"; {throttled} ran on a throttled GPU"
        if reasons:
            text += " (" + ", ".join(f"{name}: {n}" for name, n in reasons.most_common()) + ")"
    return text
