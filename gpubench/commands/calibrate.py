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
    add_store_argument(p)


def run(args) -> int:
    import shlex
    import sys

    from gpubench.calibrate import calibrate, format_ceilings
    from gpubench.store import ResultStore

    check_limit("--timeout", args.timeout, allow_inf=True)
    backends, devices = split_csv(args.backend, "--backend"), split_csv(args.device, "--device")
    command = "gpubench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with ResultStore(args.store) as store:
        run_id, ceilings = calibrate(store, backends=backends, devices=devices,
                                     quick=args.quick, timeout_s=args.timeout, label=args.label, command=command)
    print(format_ceilings(run_id, ceilings))
    return 0 if ceilings else 1
