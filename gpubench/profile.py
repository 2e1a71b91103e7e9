"""Run profiles: which sizes a suite runs at and how long each case is measured, decided in one place.

Like asv's benchmark attributes resolved once per run, a :class:`RunProfile` bundles the two
choices every entry point used to make on its own: the suite's sizes (``quick`` tables or the
full ones) and the harness settings. ``gpubench run``, ``gpubench calibrate``, the pytest plugin
(``--gpubench-quick``) and the benchmark suite (``--gpubench-full``) all call :func:`resolve_profile`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings


@dataclass(frozen=True)
class RunProfile:
    """What a run measures (``quick_sizes``: the suites' ``quick`` tables) and how (``settings``)."""

    name: str
    quick_sizes: bool
    settings: HarnessSettings


#: Built-in profiles. ``default`` follows docs/measurement.md §2; ``quick`` shows a suite's shape in seconds;
#: ``calibrate`` spends longer per case, since a ceiling is a number other results are held against.
PROFILES = {
    "default": RunProfile("default", False, HarnessSettings()),
    "quick": RunProfile("quick", True, HarnessSettings(warmup_s=0.02, min_sample_s=0.005, min_samples=5,
                                                        max_samples=50, target_rel_ci=0.05, budget_s=0.25)),
    "calibrate": RunProfile("calibrate", False, HarnessSettings(budget_s=3.0, target_rel_ci=0.02)),
}

#: The ``--quick`` harness settings (kept for callers that need only the settings).
QUICK = PROFILES["quick"].settings


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"--{name} must be a positive finite number of seconds, got {value:g}")
    return float(value)


def resolve_profile(quick: bool = False, *, base: str | None = None, budget: float | None = None,
                    target: float | None = None) -> RunProfile:
    """The profile of a run: ``base`` (or ``quick``/``default``) with command-line overrides applied.

    ``budget`` is the sampling time per case in seconds (positive, finite); ``target`` the wanted
    relative half-width of the median's 95 % interval, a fraction strictly between 0 and 1
    (``0.01`` is ±1 %; ``5`` would be ±500 % and is refused, not silently accepted).
    """
    name = base or ("quick" if quick else "default")
    if name not in PROFILES:
        raise UsageError(f"unknown run profile {name!r} (known: {', '.join(PROFILES)})")
    profile = PROFILES[name]
    if quick and not profile.quick_sizes:
        profile = dataclasses.replace(profile, name=f"{name}+quick", quick_sizes=True, settings=QUICK)
    settings = profile.settings
    if budget is not None:
        settings = dataclasses.replace(settings, budget_s=_positive("budget", budget))
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
            raise UsageError(f"--target must be a fraction between 0 and 1 (0.01 means ±1 %), got {target:g}")
        settings = dataclasses.replace(settings, target_rel_ci=float(target))
    if settings is not profile.settings:
        profile = dataclasses.replace(profile, settings=settings)
    return profile
