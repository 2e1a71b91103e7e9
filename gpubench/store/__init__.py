"""The results store: one interface, a SQLite file by default, a PostgreSQL database for a team.

Open a store with :func:`open_store` (a path or ``sqlite:///PATH``, or ``postgresql://…``); every
kind is a :class:`ResultStore` (:mod:`gpubench.store.base`). The kinds live in their own modules
(:mod:`gpubench.store.sqlite`, :mod:`gpubench.store.postgres`), found by the location's URL scheme
(:mod:`gpubench.store.kinds`); :mod:`gpubench.store.copy` copies runs from one store to another.
Importing this package loads no database driver.
"""

from __future__ import annotations

from gpubench.store.base import (
    ABANDONED,
    CALIBRATE_SUITE,
    CEILING_KINDS,
    CEILING_QUALITIES,
    D2H_BW,
    H2D_BW,
    MEM_BW,
    PEAK_FLOPS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    DuplicateRun,
    ResultStore,
    RunInfo,
    now_iso,
    open_store,
    provisional,
)
from gpubench.store.kinds import DEFAULT_STORE, STORE_KINDS, default_location, redact

__all__ = [
    "ABANDONED", "CALIBRATE_SUITE", "CEILING_KINDS", "CEILING_QUALITIES", "D2H_BW", "DEFAULT_STORE", "H2D_BW",
    "MEM_BW", "PEAK_FLOPS", "RUN_STATUSES", "SCHEMA_VERSION", "STORE_KINDS", "DuplicateRun", "ResultStore",
    "RunInfo", "default_location", "now_iso", "open_store", "provisional", "redact",
]
