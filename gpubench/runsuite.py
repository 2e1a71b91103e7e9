"""Running a suite: the one path behind ``gpubench run`` and :func:`gpubench.run`.

:func:`execute` takes a :class:`RunRequest` (the options of ``gpubench run``, as the command line or the Python
API gives them), checks every one of them before any work (a bad one is a
:class:`~gpubench.errors.UsageError`), expands the suite, orders the cases (ceilings first; with a time limit, the
most telling cases first), opens the store (refused before any case runs when it cannot be written) and runs the
cases through the :class:`~gpubench.runner.Runner`'s worker processes, showing the progress
(:func:`gpubench.progress.make_progress`). It prints what ``gpubench run`` prints on standard error (warnings,
the skip lines, the end of a time-limited run); ``summary`` adds the results table and the machine card on
standard output, as the command line shows them (a notebook shows the returned run instead).

Ctrl-C (KeyboardInterrupt) while the cases run stops the run: the worker is killed, every finished case is kept,
the run is marked ``interrupted``, and :func:`execute` returns normally with that status (exit code 130).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from gpubench.commands import check_limit, split_csv

__all__ = ["RunOutcome", "RunRequest", "busy_summary", "busy_warning", "execute"]


@dataclass(frozen=True)
class RunRequest:
    """The options of a run, unchecked (:func:`execute` checks them), named as ``gpubench run``'s.

    ``backends``, ``devices`` and ``dtypes`` are option values as given (each may be comma-separated; an empty one
    is an error); ``time_limit`` is a duration (``"8m"``, seconds, ``"none"``; None: the suite's own).
    """

    suite: str
    backends: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    quick: bool = False
    timeout: float | None = None
    time_limit: str | float | None = None
    budget: float | None = None
    target: float | None = None
    label: str = ""
    wait_idle: float = 0.0
    ref_cache: str | None = None
    store: str | None = None
    command: str = ""
    """What to record as the run's command (``gpubench run ...``, or the Python call)."""


@dataclass
class RunOutcome:
    """What :func:`execute` did: the run's id (None for a dry run), its status and reason, the store's location
    (as it prints), the cases a time limit left out, and the exit status ``gpubench run`` ends with."""

    run_id: int | None
    status: str
    reason: str = ""
    store: str = ""
    not_started: list[str] = field(default_factory=list)
    exit_code: int = 0


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


def execute(request: RunRequest, *, dry_run: bool = False, summary: bool = True, progress: bool = True,
            started: float | None = None) -> RunOutcome:
    """Run ``request`` as ``gpubench run`` does (see the module's docstring); ``dry_run`` prints the cases in the
    order they would run, with their estimates, and runs nothing. ``started`` is when the command started (a
    :func:`time.monotonic` reading; the time limit counts from it), default now."""
    from gpubench.envinfo import capture_host
    from gpubench.errors import UsageError
    from gpubench.estimate import CostModel, parse_duration
    from gpubench.profile import resolve_profile
    from gpubench.runner import DEFAULT_TIMEOUT_S, Runner
    from gpubench.spec import Filters, expand, load_suite, run_order, telling_tiers
    from gpubench.store import open_store

    started = time.monotonic() if started is None else started
    if not request.suite:
        raise UsageError("--suite must not be empty")
    check_limit("--timeout", request.timeout, allow_inf=True)
    # --budget and --target are checked where the run profile is resolved (gpubench.profile).
    suite = load_suite(request.suite)
    time_limit = parse_duration(request.time_limit) if request.time_limit is not None else suite.time_limit_s
    filters = Filters(split_csv(list(request.backends), "--backend"), split_csv(list(request.devices), "--device"),
                      split_csv(list(request.dtypes), "--dtype"))
    profile = resolve_profile(request.quick, budget=request.budget, target=request.target)
    broken: dict[str, str] = {}
    cpu_limits: dict = {}
    specs = expand(suite, filters, quick=profile.quick_sizes, broken=broken, cpu_limits=cpu_limits)
    for reason in broken.values():
        print(f"gpubench: warning: {reason}; its cases are left out", file=sys.stderr)
    settings = profile.settings
    timeout = request.timeout or suite.timeout_s or DEFAULT_TIMEOUT_S
    if not (request.wait_idle >= 0 and request.wait_idle != float("inf")):
        raise UsageError(f"--wait-idle must be a non-negative number of seconds, got {request.wait_idle}")
    from gpubench import refcache

    # Resolved once here and handed to the workers through their environment (refcache.exported).
    ref_cache = refcache.resolve(request.ref_cache, request.store)
    refcache.max_bytes_from_environment()  # a malformed $GPUBENCH_REFCACHE_SIZE is a usage error now, not later

    environment = capture_host()
    environment["backends"] = {name: {"available": False, "reason": reason} for name, reason in broken.items()}
    peek = _peek_store(request.store) if suite.ceilings else None
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
    if dry_run:
        return RunOutcome(None, "", exit_code=_dry_run(ordered, cost, time_limit, cpu_limits))

    from gpubench.machine import probe_cpu
    from gpubench.progress import make_progress

    # The store first: a store that cannot be written (damaged, read-only, unreachable) is refused before any work.
    with refcache.exported(ref_cache), open_store(request.store) as store:
        warning = busy_warning(probe_cpu(0.5))
        if warning:
            print(warning, file=sys.stderr)
        shown = make_progress(sys.stderr, start=started) if progress else None
        runner = Runner(store, settings, timeout, progress=shown.update if shown else None,
                        wait_idle_s=request.wait_idle, time_limit_s=time_limit, cost=cost, started=started,
                        cpu_limits=cpu_limits)
        if shown is not None:
            shown.eta = runner.remaining_s
        try:
            run_id, status = runner.run(ordered, suite=suite.name, baseline=suite.baseline, label=request.label,
                                        command=request.command, environment=environment)
        except KeyboardInterrupt:
            if shown is not None:
                shown.finish(cut_short=True)
            print(f"gpubench: interrupted; finished cases kept in run {runner.run_id} ({store.location})",
                  file=sys.stderr)
            return RunOutcome(runner.run_id, "interrupted", store=store.location, exit_code=130)
        except BaseException:
            if shown is not None:
                shown.finish(cut_short=True)  # the one-line error starts on its own line
            raise
        if shown is not None:
            shown.finish()
        if suite.ceilings:
            _store_ceilings(runner, store, run_id, profile.quick_sizes, reused_run, reused)
        if summary:
            from gpubench.commands.show import print_run

            print_run(store, run_id)
        line = busy_summary(store.results(run_id))
        if line:
            print(line, file=sys.stderr)
        left_out = [spec.label() for spec in runner.not_started]
        if status != "complete":
            print(f"gpubench: {runner.reason}", file=sys.stderr)
            if left_out:
                more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
                print(f"gpubench: not started: {'; '.join(left_out[:5])}{more}", file=sys.stderr)
        if summary and suite.ceilings:
            from gpubench.report.card import print_card

            print_card(store, run_id)
        return RunOutcome(run_id, status, runner.reason, store.location, left_out)


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
