"""Read one small text file of sysfs or procfs (a counter, a name, a frequency), stripped."""

from __future__ import annotations

from pathlib import Path


def read_text(path: Path) -> str:
    """The file's text without surrounding whitespace (raises OSError as the read does)."""
    return path.read_text(encoding="utf-8", errors="replace").strip()
