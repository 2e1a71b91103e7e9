"""Fake matmul: correct, wrong, raising, crashing or hanging, by variant.

The ``spawn`` variants start helper processes when the op is built, as some libraries do (a
compile server, a data loader): one child in a session of its own and one daemon (double fork,
re-parented away from the worker); each writes its pid to ``$GPUBENCH_FAKE_SPAWN_DIR``.
``spawn`` then computes correctly, ``spawn_hang`` hangs, ``spawn_crash`` kills its own worker.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from gpubench.backends.base import BoundOp

VARIANTS = ("good", "wrong", "raise", "crash", "hang", "exit", "spawn", "spawn_hang", "spawn_crash")
# A test may choose the default (first) variant through the worker's environment.
if os.environ.get("GPUBENCH_FAKE_DEFAULT_VARIANT") in VARIANTS:
    VARIANTS = (os.environ["GPUBENCH_FAKE_DEFAULT_VARIANT"],
                *(v for v in VARIANTS if v != os.environ["GPUBENCH_FAKE_DEFAULT_VARIANT"]))


#: A helper that writes its pid and sleeps; with "daemon", it first forks and leaves its parent (a double fork).
HELPER = """
import os, sys, time
if sys.argv[2] == "daemon" and os.fork():
    os._exit(0)
path = os.path.join(sys.argv[1], f"{sys.argv[2]}-{os.getpid()}")
with open(path + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(path + ".tmp", path)
time.sleep(600)
"""


def spawn_helpers():
    """Start a session leader and a daemon, and wait until both have written their pids."""
    where = os.environ["GPUBENCH_FAKE_SPAWN_DIR"]
    before = set(os.listdir(where))
    for kind in ("session", "daemon"):
        subprocess.Popen([sys.executable, "-c", HELPER, where, kind], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(os.listdir(where)) - before) < 2:
        time.sleep(0.01)


def build(backend, spec, params, inputs, device):
    a, b = inputs["a"], inputs["b"]
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    v = spec.variant
    if v.startswith("spawn"):
        spawn_helpers()

    def call():
        if v == "raise":
            raise RuntimeError("fake kernel launch failed")
        if v in ("crash", "spawn_crash"):
            os.kill(os.getpid(), signal.SIGSEGV)
        if v in ("hang", "spawn_hang"):
            time.sleep(3600)
        if v == "exit":
            os._exit(3)
        np.matmul(a, b, out=c)
        if v == "wrong":
            c[0, 0] += 1000.0

    return BoundOp(call=call, result=lambda: c.copy())


def unsupported(backend, spec, params, device):
    """m = 99 is a size the fake device cannot run (a skip found before anything is drawn)."""
    return "fake: m = 99 is a size this device cannot run" if params["m"] == 99 else None
