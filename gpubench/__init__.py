"""gpubench: honest GPU-vs-CPU benchmarks for deep-learning workloads.

The package stays light to import: ``gpubench.load`` imports pandas and the store only when called.
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


def load(store: str | os.PathLike[str] | None = None, run: Any = "all") -> pandas.DataFrame:
    """Stored results as a pandas DataFrame: one row per case, metrics flattened, parameters as columns.

    ``store``: the results store (default ``$GPUBENCH_STORE`` or ``results/gpubench.sqlite``);
    ``run``: ``"all"``, ``"latest"``, ``"latest~N"``, a run id, or a list of them. Needs pandas
    (``pip install 'gpubench[pandas]'``). See :mod:`gpubench.frame` for the columns.
    """
    from gpubench.frame import load as _load

    return _load(store, run)
