"""``gpubench calibrate``: measure this machine's ceilings (peak FLOP/s, memory and host-device bandwidth)."""

from __future__ import annotations

from gpubench.commands import add_store_argument, check_limit, split_csv

HELP = "measure this machine's peak FLOP/s per dtype and its memory and host-device bandwidth"


def add_arguments(p) -> None:
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="only these backends (default: every backend that implements matmul or saxpy)")
    p.add_argument("--device", action="append", metavar="KIND", help="only these device kinds: cpu, cuda, opencl")
    p.add_argument("--quick", action="store_true", help="small sizes and short budgets (seconds; for tests)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="per-case timeout in seconds (default 600; inf for no limit)")
    p.add_argument("--label", default="", help="a label for this calibration run")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="finish within DURATION (90s, 8m, 1h30m): one case per ceiling first, and no case started "
                        "that would not finish in the time left")
    add_store_argument(p)


def run(args) -> int:
    import shlex
    import sys
    import time

    from gpubench.calibrate import calibrate, failures
    from gpubench.estimate import parse_duration
    from gpubench.progress import make_progress
    from gpubench.store import open_store

    started = time.monotonic()
    check_limit("--timeout", args.timeout, allow_inf=True)
    time_limit = parse_duration(args.time_limit) if args.time_limit is not None else None
    backends, devices = split_csv(args.backend, "--backend"), split_csv(args.device, "--device")
    command = "gpubench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    progress = make_progress(sys.stderr, start=started)

    def show_estimates(runner) -> None:
        progress.eta = runner.remaining_s

    with open_store(args.store) as store:
        try:
            run_id, ceilings = calibrate(store, backends=backends, devices=devices, quick=args.quick,
                                         timeout_s=args.timeout, label=args.label, command=command,
                                         progress=progress.update, time_limit_s=time_limit, started=started,
                                         runner_hook=show_estimates)
        finally:
            progress.finish()
        failed = failures(store.results(run_id))
        info = store.run(run_id)
    if info.reason and info.status == "time_limited":
        print(f"gpubench calibrate: {info.reason}", file=sys.stderr)
    print(format_ceilings(run_id, ceilings, provisional=args.quick))
    for r in failed:
        print(f"gpubench calibrate: {r.status}: {r.spec.label()}: {r.error}", file=sys.stderr)
    if failed:
        print(f"gpubench calibrate: {len(failed)} ceiling case(s) failed (see gpubench show {run_id})",
              file=sys.stderr)
        return 1
    return 0 if ceilings else 1


def format_ceilings(run_id: int, ceilings: list[dict], provisional: bool = False) -> str:
    """The ceilings as a terminal table, with datasheet peaks of known GPUs beside them."""
    from gpubench.datasheet import datasheet_for, gemm_peak
    from gpubench.store import MEM_BW
    from gpubench.tables import render

    if not ceilings:
        return f"run {run_id}: no ceiling could be measured (every calibration case failed or was skipped; " \
               f"see gpubench show {run_id})"
    rows = []
    for c in ceilings:
        sheet = ""
        found = datasheet_for(c.get("device_name") or "")
        if found:
            name, peaks = found
            # A compute ceiling is a matmul's: its datasheet reference is the GEMM peak (FP64 tensor cores).
            ref = peaks.get("mem_gbps") if c["kind"] == MEM_BW else (gemm_peak(peaks, c["dtype"]) or (0,))[0] * 1000
            if ref:
                sheet = f"{100 * c['value'] / ref:.0f}% of {name} datasheet {ref:g}"
        rows.append([c["device"], c["kind"], c["dtype"] or "-", f"{c['value']:.4g} {c['unit']}", sheet, c["method"]])
    table = render(["device", "ceiling", "dtype", "measured", "datasheet", "how"], rows, right=(3,))
    if provisional:
        return (f"calibration run {run_id} (--quick: provisional)\n{table}\nstored, but provisional: small sizes "
                "and short budgets measure no roof, so reports do not use them; calibrate without --quick")
    return f"calibration run {run_id}\n{table}\nstored; 'gpubench report' uses them for the roofline and % of peak"
