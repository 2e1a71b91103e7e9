"""``gpubench env``: the environment a run would record."""

from __future__ import annotations

import functools

HELP = "print the machine and software environment (CPU, GPU, drivers, libraries, BLAS)"

#: Probe facts that are not environment facts (shown elsewhere, or by ``gpubench list``).
_NOT_FACTS = ("available", "devices", "blas", "device_kinds", "workloads")


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="also ask these backends for their facts (default: all; 'none' for host only)")
    p.add_argument("--probe-timeout", type=float, metavar="S",
                   help="seconds each backend probe may take (default 60, or $GPUBENCH_PROBE_TIMEOUT; inf: no limit)")


def _fact(d: dict, key: str, unit: str = "") -> str:
    value = d.get(key)
    if value is None:
        return "?"
    return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _mhz(value) -> str:
    return f"{value:.0f} MHz" if isinstance(value, (int, float)) else "?"


def cpu_clock_line(cpu: dict) -> str:
    """``2445 MHz (psutil (/proc/cpuinfo)); governor: none (no cpufreq in sysfs ...); load 0.5 0.4 0.3``."""
    freq = _mhz(cpu.get("freq_mhz"))
    if cpu.get("freq_max_mhz"):
        freq += f" (max {_mhz(cpu['freq_max_mhz'])})"
    if cpu.get("freq_source"):
        freq += f" from {cpu['freq_source']}"
    governor = cpu.get("governor") or f"unknown: {cpu.get('governor_reason', 'not readable')}"
    load = cpu.get("load_average")
    load_text = f"; load average {' '.join(f'{x:g}' for x in load)}" if load else ""
    return f"{freq}; governor {governor}{load_text}"


def gpu_state_lines(state: dict) -> list[str]:
    """NVML's facts, one line per GPU: clocks, power limit, ECC, persistence, MIG, PCIe."""
    if not state:
        return []
    if not state.get("available"):
        return [f"NVML      {state.get('reason', 'unavailable')}"]
    out = []
    for d in state.get("devices", []):
        if "reason" in d:
            out.append(f"NVML {d.get('index')}    {d['reason']}")
            continue
        v = functools.partial(_fact, d)
        out.append(f"GPU {d['index']}     {d.get('name') or '?'}: SM {v('sm_mhz')}/{v('sm_max_mhz')} MHz, "
                   f"memory {v('mem_mhz')}/{v('mem_max_mhz')} MHz, power limit {v('power_limit_w', ' W')}, "
                   f"ECC {v('ecc')}, persistence {v('persistence_mode')}, MIG {v('mig')}, "
                   f"PCIe gen {v('pcie_gen')}/{v('pcie_gen_max')} x{v('pcie_width')}/x{v('pcie_width_max')}"
                   + (f", clock events: {', '.join(d['throttle'])}" if d.get("throttle") else ""))
    return out


def _reference_cache() -> dict:
    """Where ``gpubench run`` keeps references (``$GPUBENCH_REFCACHE``, else beside the default store)."""
    from gpubench import refcache

    return refcache.describe(refcache.resolve())


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
    env["reference_cache"] = _reference_cache()
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
    print("clock     " + cpu_clock_line(cpu))
    print(f"memory    {env['memory_bytes'] / 2**30:.1f} GiB")
    print(f"OS        {env['os']}   Python {env['python']}")
    for lib in env["blas"]:
        print(f"BLAS      {lib.get('internal_api')} {lib.get('version', '')} threads={lib.get('num_threads')} "
              f"kernel={lib.get('architecture', '-')}")
    for gpu in env["gpus"]:
        print(f"GPU       {gpu['name']} {gpu['memory']} driver {gpu['driver']}")
    if not env["gpus"]:
        print("GPU       none found (no nvidia-smi or no driver)")
    for line in gpu_state_lines(env.get("gpu_state") or {}):
        print(line)
    print("libraries " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()))
    from gpubench.refcache import describe_line

    print("refcache  " + describe_line(env["reference_cache"]))
    for name, b in env.get("backends", {}).items():
        if not b.get("available"):
            print(f"{name:<9} unavailable: {b.get('reason')}")
            continue
        facts = {k: v for k, v in b.items() if k not in _NOT_FACTS}
        devs = ", ".join(f"{d['id']} ({d['name']})" for d in b.get("devices", []))
        print(f"{name:<9} {devs}  " + " ".join(f"{k}={v}" for k, v in facts.items()))
    return 0
