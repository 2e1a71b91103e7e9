"""``gpubench list``: backends (with availability and reason), devices, workloads and suites.

On a machine whose GPU ``nvidia-smi`` lists but a backend cannot use (a CPU build of a framework, a
missing CUDA plug-in or library), the exact command that fixes each follows the backends' table
(:func:`gpubench.probe.gpu_fixes`).
"""

from __future__ import annotations

HELP = "list backends with their availability, devices and dtypes, workloads and suites"


def add_arguments(p) -> None:
    p.add_argument("what", nargs="?", choices=("all", "backends", "suites", "workloads"), default="all")
    p.add_argument("--probe-timeout", type=float, metavar="S",
                   help="seconds each backend probe may take (default 60, or $GPUBENCH_PROBE_TIMEOUT; inf: no limit)")


def backend_rows(facts: dict[str, dict]) -> list[list[str]]:
    """Table rows from backend probe facts: one per device, or one with the reason it is unavailable."""
    rows = []
    for name, b in facts.items():
        if not b.get("available"):
            rows.append([name, "no", ", ".join(b.get("device_kinds") or ()) or "-", "-", str(b.get("reason", ""))])
            continue
        devices = b.get("devices") or []
        workloads = ", ".join(b.get("workloads") or ())
        for d in devices:
            rows.append([name, "yes", f"{d.get('id')} ({d.get('name')})", ",".join(d.get("dtypes") or ()), workloads])
    return rows


def run(args) -> int:
    from gpubench.backends import backend_names
    from gpubench.envinfo import nvidia_smi
    from gpubench.probe import gpu_fix_lines, probe_backends, probe_timeout
    from gpubench.spec import builtin_suites, load_suite
    from gpubench.tables import render
    from gpubench.workloads import find_workload, workload_names

    if args.what in ("all", "backends"):
        # Each backend is asked in its own worker process, all at once and within a time limit:
        # a broken, hanging or printing plug-in is one "no" row with its reason.
        facts = probe_backends(backend_names(), probe_timeout(args.probe_timeout))
        print(render(["backend", "available", "device", "dtypes", "workloads / reason"], backend_rows(facts)))
        print()
        # A GPU that nvidia-smi lists but a backend cannot use: the exact command that fixes each.
        fixes = gpu_fix_lines(facts, nvidia_smi())
        if fixes:
            print("\n".join(fixes))
            print()
    if args.what in ("all", "workloads"):
        rows = []
        for w in workload_names():
            workload = find_workload(w)
            rows.append([w, workload.unit, workload.description] if workload is not None
                        else [w, "-", "unavailable: its module failed to load"])
        print(render(["workload", "unit", "description"], rows))
        print()
    if args.what in ("all", "suites"):
        rows = []
        for name, path in builtin_suites().items():
            s = load_suite(str(path))
            rows.append([name, s.description])
        print(render(["suite", "description"], rows))
    return 0
