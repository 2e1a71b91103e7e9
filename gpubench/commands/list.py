"""``gpubench list``: backends (with availability and reason), devices, workloads and suites."""

from __future__ import annotations

HELP = "list backends with their availability, devices and dtypes, workloads and suites"


def add_arguments(p) -> None:
    p.add_argument("what", nargs="?", choices=("all", "backends", "suites", "workloads"), default="all")


def run(args) -> int:
    from gpubench.backends import backend_names, get_backend
    from gpubench.spec import builtin_suites, load_suite
    from gpubench.tables import render
    from gpubench.workloads import find_workload, workload_names

    if args.what in ("all", "backends"):
        rows = []
        for name in backend_names():
            b = get_backend(name)
            reason = b.availability()
            if reason:
                rows.append([name, "no", ", ".join(b.device_kinds), "-", reason])
                continue
            for d in b.devices():
                rows.append([name, "yes", f"{d.id} ({d.name})", ",".join(d.dtypes), ", ".join(b.workloads())])
        print(render(["backend", "available", "device", "dtypes", "workloads / reason"], rows))
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
