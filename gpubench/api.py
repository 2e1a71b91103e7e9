"""gpubench from Python — a notebook or a script: run a suite, then read, show and report its results.

.. code-block:: python

    import gpubench

    run = gpubench.run("lecture", quick=True, devices="cpu")   # the cases run as `gpubench run` runs them
    run                     # in Jupyter: the run's headlines and results table
    run.to_pandas()         # its rows, as gpubench.load() gives them
    run.show()              # the table, as `gpubench show` prints it
    run.report()            # the HTML report: written to reports/run-<id>.html, shown inline in a notebook
    gpubench.compare(3, run.id)   # as `gpubench compare 3 <id>`; inline in a notebook
    gpubench.report([3, run.id])  # as `gpubench report 3 <id>`

:func:`run` is ``gpubench run``: the command line parses its options and calls the same function
(:func:`gpubench.runsuite.execute`), so a run started here has the same cases, worker processes, records and
store. Bad input raises the :class:`~gpubench.errors.UsageError` the command turns into exit status 2, before
anything is written. Ctrl-C (a notebook's *interrupt*) stops the run as it stops the command: the finished cases
are kept, the run is marked ``interrupted``, and :func:`run` returns it.

Importing this module (and :mod:`gpubench`) imports no framework: each function imports what it needs when called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gpubench.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from gpubench.report.inline import Report

__all__ = ["Run", "run"]

def _store_location(store: str | os.PathLike[str] | None) -> str:
    """Where a store is, fixed now: a plain file path made absolute (a later ``os.chdir`` does not move it)."""
    from gpubench.store.kinds import default_location

    if store is not None and not isinstance(store, (str, os.PathLike)):
        raise UsageError(f"store: a path or a URL, got {store!r}")
    location = os.fspath(store) if store is not None else default_location()
    return location if "://" in location or location.startswith("sqlite:") else os.path.abspath(location)


class Run:
    """A stored run: its id, suite, status and reason, and what can be done with it.

    ``Run(ref="latest", store=None)`` opens a stored run (``ref``: an id, ``latest`` or ``latest~N``); :func:`run`
    returns the run it made. Displayed in a notebook, a run shows its headlines and results table.
    """

    def __init__(self, ref: int | str = "latest", store: str | os.PathLike[str] | None = None):
        from gpubench.report.inline import run_refs
        from gpubench.store import open_store

        refs = run_refs(ref, "ref")
        if not refs or len(refs) != 1:
            raise UsageError(f"ref: one run id, 'latest' or 'latest~N', got {ref!r}")
        self._location = _store_location(store)
        with open_store(self._location, readonly=True) as opened:
            self._info = opened.run(refs[0])
            self._store_text = opened.location

    @property
    def id(self) -> int:
        """The run's id in its store."""
        return self._info.id

    @property
    def suite(self) -> str:
        """The suite's name."""
        return self._info.suite

    @property
    def status(self) -> str:
        """``complete``, ``time_limited``, ``interrupted``, ``failed``, ``running`` or ``abandoned``."""
        return self._info.status

    @property
    def reason(self) -> str:
        """Why the run ended as it did (a time limit says how many cases ran of how many); empty when complete."""
        return self._info.reason

    @property
    def label(self) -> str:
        """The run's label (``label=``, ``--label``)."""
        return self._info.label

    @property
    def store(self) -> str:
        """The store's location, as gpubench prints it (a URL's password hidden)."""
        return self._store_text

    def to_pandas(self) -> pandas.DataFrame:
        """The run's results as a DataFrame: the rows and columns of ``gpubench.load(store, run=id)``."""
        from gpubench.frame import load

        return load(self._location, run=self.id)

    def show(self) -> None:
        """Print the run as ``gpubench show`` does: its header, the results table and the status count."""
        from gpubench.commands.show import print_run
        from gpubench.store import open_store
        from gpubench.textout import terminal_streams

        with open_store(self._location, readonly=True) as opened, terminal_streams():
            print_run(opened, self.id)

    def report(self, path: str | os.PathLike[str] | None = None) -> Report:
        """Write the run's HTML report (default ``reports/run-<id>.html``) and return it; a notebook shows it
        inline. See :func:`gpubench.report.inline.report`."""
        from gpubench.report.inline import report

        return report(self.id, path, store=self._location)

    def _repr_html_(self) -> str:
        from gpubench.report.html import esc
        from gpubench.report.summary import run_summary_html
        from gpubench.store import open_store

        with open_store(self._location, readonly=True) as opened:
            body = run_summary_html(opened, self.id)
        return (body + f'<p style="color:#5f6b73;font-size:90%">store {esc(self.store)} · <code>.report()</code>: the '
                "HTML report with its charts · <code>.to_pandas()</code>: the rows as a DataFrame</p>")

    def __repr__(self) -> str:
        return f"<gpubench.Run {self.id}: suite {self.suite!r}, {self.status}>"


def _names(option: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    """An option's names: one string (which may be comma-separated, as on the command line) or several."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        raise UsageError(f"{option}: a name or a list of names, got {value!r}") from None
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{option}: a name or a list of names, got {item!r}")
    if not items:
        raise UsageError(f"{option}: an empty list (name one, or leave {option} out for all)")
    return tuple(items)


def _number(option: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{option} must be a number of seconds, got {value!r}")
    return float(value)


def _command(suite: str, options: dict[str, Any]) -> str:
    """The call as recorded with the run, as ``gpubench run`` records its command line."""
    given = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return f"gpubench.run({suite!r}" + (f", {given}" if given else "") + ")"


def run(suite: str | os.PathLike[str], *, backends: str | Iterable[str] | None = None,
        devices: str | Iterable[str] | None = None, dtypes: str | Iterable[str] | None = None, quick: bool = False,
        time_limit: str | float | None = None, timeout: float | None = None, budget: float | None = None,
        target: float | None = None, label: str = "", wait_idle: float = 0.0,
        ref_cache: str | os.PathLike[str] | None = None, store: str | os.PathLike[str] | None = None,
        progress: bool = True) -> Run:
    """Run a suite as ``gpubench run --suite SUITE`` does, and return the run.

    ``suite``: a built-in suite's name (``tour``, ``lecture``, ``matmul``, ...) or the path of a suite file.
    ``backends``, ``devices``, ``dtypes``: only these (a name, comma-separated names, or a list: ``"numpy,torch"``,
    ``["cpu"]``, ``"cuda:1"``); default all. ``quick``: the suites' small sizes and a short budget per case.
    ``time_limit``: finish within it (``"8m"``, ``"1h30m"``, seconds; ``"none"`` lifts a suite's own), the most
    telling cases first. ``timeout``: seconds per case (default 600; ``math.inf``: none). ``budget``: sampling
    seconds per case; ``target``: the median's wanted 95 % interval, a fraction (0.01 is ±1 %). ``label``: shown in
    reports. ``wait_idle``: before each case, wait up to this many seconds for other processes to leave the cores.
    ``ref_cache``: where float64 references are kept (``"off"``: nowhere). ``store``: the results store (default
    ``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``; ``postgresql://…`` for a team's).
    ``progress``: show a progress bar (tqdm's notebook widget in Jupyter with ``gpubench[notebook]``).

    Each case runs in a worker process of its backend and is stored as it finishes. Raises
    :class:`~gpubench.errors.UsageError` for bad input (nothing written), and
    :class:`~gpubench.errors.RunFailed` when the run stops on an error of its own (it is stored ``failed``). On
    Ctrl-C the finished cases are kept and the returned run is ``interrupted``.
    """
    from gpubench.runsuite import RunRequest, execute
    from gpubench.textout import terminal_streams

    if not isinstance(suite, (str, os.PathLike)):
        raise UsageError(f"suite: a built-in suite's name or a suite file's path, got {suite!r}")
    if not isinstance(quick, bool):
        raise UsageError(f"quick must be True or False, got {quick!r}")
    if not isinstance(progress, bool):
        raise UsageError(f"progress must be True or False, got {progress!r}")
    if not isinstance(label, str):
        raise UsageError(f"label must be a string, got {label!r}")
    if ref_cache is not None and not isinstance(ref_cache, (str, os.PathLike)):
        raise UsageError(f"ref_cache: a directory or 'off', got {ref_cache!r}")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (str, int, float))):
        raise UsageError(f"time_limit must be a duration such as 90s, 8m or 1h30m (or none), got {time_limit!r}")
    location = _store_location(store)
    name = os.fspath(suite)
    options = {"backends": backends, "devices": devices, "dtypes": dtypes, "quick": quick, "time_limit": time_limit,
               "timeout": timeout, "budget": budget, "target": target, "label": label, "wait_idle": wait_idle,
               "ref_cache": ref_cache, "store": store}
    given = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()
             if v is not None and v is not False and v != "" and not (k == "wait_idle" and v == 0)}
    request = RunRequest(
        suite=name, backends=_names("backends", backends), devices=_names("devices", devices),
        dtypes=_names("dtypes", dtypes), quick=quick, timeout=_number("timeout", timeout), time_limit=time_limit,
        budget=_number("budget", budget), target=_number("target", target), label=label,
        wait_idle=_number("wait_idle", wait_idle) or 0.0,
        ref_cache=os.fspath(ref_cache) if ref_cache is not None else None, store=location,
        command=_command(name, given))
    with terminal_streams():
        outcome = execute(request, summary=False, progress=progress)
    if outcome.run_id is None:  # interrupted before the run was created: nothing to return
        raise KeyboardInterrupt
    return Run(outcome.run_id, store=location)
