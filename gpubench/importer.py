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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpubench.errors import UsageError
from gpubench.records import CaseResult, CaseSpec, RecordError, spec_hash

#: Suite name of imported runs.
SUITE = "pytest-benchmark"


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


def read_json(path: str) -> dict[str, Any]:
    """Parse ``path`` and check it looks like pytest-benchmark output."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{path}: is a directory, not a pytest-benchmark JSON file") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise _fail(path, "not a text file (expected pytest-benchmark JSON)") from exc
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) \
            or not isinstance(doc.get("machine_info"), dict):
        raise _fail(path, "not a pytest-benchmark JSON file (needs 'machine_info' and a 'benchmarks' list; "
                          "write one with pytest --benchmark-json=PATH)")
    return doc


def _samples(path: str, bench: dict[str, Any], name: str) -> tuple[tuple[float, ...], int]:
    stats = bench.get("stats")
    if not isinstance(stats, dict):
        raise _fail(path, f"benchmark {name!r} has no 'stats'")
    data = stats.get("data")
    if not isinstance(data, list) or not data:
        raise _fail(path, f"benchmark {name!r} has no raw timings (stats.data); gpubench derives every statistic "
                          "from raw samples: write the file with --benchmark-json, or --benchmark-save-data")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
               for x in data):
        raise _fail(path, f"benchmark {name!r}: stats.data holds a value that is not a positive finite time")
    iterations = stats.get("iterations", 1)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise _fail(path, f"benchmark {name!r}: stats.iterations must be a positive integer, got {iterations!r}")
    return tuple(float(x) for x in data), iterations


def _gpubench_result(path: str, bench: dict[str, Any], info: dict[str, Any], name: str,
                     samples: tuple[float, ...], number: int) -> CaseResult:
    """A benchmark timed through gpubench's pytest plugin: its ``extra_info`` holds the ordinary record."""
    if "status" not in info:
        raise _fail(path, f"benchmark {name!r}: extra_info.gpubench was written by an older gpubench plugin; "
                          "run the benchmarks again with this gpubench")
    result = CaseResult.from_dict(info)
    if not result.spec.match_key():
        raise _fail(path, f"benchmark {name!r}: extra_info.gpubench holds no case")
    metrics = {**result.metrics, "pytest_benchmark": {"fullname": bench.get("fullname", name)}}
    return dataclasses.replace(result, metrics=metrics)


def _foreign_result(bench: dict[str, Any], name: str, samples: tuple[float, ...], number: int,
                    device_name: str) -> CaseResult:
    """Any other pytest-benchmark benchmark: workload = its node id, backend ``pytest``."""
    timer = str((bench.get("options") or {}).get("timer") or "perf_counter")
    if not timer.endswith("perf_counter"):
        raise UsageError(f"benchmark {name!r} was timed with {timer!r}; gpubench records wall-clock "
                         "perf_counter times only")
    spec = CaseSpec.make(name, "pytest", "cpu", "float64", {}, "default", SUITE)
    meta = {k: bench.get(k) for k in ("group", "param", "params", "options", "extra_info") if bench.get(k)}
    return CaseResult(spec=spec, status="ok", samples=samples, number=number, clock="perf_counter",
                      device_name=device_name, spec_hash=spec_hash(spec),
                      metrics={"pytest_benchmark": json.loads(json.dumps(meta, default=str))})


def _environment(doc: dict[str, Any]) -> dict[str, Any]:
    """Run environment: gpubench's host facts where recorded, else mapped from ``machine_info``."""
    from gpubench.envinfo import ISA_FLAGS

    machine = dict(doc["machine_info"])
    commit = doc.get("commit_info") if isinstance(doc.get("commit_info"), dict) else {}
    own = machine.pop("gpubench", None)
    if isinstance(own, dict):
        env = dict(own)
    else:
        cpu = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
        flags = set(cpu.get("flags") or [])
        env = {
            "hostname": machine.get("node", ""),
            "cpu": {"model": cpu.get("brand_raw") or machine.get("processor") or machine.get("machine", "?"),
                    "logical_cores": cpu.get("count"), "isa": [f for f in ISA_FLAGS if f in flags]},
            "os": f"{machine.get('system', '')} {machine.get('release', '')}".strip(),
            "python": machine.get("python_version", ""),
            "python_impl": machine.get("python_implementation", ""),
            "libraries": {}, "gpus": [], "backends": {},
        }
    env["source"] = "pytest-benchmark"
    env["pytest_benchmark"] = {"version": doc.get("version"), "datetime": doc.get("datetime"),
                               "machine_info": machine}
    env["commit"] = commit
    return env


def parse(path: str, label: str | None = None) -> ImportedRun:
    """Read and validate a pytest-benchmark JSON file; raise :class:`UsageError` (one line) on any problem."""
    doc = read_json(path)
    env = _environment(doc)
    device_name = (env.get("cpu") or {}).get("model", "") if isinstance(env.get("cpu"), dict) else ""
    results: list[CaseResult] = []
    for i, bench in enumerate(doc["benchmarks"]):
        if not isinstance(bench, dict) or not isinstance(bench.get("fullname") or bench.get("name"), str):
            raise _fail(path, f"benchmarks[{i}] is not a benchmark record (needs a name)")
        name = bench.get("fullname") or bench["name"]
        samples, number = _samples(path, bench, name)
        extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
        info = extra.get("gpubench")
        try:
            if isinstance(info, dict):
                results.append(_gpubench_result(path, bench, info, name, samples, number))
            else:
                results.append(_foreign_result(bench, name, samples, number, device_name))
        except (RecordError, KeyError, TypeError, ValueError) as exc:
            raise _fail(path, f"benchmark {name!r}: bad record: {exc}") from exc
    own = doc.get("gpubench")
    if own is not None:
        untimed = own.get("untimed") if isinstance(own, dict) else None
        if not isinstance(untimed, list):
            raise _fail(path, "the 'gpubench' section needs an 'untimed' list")
        for i, rec in enumerate(untimed):
            try:
                results.append(CaseResult.from_dict(rec))
            except (RecordError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _fail(path, f"gpubench.untimed[{i}]: bad record: {exc}") from exc
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
