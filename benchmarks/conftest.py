"""pytest-benchmark suite of gpubench cases: every built-in suite, over every backend and device.

Small sizes and gpubench's ``--quick`` harness profile by default, so the CPU cases run in a few
minutes; ``--gpubench-full`` (or ``GPUBENCH_BENCH_FULL=1``) switches to the suites' full sizes and
the default harness settings (warm-up 0.1 s, 2 s budget per case).
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("gpubench").addoption(
        "--gpubench-full", action="store_true",
        help="benchmarks/: the suites' full sizes and default harness settings (also GPUBENCH_BENCH_FULL=1)")


def full_sizes(config: pytest.Config) -> bool:
    """Whether this session benchmarks the suites' full sizes."""
    return bool(config.getoption("gpubench_full")) or os.environ.get("GPUBENCH_BENCH_FULL", "") not in ("", "0")


@pytest.fixture(scope="session")
def gpubench_settings(pytestconfig: pytest.Config):
    """Harness settings: quick unless full sizes were asked for (``--gpubench-quick`` forces quick)."""
    return bench_profile(pytestconfig).settings


def bench_profile(config: pytest.Config):
    """The run profile of this benchmark session: sizes and harness settings, resolved once."""
    from gpubench.profile import resolve_profile

    return resolve_profile(quick=bool(config.getoption("gpubench_quick")) or not full_sizes(config))
