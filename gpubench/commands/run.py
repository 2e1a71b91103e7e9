"""``gpubench run``: expand a suite, run it through worker processes, store every case."""

from __future__ import annotations

import sys
from typing import Any

from gpubench.commands import add_store_argument, check_limit, split_csv

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


def _peek_store(path):
    """The store opened read-only, or None when there is none yet (a dry run writes nothing)."""
    from gpubench.errors import GpubenchError
    from gpubench.store import open_store

    try:
        return open_store(path, readonly=True)
    except GpubenchError:
        return None


def _ceiling_plan(suite, filters, quick: bool, environment: dict, store) -> tuple[list, int | None, list]:
    """The calibration cases a suite with ``ceilings = true`` runs first — one per ceiling, by the backend most
    likely to reach it (:func:`gpubench.calibrate.ceiling_tiers`; ``gpubench calibrate`` measures every backend) —
    and the reused calibration (its run id and ceilings) for the device kinds it already covers."""
    from gpubench.calibrate import ceiling_tiers, plan, reusable
    from gpubench.errors import UsageError

    if not suite.ceilings:
        return [], None, []
    reused_run, reused = reusable(store, environment)
    covered = {str(c["device"]).split(":")[0] for c in reused}
    kinds = tuple(dict.fromkeys(d.split(":")[0] for d in filters.devices))
    try:
        specs = plan(filters.backends, kinds, quick)
    except UsageError:
        specs = []
    specs = [s for s in specs if s.device.split(":")[0] not in covered
             and (not filters.dtypes or s.dtype in filters.dtypes)]
    return ceiling_tiers(specs)[0], reused_run, reused


def _dry_run(ordered, cost, time_limit, cpu_limits) -> int:
    from gpubench.estimate import TimeBudget, format_duration

    total, alive, budget = 0.0, None, None
    clock = [0.0]
    if time_limit is not None:
        budget = TimeBudget(time_limit, clock=lambda: clock[0], start=0.0)
    fit = 0
    for spec in ordered:
        case = cost.case_s(spec)
        startup = cost.startup_s(spec.backend) if spec.backend != alive else 0.0
        shown = f"~{format_duration(case)}"
        limit = cpu_limits.get(spec)
        if cost.absent(spec):
            shown = "skipped (no GPU here)"
        elif limit is not None and cost.call_s(spec) > limit:
            case = 0.0
            shown = (f"skipped: a call is estimated at {format_duration(cost.call_s(spec))}, above the suite's "
                     f"max_cpu_call_s ({format_duration(limit)}) (judged again on the run's own rates)")
        if budget is not None and not budget.fits(case + startup):
            print(f"{spec.label()}  ~{format_duration(case)}  not started: past the time limit")
            continue
        if budget is not None:
            clock[0] += case + startup
        fit += 1
        total += case + startup
        alive = spec.backend
        print(f"{spec.label()}  {shown}")
    line = f"{len(ordered)} cases, about {format_duration(total)} estimated"
    if time_limit is not None:
        line += f"; time limit {format_duration(time_limit)}: about {fit} of {len(ordered)} would run"
    print(line, file=sys.stderr)
    return 0


def run(args) -> int:
    import shlex
    import time

    from gpubench.envinfo import capture_host
    from gpubench.errors import UsageError
    from gpubench.estimate import CostModel, parse_duration
    from gpubench.profile import resolve_profile
    from gpubench.progress import Progress
    from gpubench.runner import DEFAULT_TIMEOUT_S, Runner
    from gpubench.spec import Filters, expand, load_suite, run_order, telling_tiers
    from gpubench.store import open_store

    started = time.monotonic()
    if not args.suite:
        raise UsageError("--suite must not be empty")
    check_limit("--timeout", args.timeout, allow_inf=True)
    # --budget and --target are checked where the run profile is resolved (gpubench.profile).
    suite = load_suite(args.suite)
    time_limit = parse_duration(args.time_limit) if args.time_limit is not None else suite.time_limit_s
    filters = Filters(split_csv(args.backend, "--backend"), split_csv(args.device, "--device"),
                      split_csv(args.dtype, "--dtype"))
    profile = resolve_profile(args.quick, budget=args.budget, target=args.target)
    broken: dict[str, str] = {}
    cpu_limits: dict = {}
    specs = expand(suite, filters, quick=profile.quick_sizes, broken=broken, cpu_limits=cpu_limits)
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

    environment = capture_host()
    environment["backends"] = {name: {"available": False, "reason": reason} for name, reason in broken.items()}
    peek = _peek_store(args.store) if suite.ceilings else None
    try:
        ceiling_specs, reused_run, reused = _ceiling_plan(suite, filters, profile.quick_sizes, environment, peek)
    finally:
        if peek is not None:
            peek.close()
    cost = CostModel(settings, environment, ceilings=reused)
    tiers = [ceiling_specs, *(telling_tiers(specs) if time_limit is not None else [specs])]
    ordered = run_order(tiers)
    if reused_run is not None:
        kinds = ", ".join(sorted({str(c["device"]) for c in reused}))
        print(f"gpubench: ceilings of {kinds} from calibration run {reused_run} (this machine, in the last day); "
              "'gpubench calibrate' measures them again", file=sys.stderr)
    if args.dry_run:
        return _dry_run(ordered, cost, time_limit, cpu_limits)

    from gpubench.machine import probe_cpu

    # The store first: a store that cannot be written (damaged, read-only, unreachable) is refused before any work.
    with refcache.exported(ref_cache), open_store(args.store) as store:
        warning = busy_warning(probe_cpu(0.5))
        if warning:
            print(warning, file=sys.stderr)
        progress = Progress(sys.stderr, start=started)
        runner = Runner(store, settings, timeout, progress=progress.update, wait_idle_s=args.wait_idle,
                        time_limit_s=time_limit, cost=cost, started=started, cpu_limits=cpu_limits)
        progress.eta = runner.remaining_s
        command = "gpubench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        try:
            run_id, status = runner.run(ordered, suite=suite.name, baseline=suite.baseline, label=args.label,
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
        if suite.ceilings:
            _store_ceilings(runner, store, run_id, profile.quick_sizes, reused_run, reused)
        from gpubench.commands.show import print_run

        print_run(store, run_id)
        summary = busy_summary(store.results(run_id))
        if summary:
            print(summary, file=sys.stderr)
        if status != "complete":
            print(f"gpubench: {runner.reason}", file=sys.stderr)
            left_out = [spec.label() for spec in runner.not_started]
            if left_out:
                more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
                print(f"gpubench: not started: {'; '.join(left_out[:5])}{more}", file=sys.stderr)
        if suite.ceilings:
            from gpubench.report.card import print_card

            print_card(store, run_id)
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


def _store_ceilings(runner, store, run_id: int, quick: bool, reused_run: int | None, reused: list) -> None:
    """The ceilings of a suite with ``ceilings = true``: those its calibration cases measured, and the reused ones
    of a recent calibration (each naming the run it comes from), stored with this run."""
    from gpubench.calibrate import ceilings_for_run

    ceilings = ceilings_for_run(store.results(run_id), quick)
    measured = {(c["device"], c["kind"], c["dtype"]) for c in ceilings}
    for c in reused:
        if (c["device"], c["kind"], c.get("dtype", "")) not in measured:
            ceilings.append({**c, "method": f"calibration run {reused_run}: {c.get('method', '')}".rstrip(": ")})
    if ceilings:
        runner.recorder.add_ceilings(ceilings, "provisional" if quick else "measured")
