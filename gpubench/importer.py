"""Import a pytest-benchmark JSON file (``--benchmark-json`` output) into the store as one run.

Every benchmark becomes one :class:`~gpubench.records.CaseResult`:

* a benchmark timed through gpubench's pytest plugin carries its ordinary gpubench record in
  ``extra_info["gpubench"]`` (:meth:`CaseResult.to_dict`: spec, spec hash, FLOP and byte counts,
  correctness check, and the samples, which are pytest-benchmark's own ``stats.data``) and comes
  back as exactly that record, comparable with the same case of a ``gpubench run``;
* any other benchmark's samples are pytest-benchmark's raw per-iteration times (``stats.data``;
  each round's time divided by its iterations, so ``number`` is the iteration count), and it
  becomes workload = its pytest node id, backend ``pytest``, device ``cpu``
  (pytest-benchmark times host code with a host clock) and dtype ``float64`` (a record needs a
  dtype; Python's float is one), with its group, param and options kept in ``metrics``.

Cases the plugin skipped or found incorrect are not pytest-benchmark benchmarks; the plugin keeps
them under the file's top-level ``gpubench`` key and they are imported with their reasons.
Summary statistics alone are never turned into samples: a file without ``stats.data`` (for
example ``--benchmark-save`` without ``--benchmark-save-data``) is rejected, because every gpubench
statistic is derived from raw samples and made-up samples would be a lie.

Machine and commit information is kept in the run's environment: gpubench's own host facts
when the plugin recorded them (``machine_info["gpubench"]``), else the fields pytest-benchmark
collects mapped onto the same keys, plus the original ``machine_info`` and ``commit_info``.
Validation is complete before anything is written, and the run is written in one transaction.
Files come from other people, so validation assumes nothing: the text is checked for nesting
deeper than :data:`MAX_DEPTH` before it is parsed (no recursion blow-up); every field that is kept
must have the type readers expect (``options`` an object, ``machine_info["gpubench"]`` the shape of
:data:`gpubench.shapes.ENVIRONMENT`...); every number kept must be finite (no NaN or Infinity, which
JSON lacks) and integers within 64 bits; every time per call must lie within
[:data:`MIN_TIME_S`, :data:`MAX_TIME_S`] and every FLOP or byte count below :data:`MAX_WORK`, so
that no statistic or rate derived from them can overflow. Any problem is one line naming the field
(``b.json: benchmarks[3].options: must be an object, got string``), exit status 2, and nothing stored.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpubench import shapes
from gpubench.errors import UsageError
from gpubench.records import CaseResult, CaseSpec, RecordError, spec_hash

#: Suite name of imported runs.
SUITE = "pytest-benchmark"

#: Deepest nesting of arrays and objects a file may have (pytest-benchmark's own files nest about 8 deep).
MAX_DEPTH = 64
#: Shortest and longest time per call accepted, in seconds (a picosecond; about eleven days).
MIN_TIME_S = 1e-12
MAX_TIME_S = 1e6
#: Largest iteration count per round, and FLOP or byte count per call.
MAX_ITERATIONS = 2**53
MAX_WORK = 1e30
#: Integers anywhere in what is kept must fit in 64 bits.
MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class ImportedRun:
    """A pytest-benchmark file turned into a run header and validated results, not yet stored."""

    started_at: str | None
    label: str
    environment: dict[str, Any]
    settings: dict[str, Any]
    results: tuple[CaseResult, ...]


def _fail(path: str, what: str) -> UsageError:
    return UsageError(f"{os.path.basename(path)}: {what}")


#: A string (to its closing quote, or to the end of the text when it has none) or a bracket, captured. A string
#: always matches once it starts, so the scan never backtracks into it: linear in the text, whatever its quotes.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|([\[\]{}])', re.DOTALL)


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON ``text`` (brackets inside strings do not count), found in one
    linear scan without parsing, so that a hostile file cannot exhaust the parser's recursion."""
    steps = [1 if b in "[{" else -1 for b in _TOKEN.findall(text) if b]
    return max(itertools.accumulate(steps), default=0)


def read_json(path: str) -> dict[str, Any]:
    """Parse ``path`` and check it looks like pytest-benchmark output."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{path}: is a directory, not a pytest-benchmark JSON file") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise _fail(path, "not a text file (expected pytest-benchmark JSON)") from exc
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise _fail(path, f"arrays and objects nest {depth} deep (at most {MAX_DEPTH}): not a pytest-benchmark file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; a nesting the scan missed
        raise _fail(path, f"not valid JSON ({str(exc).splitlines()[0][:100]})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) \
            or not isinstance(doc.get("machine_info"), dict):
        raise _fail(path, "not a pytest-benchmark JSON file (needs 'machine_info' and a 'benchmarks' list; "
                          "write one with pytest --benchmark-json=PATH)")
    return doc


def bad_number(value: Any, where: str) -> str | None:
    """The first number in ``value`` that no reader can use, as ``path: what`` (None when there is none):
    NaN or an infinity (not JSON), or an integer beyond 64 bits. Walks without recursion."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}") for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item))))
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{path}: {item!r} is not a number JSON can hold"
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            return f"{path}: integer out of range (more than 64 bits)"
    return None


def _check_numbers(path: str, value: Any, where: str) -> None:
    problem = bad_number(value, where)
    if problem:
        raise _fail(path, problem)


def _check_type(path: str, value: Any, where: str, types: tuple[type, ...], what: str) -> None:
    """``value`` (absent or null allowed) must be one of ``types``."""
    if value is not None and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
        raise _fail(path, f"{where}: must be {what}, got {shapes.json_type(value)}")


def _check_shape(path: str, value: Any, shape: Any, where: str) -> None:
    problems = shapes.problems(value, shape, where)
    if problems:
        raise _fail(path, problems[0])


def _check_times(path: str, values: Any, where: str) -> None:
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
               and MIN_TIME_S <= x <= MAX_TIME_S for x in values):
        bad = next(x for x in values if not (isinstance(x, (int, float)) and not isinstance(x, bool)
                                             and math.isfinite(x) and MIN_TIME_S <= x <= MAX_TIME_S))
        raise _fail(path, f"{where} holds {bad!r}: not a positive finite time per call "
                          f"between {MIN_TIME_S:g} and {MAX_TIME_S:g} s")


def _samples(path: str, bench: dict[str, Any], name: str, where: str) -> tuple[tuple[float, ...], int]:
    stats = bench.get("stats")
    if not isinstance(stats, dict):
        raise _fail(path, f"benchmark {name!r} has no 'stats'")
    data = stats.get("data")
    if not isinstance(data, list) or not data:
        raise _fail(path, f"benchmark {name!r} has no raw timings (stats.data); gpubench derives every statistic "
                          "from raw samples: write the file with --benchmark-json, or --benchmark-save-data")
    _check_times(path, data, f"{where}.stats.data")
    iterations = stats.get("iterations", 1)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= MAX_ITERATIONS:
        raise _fail(path, f"benchmark {name!r}: stats.iterations must be a positive integer (at most 2**53), "
                          f"got {iterations!r}")
    return tuple(float(x) for x in data), iterations


def _check_record(path: str, rec: Any, where: str) -> CaseResult:
    """A gpubench record from the file: the record contract (:meth:`CaseResult.from_dict`), plus what the
    importer adds for data from elsewhere: finite numbers, bounded times and counts, the metrics' shapes."""
    if not isinstance(rec, dict):
        raise _fail(path, f"{where}: must be an object, got {shapes.json_type(rec)}")
    _check_numbers(path, rec, where)
    spec = rec.get("spec")
    if not isinstance(spec, dict):
        raise _fail(path, f"{where}.spec: must be an object, got {shapes.json_type(spec)}")
    for key in ("workload", "backend", "device", "dtype", "variant", "suite"):
        _check_type(path, spec.get(key), f"{where}.spec.{key}", (str,), "a string")
    _check_type(path, spec.get("params"), f"{where}.spec.params", (dict,), "an object")
    for key, value in (spec.get("params") or {}).items():
        items = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in items):
            raise _fail(path, f"{where}.spec.params.{key}: must be a string, number, true, false or an array of "
                              f"them, got {shapes.json_type(value)}")
    for key in ("samples", "host_samples"):
        _check_type(path, rec.get(key), f"{where}.{key}", (list,), "an array")
        _check_times(path, rec.get(key) or (), f"{where}.{key}")
    for key in ("flops", "bytes"):
        value = rec.get(key)
        _check_type(path, value, f"{where}.{key}", (int, float), "a number")
        if value is not None and not 0 <= value <= MAX_WORK:
            raise _fail(path, f"{where}.{key}: must be between 0 and {MAX_WORK:g}, got {value!r}")
    for key in ("rel_error", "tolerance", "wall_s"):
        _check_type(path, rec.get(key), f"{where}.{key}", (int, float), "a number")
    number = rec.get("number", 1)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_ITERATIONS:
        raise _fail(path, f"{where}.number: must be a positive integer (at most 2**53), got {number!r}")
    for key in ("status", "clock", "error", "device_name", "spec_hash"):
        _check_type(path, rec.get(key), f"{where}.{key}", (str,), "a string")
    _check_type(path, rec.get("target_met"), f"{where}.target_met", (bool,), "true or false")
    _check_type(path, rec.get("flags"), f"{where}.flags", (list,), "an array")
    for key in ("metrics", "machine", "energy"):
        _check_type(path, rec.get(key), f"{where}.{key}", (dict,), "an object")
    _check_shape(path, rec.get("metrics"), shapes.METRICS, f"{where}.metrics")
    _check_shape(path, rec.get("machine"), shapes.MACHINE, f"{where}.machine")
    try:
        return CaseResult.from_dict(rec)
    except (RecordError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _fail(path, f"{where}: bad record: {exc}") from exc


def _gpubench_result(path: str, bench: dict[str, Any], info: dict[str, Any], name: str, where: str) -> CaseResult:
    """A benchmark timed through gpubench's pytest plugin: its ``extra_info`` holds the ordinary record."""
    if "status" not in info:
        raise _fail(path, f"benchmark {name!r}: extra_info.gpubench was written by an older gpubench plugin; "
                          "run the benchmarks again with this gpubench")
    result = _check_record(path, info, f"{where}.extra_info.gpubench")
    if not result.spec.match_key():
        raise _fail(path, f"benchmark {name!r}: extra_info.gpubench holds no case")
    metrics = {**result.metrics, "pytest_benchmark": {"fullname": bench.get("fullname", name)}}
    return dataclasses.replace(result, metrics=metrics)


#: Fields of a benchmark kept in a plain case's metrics, with the JSON types pytest-benchmark gives them.
_KEPT = {"group": ((str,), "a string"), "param": ((str, int, float, bool), "a string"),
         "params": ((dict,), "an object"), "options": ((dict,), "an object"), "extra_info": ((dict,), "an object")}


def _foreign_result(path: str, bench: dict[str, Any], name: str, where: str, samples: tuple[float, ...],
                    number: int, device_name: str) -> CaseResult:
    """Any other pytest-benchmark benchmark: workload = its node id, backend ``pytest``."""
    for key, (types, what) in _KEPT.items():
        _check_type(path, bench.get(key), f"{where}.{key}", types, what)
        _check_numbers(path, bench.get(key), f"{where}.{key}")
    timer = (bench.get("options") or {}).get("timer")
    _check_type(path, timer, f"{where}.options.timer", (str,), "a string")
    timer = timer or "perf_counter"
    if not timer.endswith("perf_counter"):
        raise UsageError(f"benchmark {name!r} was timed with {timer!r}; gpubench records wall-clock "
                         "perf_counter times only")
    spec = CaseSpec.make(name, "pytest", "cpu", "float64", {}, "default", SUITE)
    meta = {k: bench.get(k) for k in _KEPT if bench.get(k)}
    return CaseResult(spec=spec, status="ok", samples=samples, number=number, clock="perf_counter",
                      device_name=device_name, spec_hash=spec_hash(spec), metrics={"pytest_benchmark": meta})


def _environment(path: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Run environment: gpubench's host facts where recorded, else mapped from ``machine_info``."""
    from gpubench.envinfo import ISA_FLAGS

    _check_numbers(path, doc["machine_info"], "machine_info")
    _check_type(path, doc.get("commit_info"), "commit_info", (dict,), "an object")
    _check_numbers(path, doc.get("commit_info"), "commit_info")
    for key in ("version", "datetime"):
        _check_type(path, doc.get(key), key, (str,), "a string")
    machine = dict(doc["machine_info"])
    commit = doc.get("commit_info") or {}
    own = machine.pop("gpubench", None)
    if own is not None:
        _check_type(path, own, "machine_info.gpubench", (dict,), "an object")
        _check_shape(path, own, shapes.ENVIRONMENT, "machine_info.gpubench")
        env = dict(own)
    else:
        cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
        flags = cpu.get("flags") if isinstance(cpu.get("flags"), list) else []
        count = cpu.get("count")
        model = cpu.get("brand_raw") or machine.get("processor") or machine.get("machine") or "?"
        env = {
            "hostname": str(machine.get("node") or ""),
            "cpu": {"model": str(model),
                    "logical_cores": count if isinstance(count, int) and not isinstance(count, bool) else None,
                    "isa": [f for f in ISA_FLAGS if f in flags]},
            "os": f"{machine.get('system') or ''} {machine.get('release') or ''}".strip(),
            "python": str(machine.get("python_version") or ""),
            "python_impl": str(machine.get("python_implementation") or ""),
            "libraries": {}, "gpus": [], "backends": {},
        }
    env["source"] = "pytest-benchmark"
    env["pytest_benchmark"] = {"version": doc.get("version"), "datetime": doc.get("datetime"),
                               "machine_info": machine}
    env["commit"] = commit
    _check_shape(path, env, shapes.ENVIRONMENT, "machine_info")
    return env


def parse(path: str, label: str | None = None) -> ImportedRun:
    """Read and validate a pytest-benchmark JSON file; raise :class:`UsageError` (one line) on any problem."""
    doc = read_json(path)
    env = _environment(path, doc)
    device_name = str((env.get("cpu") or {}).get("model") or "")
    results: list[CaseResult] = []
    for i, bench in enumerate(doc["benchmarks"]):
        where = f"benchmarks[{i}]"
        if not isinstance(bench, dict) or not isinstance(bench.get("fullname") or bench.get("name"), str):
            raise _fail(path, f"{where} is not a benchmark record (needs a name)")
        name = bench.get("fullname") or bench["name"]
        _check_type(path, bench.get("extra_info"), f"{where}.extra_info", (dict,), "an object")
        samples, number = _samples(path, bench, name, where)
        info = (bench.get("extra_info") or {}).get("gpubench")
        try:
            if isinstance(info, dict):
                results.append(_gpubench_result(path, bench, info, name, where))
            else:
                results.append(_foreign_result(path, bench, name, where, samples, number, device_name))
        except (RecordError, KeyError, TypeError, ValueError) as exc:
            raise _fail(path, f"benchmark {name!r}: bad record: {exc}") from exc
    own = doc.get("gpubench")
    if own is not None:
        untimed = own.get("untimed") if isinstance(own, dict) else None
        if not isinstance(untimed, list):
            raise _fail(path, "the 'gpubench' section needs an 'untimed' list")
        for i, rec in enumerate(untimed):
            results.append(_check_record(path, rec, f"gpubench.untimed[{i}]"))
    if not results:
        raise _fail(path, "holds no benchmarks (did every benchmark fail or get skipped?)")
    if label is None:
        commit = env["commit"]
        cid = str(commit.get("id") or "")
        label = ""
        if cid and cid != "unversioned":
            label = f"{commit.get('branch') or '?'}@{cid[:12]}" + ("-dirty" if commit.get("dirty") else "")
    started = None
    if isinstance(doc.get("datetime"), str):
        try:
            started = datetime.fromisoformat(doc["datetime"]).isoformat(timespec="seconds")
        except ValueError as exc:
            raise _fail(path, f"bad 'datetime' {doc['datetime']!r}") from exc
    settings = {"source": "pytest-benchmark", "file": os.path.basename(path),
                "pytest_benchmark_version": doc.get("version")}
    return ImportedRun(started, label, env, settings, tuple(results))


def store_run(store, run: ImportedRun, *, baseline: str = "numpy", command: str = "") -> int:
    """Write a parsed file into ``store`` as one run, in one transaction (all or nothing); return its id."""
    with store.transaction():
        run_id = store.begin_run(SUITE, baseline=baseline, label=run.label, command=command,
                                 settings=run.settings, environment=run.environment, started_at=run.started_at)
        for result in run.results:
            store.add_result(run_id, result)
        store.finish_run(run_id, "complete")
    return run_id


def import_file(store, path: str, *, label: str | None = None, baseline: str = "numpy",
                command: str = "") -> tuple[int, int]:
    """Parse ``path`` and store it as one run; return ``(run id, number of results)``."""
    run = parse(path, label)
    return store_run(store, run, baseline=baseline, command=command), len(run.results)
