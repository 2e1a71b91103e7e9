"""A Python that has every package of this environment except gpubench itself, as on a machine where gpubench
could not be installed (no setuptools, a read-only site-packages): the checkout runs from ``PYTHONPATH``.

Built without touching the environment: a fresh copy of the checkout's tracked parts (no build leftovers such as
``gpubench.egg-info``), a folder of links to every entry of this interpreter's site-packages but gpubench's own
(its ``.dist-info`` and its editable-install hooks), and a wrapper that starts this interpreter with ``-S`` (no
``site``: no ``.pth`` file runs, so no editable finder) with both on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _own(name: str) -> bool:
    low = name.lower()
    return low.startswith("gpubench-") or "__editable__" in low and "gpubench" in low or low == "gpubench"


def copy_checkout(dest: Path) -> Path:
    """The files git tracks (and untracked ones it does not ignore) copied to ``dest``: a checkout as it travels."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def uninstalled_python(root: Path) -> tuple[Path, dict[str, str], Path]:
    """``(wrapper, env, checkout)``: run ``wrapper -m gpubench ...`` with ``env`` (in ``checkout``) to use gpubench
    from a copy of this checkout only."""
    checkout = copy_checkout(root / "checkout")
    farm = root / "site"
    farm.mkdir(parents=True)
    dirs = [Path(p) for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    for d in dirs:
        for entry in d.iterdir():
            target = farm / entry.name
            if _own(entry.name) or entry.suffix == ".pth" or target.exists():
                continue
            target.symlink_to(entry)
    wrapper = root / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(checkout), str(farm)])
    env.pop("GPUBENCH_STORE", None)
    return wrapper, env, checkout
