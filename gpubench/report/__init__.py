"""The HTML report (``gpubench report``): :mod:`gpubench.report.build` renders it from stored runs.

The package can be called: ``gpubench.report(runs=None, path=None, store=None)`` writes a report and returns it
as a :class:`gpubench.report.inline.Report`, which a notebook shows inline (see
:func:`gpubench.report.inline.report`). (``gpubench.report`` is this package, so that ``gpubench.report.build``
and the rest stay where they are; calling it calls that function.)
"""

from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    """This package's type: a module that can be called (as :func:`gpubench.report.inline.report`)."""

    def __call__(self, runs=None, path=None, *, store=None):
        """Write the HTML report of ``runs`` (default: the latest run) and return it; see
        :func:`gpubench.report.inline.report`."""
        from gpubench.report.inline import report

        return report(runs, path, store=store)


sys.modules[__name__].__class__ = _CallablePackage
