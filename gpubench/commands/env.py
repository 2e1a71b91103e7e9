"""``gpubench env``: the environment a run would record."""

from __future__ import annotations

HELP = "print the machine and software environment (CPU, GPU, drivers, libraries, BLAS)"

#: Probe facts that are not environment facts (shown elsewhere, or by ``gpubench list``).
_NOT_FACTS = ("available", "devices", "blas", "device_kinds", "workloads")


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="also ask these backends for their facts (default: all; 'none' for host only)")
    p.add_argument("--probe-timeout", type=float, metavar="S",
                   help="seconds each backend probe may take (default 60, or $GPUBENCH_PROBE_TIMEOUT; inf: no limit)")


def run(args) -> int:
    import json

    from gpubench.backends import backend_names
    from gpubench.commands import split_csv
    from gpubench.envinfo import capture_host
    from gpubench.errors import UsageError
    from gpubench.probe import probe_backends, probe_timeout

    timeout = probe_timeout(args.probe_timeout)
    wanted = split_csv(args.backend, "--backend") or tuple(backend_names())
    if wanted != ("none",):
        for b in wanted:
            if b not in backend_names():
                raise UsageError(f"unknown backend {b!r} (known: {', '.join(backend_names())})")
    env = capture_host()
    if wanted != ("none",):
        # Backends are asked in worker processes: a plug-in that prints, crashes or hangs cannot
        # corrupt this output or stop this command.
        env["backends"] = probe_backends(wanted, timeout)
    if args.json:
        print(json.dumps(env, indent=2, default=str))
        return 0
    cpu = env["cpu"]
    print(f"CPU       {cpu['model']} ({cpu['physical_cores']} cores, {cpu['logical_cores']} threads)")
    print(f"ISA       {' '.join(cpu['isa']) or '-'}")
    print(f"memory    {env['memory_bytes'] / 2**30:.1f} GiB")
    print(f"OS        {env['os']}   Python {env['python']}")
    for lib in env["blas"]:
        print(f"BLAS      {lib.get('internal_api')} {lib.get('version', '')} threads={lib.get('num_threads')} "
              f"kernel={lib.get('architecture', '-')}")
    for gpu in env["gpus"]:
        print(f"GPU       {gpu['name']} {gpu['memory']} driver {gpu['driver']}")
    if not env["gpus"]:
        print("GPU       none found (no nvidia-smi or no driver)")
    print("libraries " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()))
    for name, b in env.get("backends", {}).items():
        if not b.get("available"):
            print(f"{name:<9} unavailable: {b.get('reason')}")
            continue
        facts = {k: v for k, v in b.items() if k not in _NOT_FACTS}
        devs = ", ".join(f"{d['id']} ({d['name']})" for d in b.get("devices", []))
        print(f"{name:<9} {devs}  " + " ".join(f"{k}={v}" for k, v in facts.items()))
    return 0
