"""Suite files: TOML in, validated frozen :class:`CaseSpec` lists out.

Everything that can be wrong with a suite or a filter is found here, before anything runs or is
written: unknown workloads, backends, devices, dtypes or parameters, bad sizes, a case that
cannot fit in memory. Each raises :class:`UsageError` with one line naming the problem.

Format::

    name = "matmul"
    description = "..."
    baseline = "numpy"            # backend whose CPU results speedups are computed against

    [[cases]]
    workload = "matmul"
    backends = ["numpy", "torch"] # default: every backend that implements the workload
    devices = ["cpu", "cuda"]     # device kinds or ids; default: every kind the backend drives
    dtypes = ["float32"]
    variants = ["default"]        # default: every variant the backend has (on the device kinds it runs on)
    params = { size = [256, 1024] }   # each value a scalar or a list; the grid is their product
    quick = { size = [128] }      # parameters overridden by --quick
    max_cpu_call_s = 1.0          # CPU cases run only where a call is estimated under 1 s (else skipped, saying so)

Top-level options beside ``name``, ``description`` and ``baseline``: ``timeout_s`` (the per-case
timeout), ``time_limit`` (the run's default ``--time-limit``, e.g. ``"4m45s"``) and ``ceilings = true``
(the run first measures the machine's ceilings with ``gpubench calibrate``'s cases, see
:mod:`gpubench.calibrate`).

:func:`run_order` decides the order a run takes its cases in: tiers (ceilings first; under a time
limit, then every backend × device × dtype at one telling size before the size sweeps), each tier
grouped by backend so that a framework is started once per tier.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpubench.errors import UsageError
from gpubench.records import DTYPES, CaseSpec, RecordError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENTRY_KEYS = {"workload", "backends", "devices", "dtypes", "variants", "params", "quick", "max_cpu_call_s"}
TOP_KEYS = {"name", "description", "baseline", "cases", "timeout_s", "time_limit", "ceilings"}


@dataclass(frozen=True)
class Suite:
    """A parsed suite file (not yet expanded)."""

    name: str
    description: str
    baseline: str
    entries: tuple[dict[str, Any], ...]
    path: Path
    timeout_s: float | None = None
    time_limit_s: float | None = None
    """The run's default time limit (``time_limit``; ``--time-limit`` overrides it); None: no limit."""
    ceilings: bool = False
    """Whether the run measures the machine's ceilings first (``ceilings = true``)."""


def builtin_suites() -> dict[str, Path]:
    """Built-in suite name → file."""
    from importlib.resources import files

    root = Path(str(files("gpubench.suites")))
    return {p.stem: p for p in sorted(root.glob("*.toml"))}


def resolve_suite(name_or_path: str) -> Path:
    """A built-in suite by name, or a user's suite file by path."""
    builtins = builtin_suites()
    if name_or_path in builtins:
        return builtins[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists() or "/" in name_or_path:
        if not path.is_file():
            raise UsageError(f"suite file {name_or_path!r} not found")
        return path
    raise UsageError(f"unknown suite {name_or_path!r} "
                     f"(built-in: {', '.join(builtins) or 'none'}; or give a .toml path)")


def _as_list(value: Any, what: str, where: str) -> list[Any]:
    if isinstance(value, list):
        if not value:
            raise UsageError(f"{where}: {what} must not be empty")
        return value
    return [value]


def load_suite(name_or_path: str) -> Suite:
    """Parse and check the structure of a suite file."""
    path = resolve_suite(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path.name}: malformed TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read suite file: {exc}") from exc
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise UsageError(f"{path.name}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(allowed: {', '.join(sorted(TOP_KEYS))})")
    entries = data.get("cases")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{path.name}: needs at least one [[cases]] table")
    for i, entry in enumerate(entries):
        where = f"{path.name}: cases[{i}]"
        bad = set(entry) - ENTRY_KEYS
        if bad:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(bad))} "
                             f"(allowed: {', '.join(sorted(ENTRY_KEYS))})")
        if not isinstance(entry.get("workload"), str):
            raise UsageError(f"{where}: 'workload' (a string) is required")
        for key in ("params", "quick"):
            if key in entry and not isinstance(entry[key], dict):
                raise UsageError(f"{where}: '{key}' must be a table")
        limit = entry.get("max_cpu_call_s")
        if "max_cpu_call_s" in entry and (isinstance(limit, bool) or not isinstance(limit, (int, float))
                                          or not 0 < limit < float("inf")):
            raise UsageError(f"{where}: 'max_cpu_call_s' must be a positive number of seconds")
    name = data.get("name", path.stem)
    baseline = data.get("baseline", "numpy")
    timeout = data.get("timeout_s")
    if not isinstance(name, str) or not isinstance(baseline, str):
        raise UsageError(f"{path.name}: 'name' and 'baseline' must be strings")
    bad_timeout = isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    if timeout is not None and bad_timeout:
        raise UsageError(f"{path.name}: 'timeout_s' must be a positive number (inf for no limit)")
    time_limit = None
    if "time_limit" in data:
        from gpubench.estimate import parse_duration

        time_limit = parse_duration(data["time_limit"], option=f"{path.name}: 'time_limit'")
    ceilings = data.get("ceilings", False)
    if not isinstance(ceilings, bool):
        raise UsageError(f"{path.name}: 'ceilings' must be true or false")
    return Suite(name, str(data.get("description", "")), baseline, tuple(entries), path,
                 float(timeout) if timeout is not None else None, time_limit, ceilings)


@dataclass(frozen=True)
class Filters:
    """Command-line filters; empty means 'everything'."""

    backends: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()


def _grid(params: dict[str, Any], where: str) -> list[dict[str, Any]]:
    keys = list(params)
    values = [_as_list(params[k], f"parameter {k!r}", where) for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _device_matches(device: str, wanted: str) -> bool:
    """A filter ``cuda`` matches ``cuda`` and ``cuda:1``; ``cuda:1`` matches only itself and ``cuda``."""
    return device == wanted or device.split(":")[0] == wanted or wanted.split(":")[0] == device


def _loader(broken: dict[str, str]):
    """A function returning a backend and its workloads, or None (noting why in ``broken``) if it is broken."""
    from gpubench.backends import get_backend
    from gpubench.errors import BrokenBackend

    loaded: dict[str, tuple[Any, tuple[str, ...]] | None] = {}

    def load(name: str) -> tuple[Any, tuple[str, ...]] | None:
        if name not in loaded:
            try:
                backend = get_backend(name)
                try:
                    loaded[name] = (backend, tuple(backend.workloads()))
                except Exception as exc:  # noqa: BLE001 - a plug-in's bug leaves it out, not the run
                    raise BrokenBackend(name, exc) from exc
            except BrokenBackend as exc:
                broken[name] = str(exc)
                loaded[name] = None
        return loaded[name]

    return load


def check_filters(filters: Filters, broken: dict[str, str] | None = None) -> None:
    """Reject unknown backends, device kinds and dtypes named on the command line.

    Only the backends selected (every one when there is no backend filter) are loaded, and only
    to check a device filter; a broken one is left out of that check and noted in ``broken``
    (name → reason) when given.
    """
    from gpubench.backends import backend_names

    known = backend_names()
    for b in filters.backends:
        if b not in known:
            raise UsageError(f"unknown backend {b!r} (known: {', '.join(known)})")
    if filters.devices:
        load = _loader({} if broken is None else broken)
        kinds = sorted({k for b in (filters.backends or known) if (got := load(b)) for k in got[0].device_kinds})
        for d in filters.devices:
            if d.split(":")[0] not in kinds:
                raise UsageError(f"unknown device {d!r} (device kinds: {', '.join(kinds) or 'none'}; "
                                 "e.g. cpu, cuda:0, opencl:0:0)")
    for t in filters.dtypes:
        if t not in DTYPES:
            raise UsageError(f"unknown dtype {t!r} (known: {', '.join(DTYPES)})")


def expand(suite: Suite, filters: Filters = Filters(), quick: bool = False,
           check_memory: bool = True, broken: dict[str, str] | None = None,
           cpu_limits: dict[CaseSpec, float] | None = None) -> list[CaseSpec]:
    """Expand a suite into validated case specs, applying filters; raise :class:`UsageError` on any problem.

    ``cpu_limits``, when given, receives each CPU case of an entry with ``max_cpu_call_s`` and that limit
    (the runner skips the case when its estimated call is longer, see :class:`gpubench.runner.Runner`).

    Only the backends the suite and the filters select are loaded. A selected backend whose
    plug-in is broken (it cannot be imported or constructed) is left out: its name and reason go
    into ``broken`` when given, so the caller can say so and record it. When nothing is left to
    run because of broken backends, that is a :class:`GpubenchError` naming them.
    """
    from gpubench.backends import backend_names
    from gpubench.envinfo import available_memory
    from gpubench.errors import GpubenchError
    from gpubench.workloads import get_workload

    broken = {} if broken is None else broken
    check_filters(filters, broken)
    load = _loader(broken)
    known = backend_names()
    if suite.baseline not in known:
        raise UsageError(f"{suite.path.name}: baseline backend {suite.baseline!r} is not a known backend")
    specs: list[CaseSpec] = []
    seen: set[CaseSpec] = set()
    mem_avail = available_memory() if check_memory else 0
    for i, entry in enumerate(suite.entries):
        where = f"{suite.path.name}: cases[{i}]"
        workload = get_workload(entry["workload"])
        if "backends" in entry:
            backends = _as_list(entry["backends"], "backends", where)
        else:
            selected = [b for b in known if not filters.backends or b in filters.backends]
            backends = [b for b in selected if (got := load(b)) and entry["workload"] in got[1]]
        dtypes = _as_list(entry.get("dtypes", ["float32"]), "dtypes", where)
        for t in dtypes:
            if t not in DTYPES:
                raise UsageError(f"{where}: unknown dtype {t!r} (known: {', '.join(DTYPES)})")
        params_table = dict(entry.get("params", {}))
        if quick and "quick" in entry:
            params_table.update(entry["quick"])
        grid = [workload.normalize_params(p) for p in _grid(params_table, where)]
        for b in backends:
            if b not in known:
                raise UsageError(f"{where}: unknown backend {b!r} (known: {', '.join(known)})")
            if filters.backends and b not in filters.backends:
                continue
            got = load(b)
            if got is None:
                continue
            backend, implemented = got
            if entry["workload"] not in implemented:
                raise UsageError(f"{where}: backend {b!r} does not implement workload {entry['workload']!r}")
            devices = _as_list(entry.get("devices", list(backend.device_kinds)), "devices", where)
            for d in devices:
                if not isinstance(d, str) or d.split(":")[0] not in backend.device_kinds:
                    raise UsageError(f"{where}: backend {b!r} has no device kind {d!r} "
                                     f"(it drives: {', '.join(backend.device_kinds)})")
            if filters.devices:
                # An explicit device id on the command line (cuda:1) replaces the suite's kind (cuda).
                picked = []
                for want in filters.devices:
                    for d in devices:
                        if _device_matches(d, want):
                            picked.append(want if ":" in want else d)
                devices = list(dict.fromkeys(picked))
            try:
                all_variants = backend.variants(entry["workload"])
            except Exception as exc:  # noqa: BLE001 - a plug-in whose op module is broken is left out
                broken[b] = f"backend {b!r} is broken: {type(exc).__name__}: " \
                            + (str(exc).strip().splitlines() or [""])[0][:300]
                continue
            variants = _as_list(entry.get("variants", list(all_variants)), "variants", where)
            for v in variants:
                if v not in all_variants:
                    raise UsageError(f"{where}: backend {b!r} has no variant {v!r} of {entry['workload']} "
                                     f"(has: {', '.join(all_variants)})")
            for d, t, v, p in itertools.product(devices, dtypes, variants, grid):
                if filters.dtypes and t not in filters.dtypes:
                    continue
                # A variant narrower than its backend (a CUDA graph) expands only where it runs, unless asked for.
                runs_on = backend.variant_device_kinds(entry["workload"], v)
                if "variants" not in entry and d.split(":")[0] not in runs_on:
                    continue
                try:
                    spec = CaseSpec.make(entry["workload"], b, d, t, p, v, suite.name)
                except RecordError as exc:
                    raise UsageError(f"{where}: {exc}") from exc
                need = workload.memory_bytes(p, t)
                if check_memory and mem_avail and need > mem_avail:
                    raise UsageError(f"{where}: {spec.label()} needs about {need / 2**30:.1f} GiB of memory, "
                                     f"only {mem_avail / 2**30:.1f} GiB available")
                if spec not in seen:
                    seen.add(spec)
                    specs.append(spec)
                    if cpu_limits is not None and "max_cpu_call_s" in entry and d.split(":")[0] == "cpu":
                        cpu_limits[spec] = float(entry["max_cpu_call_s"])
    if not specs and broken:
        raise GpubenchError(f"no cases to run in suite {suite.name!r}: " + "; ".join(broken.values()))
    if not specs:
        raise UsageError(f"no cases left in suite {suite.name!r} after filters")
    return specs


# --- the order of a run -------------------------------------------------------------------------------


def _work(spec: CaseSpec) -> float:
    """How much one call of ``spec`` does (FLOPs, or bytes for a bandwidth workload; else its integer parameters'
    product): the measure of "the largest size" among a sweep's cases."""
    from gpubench.workloads import find_workload

    p = spec.param_dict
    w = find_workload(spec.workload)
    if w is not None:
        try:
            p = w.normalize_params(p)
            work = w.bytes_moved(p, spec.dtype) if w.unit == "gbps" else w.flops(p)
            if work:
                return float(work)
        except Exception:  # noqa: BLE001 - an odd case still gets a place in the order
            pass
    product = 1.0
    for v in p.values():
        if isinstance(v, int) and not isinstance(v, bool):
            product *= v
    return product


def sweep_key(spec: CaseSpec) -> tuple:
    """The sweep a case belongs to: everything but its integer (size) parameters. Cases with the same key differ
    only in size (``matmul torch:cuda float32`` at 256³ … 8192³; ``transfer h2d pinned`` at 4 KiB … 1 GiB)."""
    kinds = tuple((k, v) for k, v in spec.params if not isinstance(v, int) or isinstance(v, bool))
    return spec.workload, spec.backend, spec.device, spec.dtype, spec.variant, kinds


def telling_tiers(specs: list[CaseSpec]) -> list[list[CaseSpec]]:
    """Two tiers: one case per sweep (:func:`sweep_key`) at its telling size, the largest problem, which shows what
    the device does; then the rest of each sweep. Every backend × device × dtype (and mode) is seen once before any
    size sweep runs."""
    best: dict[tuple, CaseSpec] = {}
    for spec in specs:
        key = sweep_key(spec)
        if key not in best or _work(spec) > _work(best[key]):
            best[key] = spec
    telling = set(best.values())
    return [[s for s in specs if s in telling], [s for s in specs if s not in telling]]


def group_by_backend(specs: list[CaseSpec]) -> list[CaseSpec]:
    """``specs`` grouped by backend, backends in order of first appearance, cases in their order within each."""
    rank = {b: r for r, b in enumerate(dict.fromkeys(s.backend for s in specs))}
    return sorted(specs, key=lambda s: rank[s.backend])


def run_order(tiers: list[list[CaseSpec]]) -> list[CaseSpec]:
    """The order a run takes its cases in: tier after tier, each grouped by backend (:func:`group_by_backend`),
    each case once (its first tier)."""
    out: list[CaseSpec] = []
    seen: set[CaseSpec] = set()
    for tier in tiers:
        fresh = [s for s in tier if s not in seen]
        seen.update(fresh)
        out += group_by_backend(fresh)
    return out
