"""gpubench: honest GPU-vs-CPU benchmarks for deep-learning workloads.

From Python (a notebook, a script; see :mod:`gpubench.api`):

* :func:`run` runs a suite as ``gpubench run`` does and returns a :class:`Run` (``.to_pandas()``, ``.show()``,
  ``.report()``; shown in Jupyter as its headlines and results table);
* ``report(runs, path)`` writes the HTML report and returns it, shown inline in a notebook
  (:func:`gpubench.report.inline.report`);
* ``compare(base, new)`` compares two runs as ``gpubench compare`` does (:func:`gpubench.compare.compare`);
* :func:`load` reads stored results as a pandas DataFrame.

The package stays light to import: each of these imports the store, pandas or a framework only when called.
(``gpubench.report`` and ``gpubench.compare`` are the package and the module of those names; calling them calls
the functions above.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import os

    import pandas

__version__ = "0.1.0"

# From a checkout that is not installed (PYTHONPATH=.), gpubench.suites and gpubench.kernels are its
# top-level folders, as the wheel maps them (gpubench.sourcetree; nothing changes for an install).
from gpubench.sourcetree import install_resource_finder as _install_resource_finder  # noqa: E402

_install_resource_finder()

from gpubench.api import Run, run  # noqa: E402 - light: it imports what it needs when called

__all__ = ["Run", "__version__", "compare", "load", "report", "run"]


def load(store: str | os.PathLike[str] | None = None, run: Any = "all") -> pandas.DataFrame:
    """Stored results as a pandas DataFrame: one row per case, metrics flattened, parameters as columns.

    ``store``: the results store (default ``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``);
    ``run``: ``"all"``, ``"latest"``, ``"latest~N"``, a run id, or a list of them. Needs pandas
    (``pip install 'gpubench[pandas]'``). See :mod:`gpubench.frame` for the columns.
    """
    from gpubench.frame import load as _load

    return _load(store, run)


def __getattr__(name: str) -> Any:
    # gpubench.report and gpubench.compare: the package and the module, imported on first use (both callable).
    if name in ("report", "compare"):
        import importlib

        return importlib.import_module(f"gpubench.{name}")
    raise AttributeError(f"module 'gpubench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"report", "compare"})
