"""Fake matmul: correct, wrong, raising, crashing or hanging, by variant."""

import os
import signal
import time

import numpy as np

from gpubench.backends.base import BoundOp

VARIANTS = ("good", "wrong", "raise", "crash", "hang", "exit")
# A test may choose the default (first) variant through the worker's environment.
if os.environ.get("GPUBENCH_FAKE_DEFAULT_VARIANT") in VARIANTS:
    VARIANTS = (os.environ["GPUBENCH_FAKE_DEFAULT_VARIANT"],
                *(v for v in VARIANTS if v != os.environ["GPUBENCH_FAKE_DEFAULT_VARIANT"]))


def build(backend, spec, params, inputs, device):
    a, b = inputs["a"], inputs["b"]
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    v = spec.variant

    def call():
        if v == "raise":
            raise RuntimeError("fake kernel launch failed")
        if v == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if v == "hang":
            time.sleep(3600)
        if v == "exit":
            os._exit(3)
        np.matmul(a, b, out=c)
        if v == "wrong":
            c[0, 0] += 1000.0

    return BoundOp(call=call, result=lambda: c.copy())
