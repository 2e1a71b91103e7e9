"""pytest plugin: gpubench cases as pytest-benchmark benchmarks, verified first and timed to completion.

Registered through the ``pytest11`` entry point, so it is active wherever gpubench is installed.
It adds:

* the ``gpubench_case`` fixture, a factory that builds a case exactly as ``gpubench run`` does
  (same inputs, same adapter, same float64 reference check) and returns a :class:`GpubenchCase`
  whose :meth:`~GpubenchCase.run` times it through pytest-benchmark's ``benchmark`` fixture.
  A wrong result fails the test before anything is timed; an unavailable backend, device or
  dtype skips it with the backend's own reason;
* the ``gpubench_backend`` fixture, a factory returning a loaded backend on a resolved device;
* the markers ``gpu``, ``cuda`` and ``opencl``: a marked test is skipped, with the backends'
  reasons, unless such a device is present;
* ``--gpubench-store PATH|URL`` (or the ini setting ``gpubench_store``): also store every case of
  the session as one run of a gpubench results store (a SQLite file or ``postgresql://…``), for
  ``gpubench report`` and ``compare``. Each case is committed as soon as it finishes
  (:class:`gpubench.recorder.RunRecorder`, the recorder of ``gpubench run``), so a session cut short
  keeps its cases: SIGTERM (``timeout -s TERM``) ends the session as Ctrl-C does, the run is marked
  ``interrupted`` and pytest-benchmark still writes its JSON;
* ``--gpubench-quick``: gpubench's ``--quick`` harness profile (short warm-up and budget).

Timing. The harness's own warm-up and loop calibration (:func:`gpubench.harness.plan_sampling`)
choose the calls per sample (so a sample is as long as in ``gpubench run``), and
:func:`gpubench.harness.rounds_within_budget` the number of samples; pytest-benchmark then times
``rounds`` samples of that many calls with its host clock. When the backend's device runs
asynchronously, the last call of every sample synchronizes the device, so each sample covers the
work to its completion, not just its launch. Nothing here imports gpubench, NumPy or a framework
until a fixture or marker is used: a pytest run that does not use them loads nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

#: Marker name → device kinds that satisfy it.
MARKER_KINDS = {"gpu": ("cuda", "opencl"), "cuda": ("cuda",), "opencl": ("opencl",)}

#: Suite name of runs this plugin stores (and of imported pytest-benchmark files).
SUITE = "pytest-benchmark"


# --- options, markers and the session recorder ---------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gpubench", "gpubench: verified, synchronized GPU/CPU benchmarks")
    group.addoption("--gpubench-store", metavar="PATH|URL", default=None,
                    help="also store the gpubench cases of this session as a run in this results store")
    group.addoption("--gpubench-label", metavar="TEXT", default="", help="label of the stored run")
    group.addoption("--gpubench-quick", action="store_true",
                    help="gpubench's --quick harness profile: short warm-up and time budget per case")
    parser.addini("gpubench_store", "results store for --gpubench-store when the option is not given", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu(backend=None): needs a GPU (CUDA, or an OpenCL GPU); "
                                       "skipped with the backends' reasons otherwise")
    config.addinivalue_line("markers", "cuda(backend=None): needs a CUDA device; skipped with the reason otherwise")
    config.addinivalue_line("markers", "opencl(backend=None): needs an OpenCL device; skipped with the reason if not")
    path = config.getoption("gpubench_store") or config.getini("gpubench_store") or None
    if path and os.path.isdir(path):
        raise pytest.UsageError(f"--gpubench-store: {path} is a directory, not a results store file")
    if hasattr(config, "workerinput"):
        path = None  # xdist workers would each start a run; pytest-benchmark disables timing there anyway
    session = GpubenchSession(config, path)
    config.pluginmanager.register(session, "gpubench-session")
    if path:
        session.stop_on_sigterm()


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin("gpubench-session")
    if session is not None:
        session.restore_signals()


def _sigterm_to_interrupt(signum, frame):  # pragma: no cover - exercised through a subprocess test
    raise KeyboardInterrupt


def _session(config: pytest.Config) -> GpubenchSession:
    return config.pluginmanager.get_plugin("gpubench-session")


class GpubenchSession:
    """Per-session state: device probes for markers, results of every case, the store run."""

    def __init__(self, config: pytest.Config, store_path: str | None):
        self.config = config
        self.store_path = store_path
        self.store = None
        self.recorder = None
        self.run_id: int | None = None
        self._old_sigterm = None
        self.backends_used: set[str] = set()
        self.untimed: list = []  # skipped / incorrect / error CaseResults (not in pytest-benchmark's JSON)
        self._probes: dict[tuple[str, str | None], str | None] = {}

    # markers -----------------------------------------------------------------------------------
    def device_reason(self, marker: str, backend_name: str | None) -> str | None:
        """None when a device satisfying ``marker`` is present, else why not (cached per session)."""
        key = (marker, backend_name)
        if key not in self._probes:
            self._probes[key] = _probe(marker, backend_name)
        return self._probes[key]

    # signals -----------------------------------------------------------------------------------
    def stop_on_sigterm(self) -> None:
        """Make SIGTERM end the session as Ctrl-C does (the run is then marked ``interrupted``, not abandoned)."""
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)

    def restore_signals(self) -> None:
        """Put back the SIGTERM handler found at the start."""
        import signal

        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # results -----------------------------------------------------------------------------------
    def record(self, result, harness_settings=None) -> None:
        """Keep one case result; with a store configured, commit it at once (as ``gpubench run`` does)."""
        self.backends_used.add(result.spec.backend)
        if result.status != "ok":
            self.untimed.append(result)
        if not self.store_path:
            return
        if self.recorder is None:
            import shlex

            from gpubench.envinfo import capture_host
            from gpubench.harness import HarnessSettings
            from gpubench.recorder import RunRecorder, RunSettings
            from gpubench.store import open_store

            self.store = open_store(self.store_path)
            harness = harness_settings or HarnessSettings()
            self.recorder = RunRecorder(
                self.store, SUITE, RunSettings("pytest", harness, _profile_name(harness)), baseline="numpy",
                label=self.config.getoption("gpubench_label"),
                command="pytest " + " ".join(shlex.quote(a) for a in self.config.invocation_params.args),
                environment={**capture_host(), "backends": {}})
            self.run_id = self.recorder.begin()
        self.recorder.add(result)

    def backend_environments(self) -> dict[str, Any]:
        """Each used backend's environment facts (versions, devices) or its unavailability reason."""
        from gpubench.worker import backend_environment

        out = {}
        for name in sorted(self.backends_used):
            try:
                out[name] = backend_environment(name)
            except Exception as exc:  # noqa: BLE001 - environment facts are best effort
                out[name] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
        return out

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.store is None or self.recorder is None:
            return
        try:
            status = "interrupted" if exitstatus == pytest.ExitCode.INTERRUPTED else "complete"
            if status == "complete":  # an interrupted session ends at once (a time limit is running out)
                self.recorder.environment["backends"] = self.backend_environments()
                self.recorder.update_environment()
            self.recorder.finish(status)
            n = self.recorder.added
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(f"gpubench: stored {n} case(s) as run {self.run_id} in {self.store.location}")
        finally:
            self.store.close()
            self.store = self.recorder = None

    # pytest-benchmark hooks (optional: pytest-benchmark may not be installed) -------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(self, config: pytest.Config, machine_info: dict) -> None:
        """Add gpubench's host facts and backend environments to the JSON's ``machine_info``."""
        if self.backends_used:
            from gpubench.envinfo import capture_host

            machine_info["gpubench"] = {**capture_host(), "backends": self.backend_environments()}

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_json(self, config: pytest.Config, benchmarks: list, output_json: dict) -> None:
        """Keep skipped and incorrect cases in the JSON too, so an imported run shows them with reasons."""
        if self.backends_used:
            output_json["gpubench"] = {"schema": "gpubench-pytest", "version": 1,
                                       "untimed": [r.to_dict() for r in self.untimed]}


def _profile_name(settings) -> str:
    """The run profile (:mod:`gpubench.profile`) whose harness settings these are, or ``custom``."""
    from gpubench.profile import PROFILES

    return next((name for name, p in PROFILES.items() if p.settings == settings), "custom")


def _probe(marker: str, backend_name: str | None) -> str | None:
    from gpubench.backends import backend_names, get_backend
    from gpubench.errors import GpubenchError, UsageError
    from gpubench.ops import device_hardware

    kinds = MARKER_KINDS[marker]
    what = "GPU" if marker == "gpu" else f"{marker} device"
    if backend_name:
        names = [backend_name]
    else:
        names = [n for n in backend_names() if set(get_backend(n).device_kinds) & set(kinds)]
        if not names:
            return f"no installed gpubench backend drives a {what}"
    reasons = []
    for name in names:
        try:
            backend = get_backend(name)
        except UsageError as exc:
            raise pytest.UsageError(f"@pytest.mark.{marker}: {exc}") from exc
        except GpubenchError as exc:
            reasons.append(str(exc))
            continue
        if not set(backend.device_kinds) & set(kinds):
            reasons.append(f"{name}: drives no {what}")
            continue
        try:
            backend.load()
            devices = backend.devices()
        except GpubenchError as exc:
            reasons.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - a broken framework is a reason to skip, said plainly
            reasons.append(f"{name}: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        # A GPU: CUDA, or a device whose hardware is one (an OpenCL GPU; PoCL's CPU device is not).
        if any(d.kind == "cuda" or device_hardware(d) == "gpu" if marker == "gpu" else d.kind in kinds
               for d in devices):
            return None
        reasons.append(f"{name}: no {what} found")
    return "; ".join(reasons)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip tests marked ``gpu``/``cuda``/``opencl`` when no such device is present."""
    for marker in MARKER_KINDS:
        for mark in item.iter_markers(marker):
            backend = mark.args[0] if mark.args else mark.kwargs.get("backend")
            if backend is None:
                callspec = getattr(item, "callspec", None)
                value = callspec.params.get("backend") if callspec is not None else None
                backend = value if isinstance(value, str) else None
            reason = _session(item.config).device_reason(marker, backend)
            if reason:
                _skip(reason)


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def gpubench_settings(pytestconfig: pytest.Config):
    """The :class:`~gpubench.harness.HarnessSettings` cases are calibrated with (override to change)."""
    from gpubench.profile import resolve_profile

    return resolve_profile(quick=bool(pytestconfig.getoption("gpubench_quick"))).settings


class BackendOnDevice:
    """A loaded backend adapter and one of its resolved devices."""

    def __init__(self, backend, device):
        self.backend = backend
        self.device = device

    def synchronize(self) -> None:
        """Wait for the device's queued work."""
        self.backend.synchronize(self.device)

    def __repr__(self) -> str:
        return f"<{self.backend.name} on {self.device.id} ({self.device.name})>"


@pytest.fixture
def gpubench_backend() -> Callable[..., BackendOnDevice]:
    """Factory ``gpubench_backend(name, device="cpu")``: the backend loaded on that device, or a skip (reason)."""
    def make(name: str, device: str = "cpu") -> BackendOnDevice:
        from gpubench.backends import get_backend
        from gpubench.errors import Unavailable, UsageError

        try:
            backend = get_backend(name)
        except UsageError as exc:
            pytest.fail(f"gpubench: {exc}", pytrace=False)
        try:
            backend.load()
            return BackendOnDevice(backend, backend.resolve_device(device))
        except Unavailable as exc:
            _skip(str(exc))

    return make


@pytest.fixture
def gpubench_case(request: pytest.FixtureRequest, gpubench_settings) -> Callable[..., GpubenchCase]:
    """Factory: ``gpubench_case(workload, backend, device="cpu", dtype="float32", params=None, variant="default")``
    or ``gpubench_case(spec)``, returning a verified :class:`GpubenchCase`; call ``case.run(benchmark)``.
    """
    session = _session(request.config)
    made: list[GpubenchCase] = []

    def make(workload, backend: str | None = None, device: str = "cpu", dtype: str = "float32",
             params: dict[str, Any] | None = None, variant: str = "default") -> GpubenchCase:
        from gpubench.records import CaseSpec, RecordError

        if isinstance(workload, CaseSpec):
            spec = workload
        else:
            if backend is None:
                pytest.fail("gpubench_case: give a backend name", pytrace=False)
            try:
                spec = CaseSpec.make(workload, backend, device, dtype, params or {}, variant, SUITE)
            except RecordError as exc:
                pytest.fail(f"gpubench_case: {exc}", pytrace=False)
        case = GpubenchCase(spec, gpubench_settings, session)
        made.append(case)
        case.prepare()
        return case

    yield make
    # Last made, first closed: each case restores the process-global state it found (its backend's
    # case scope), so scopes must unwind in reverse, or the first case's settings would outlive it.
    for case in reversed(made):
        case.close()


class _SyncEvery:
    """Calls ``fn``; every ``number``-th call also synchronizes the device (the end of one timed sample)."""

    __slots__ = ("fn", "sync", "number", "count")

    def __init__(self, fn: Callable[[], object], sync: Callable[[], object], number: int):
        self.fn, self.sync, self.number, self.count = fn, sync, number, 0

    def __call__(self) -> None:
        self.fn()
        self.count += 1
        if self.count == self.number:
            self.count = 0
            self.sync()


def _skip(reason: str) -> None:
    """Skip the running test, reported at the test's own location (not at this plugin's line)."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


class GpubenchCase:
    """One gpubench case made ready inside a test: built, checked against float64, then timed by :meth:`run`.

    It drives the same :class:`gpubench.case.CasePath` as ``gpubench run``'s worker, so the
    stored record is the same, field for field; only the samples come from pytest-benchmark.
    """

    def __init__(self, spec, settings, session: GpubenchSession):
        self.spec = spec
        self.settings = settings
        self.session = session
        self.path = None
        self.result = None
        """The stored :class:`~gpubench.records.CaseResult` once :meth:`run` has finished."""

    # convenience views of the prepared case ----------------------------------------------------------
    @property
    def op(self):
        """The built op (None before :meth:`prepare` or after :meth:`close`)."""
        return self.path.op if self.path is not None else None

    @property
    def backend(self):
        return self.path.backend if self.path is not None else None

    @property
    def device(self):
        return self.path.device if self.path is not None else None

    @property
    def workload(self):
        return self.path.workload if self.path is not None else None

    @property
    def params(self) -> dict[str, Any]:
        return self.path.params if self.path is not None else {}

    @property
    def rel_error(self) -> float | None:
        return self.path.rel_error if self.path is not None else None

    @property
    def tolerance(self) -> float | None:
        return self.path.tolerance if self.path is not None else None

    def prepare(self) -> None:
        """Build the case (as ``gpubench run``'s worker does) and check one call against the reference.

        Skips the test when the backend, device or dtype is unavailable; fails it when the
        result is wrong, so a wrong kernel can never pass as a fast one.
        """
        from gpubench.case import CasePath
        from gpubench.errors import UsageError

        try:
            self.path = CasePath(self.spec)
        except UsageError as exc:
            pytest.fail(f"gpubench: {exc}", pytrace=False)
        timing = self.path.params.get("timing")
        if timing is not None and timing != "gpubench":
            # pytest-benchmark times every case its own way: a record labelled with another timing would lie.
            pytest.fail(f"gpubench: timing = {timing!r} is a way of `gpubench run --suite lecture`, not a benchmark: "
                        "leave timing out here", pytrace=False)
        self.spec = self.path.spec  # normalized (size=1024 → m=n=k=1024), as a suite expands it
        ended = self.path.prepare()
        if ended is None:
            return
        self.result = ended
        self.session.record(ended, self.settings)
        if ended.status == "skipped":
            _skip(ended.error)
        if ended.status == "incorrect":
            pytest.fail(f"gpubench: {self.spec.label()}: wrong result against the float64 reference: "
                        f"{ended.error} (not timed)", pytrace=False)
        trace = ended.metrics.get("traceback", "")
        pytest.fail(f"gpubench: {self.spec.label()}: {ended.error}" + (f"\n{trace}" if trace else ""),
                    pytrace=False)

    @property
    def sync(self) -> Callable[[], None] | None:
        """The device synchronization to end each timed sample with (None for synchronous CPU backends)."""
        from gpubench.backends.base import Backend

        if type(self.backend).synchronize is Backend.synchronize:
            return None
        backend, device = self.backend, self.device
        return lambda: backend.synchronize(device)

    # timing ----------------------------------------------------------------------------------------
    def calibrate(self) -> tuple[int, int]:
        """Warm up and choose ``(calls per sample, rounds)`` with gpubench's harness.

        Calls per sample as in :func:`gpubench.harness.measure` (:func:`~gpubench.harness.plan_sampling`: a
        sample lasts at least ``min_sample_s``; one call in cold-cache mode, each after a flush); rounds fill the
        time budget (:func:`~gpubench.harness.rounds_within_budget`). Calibrated on the clock pytest-benchmark
        reads (host time, device synchronized at the end of a sample), not on device events: an op whose device
        time is far below its host launch cost would otherwise get samples far longer than intended.
        """
        from gpubench.harness import HostTimer, plan_sampling, rounds_within_budget

        flusher = self.path.flusher
        plan = plan_sampling(self.op.call, HostTimer(self.sync), self.settings,
                             flush=flusher.flush if flusher is not None else None)
        if self.workload.per_call_latency:  # each round is one request, timed alone (gpubench.latency)
            return 1, rounds_within_budget(self.settings, plan.sample_s / plan.number)
        return plan.number, rounds_within_budget(self.settings, plan.sample_s)

    def run(self, benchmark, rounds: int | None = None):
        """Time the case with pytest-benchmark's ``benchmark`` fixture; return the :class:`CaseResult`.

        Per-call statistics land in pytest-benchmark's report (it divides each round by the
        calls per round); ``benchmark.extra_info["gpubench"]`` carries the case's ordinary
        gpubench record (:meth:`CaseResult.to_dict`), which ``gpubench import`` reads back.
        """
        import time

        from gpubench.harness import Measurement
        from gpubench.stats import summarize

        if self.op is None:
            raise RuntimeError("gpubench_case: the case was not prepared")
        spec = self.spec
        if benchmark.group is None:
            benchmark.group = f"{spec.workload} {spec.dtype} {self.workload.describe(self.params)}"
        if getattr(benchmark, "disabled", False):
            benchmark.pedantic(self.op.call)  # --benchmark-disable: run once (already verified), time nothing
            return None
        sync, start = self.sync, time.perf_counter()
        if self.workload.self_timed:
            # One call is a whole training run, timed per epoch from within (as in the worker): run one
            # more, warm, here; the record's samples are that run's steady-state epoch times.
            target = self.op.call if sync is None else _SyncEvery(self.op.call, sync, 1)
            benchmark.pedantic(target, rounds=rounds or 1, iterations=1, warmup_rounds=0)
            result = self.path.measure(self.settings)
        else:
            number, auto_rounds = self.calibrate()
            target = self.op.call if sync is None else _SyncEvery(self.op.call, sync, number)
            n_rounds = rounds or auto_rounds
            flusher = self.path.flusher
            self.path.watch.window_start()  # the machine and the energy counters, around the timed rounds
            if flusher is None:
                benchmark.pedantic(target, rounds=n_rounds, iterations=number, warmup_rounds=0)
            else:
                # Cold cache: pytest-benchmark runs ``setup`` before every round, outside its timing.
                def setup() -> None:
                    flusher.flush()
                    if sync is not None:
                        sync()

                benchmark.pedantic(target, setup=setup, rounds=n_rounds, iterations=1, warmup_rounds=0)
            if sync is not None:
                sync()  # pedantic makes one extra, untimed call for its return value
            if flusher is None:
                # pytest-benchmark makes one extra call for the return value when it loops (iterations > 1).
                self.path.watch.window_end(n_rounds * number + (1 if number > 1 else 0))
            else:
                self.path.watch.window_end(None, "the cold-cache flush before each round ran inside the window")
            samples = tuple(float(x) for x in benchmark.stats.stats.data)
            target_met = summarize(list(samples)).rel_ci_halfwidth <= self.settings.target_rel_ci
            if self.workload.per_call_latency and number == 1:
                from gpubench.latency import HOST_CLOCK, PER_CALL

                self.op.metrics.update({"latency_method": PER_CALL, "latency_calls": len(samples),
                                        "latency_clock": HOST_CLOCK})
            result = self.path.finish(Measurement(samples, number, "perf_counter", target_met, 0,
                                                  time.perf_counter() - start, cold=flusher is not None))
        self.result = result
        self.session.record(result, self.settings)
        if result.status != "ok":
            pytest.fail(f"gpubench: {spec.label()}: {result.error}", pytrace=False)
        benchmark.extra_info["gpubench"] = result.to_dict()
        return result

    def close(self) -> None:
        """Free the case's device memory."""
        path, self.path = self.path, None
        if path is not None:
            path.close()
