"""``include_transfer``: time a compute op end to end, from host memory back to host memory.

A GPU speedup measured on data already resident on the device is what a kernel is worth; what
a user gets when the data starts and ends in host memory also pays the copies. With
``include_transfer = true`` every timed call

1. copies each input named in ``BoundOp.device_inputs`` from ordinary (pageable) host memory
   into the device array the op reads (:meth:`Backend.copy_in`),
2. runs the op, and
3. copies ``BoundOp.device_output`` back into a preallocated host buffer
   (:meth:`Backend.copy_out`, which returns only when the data is in host memory),

timed with a synchronized host clock. The op therefore computes on the data just copied, and
the checked output is the one that came back to the host.

Only the copies are timed, never a dtype conversion: the host inputs are converted to the device
arrays' dtypes once, before timing (:meth:`Backend.host_input`), the output lands in a host buffer
of the device's dtype (:meth:`Backend.host_output`) and is widened for the check only afterwards
(:meth:`Backend.host_array`). A float16 or bfloat16 case therefore moves 2 bytes per element each
way, as an application keeping its data in that dtype would.

On a device of kind ``cpu`` (NumPy, PyTorch or TensorFlow on the CPU) the host memory *is* the
device memory: there is nothing to copy, and the case runs exactly as without the flag (noted
in the record's metrics). That keeps the CPU baseline of an end-to-end comparison honest and
gives every ``include_transfer`` case a baseline to be compared with. An OpenCL CPU device
(PoCL) has buffers of its own, so its copies are real and included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpubench.errors import Unavailable
from gpubench.harness import HostTimer
from gpubench.ops import BoundOp, DeviceInfo
from gpubench.records import CaseSpec

HOST_NOTE = "no copies: the device computes in host memory"


def end_to_end(backend: Any, spec: CaseSpec, op: BoundOp, inputs: dict[str, np.ndarray],
               device: DeviceInfo, has_copies: bool = True) -> BoundOp:
    """Wrap ``op`` so each call includes the host→device input copies and the device→host output copy.

    ``backend`` is the :class:`~gpubench.backends.base.Backend` that built ``op``; ``has_copies`` says
    whether it has its own ``copy_in``/``copy_out`` (the base class's copy NumPy arrays only).
    """
    if device.kind == "cpu":
        op.metrics["include_transfer"] = HOST_NOTE
        return op
    if not op.device_inputs or op.device_output is None:
        raise Unavailable(f"{backend.name}: {spec.workload} does not declare its device buffers, "
                          "so include_transfer cannot run")
    out_handle = op.device_output
    current_output = out_handle if callable(out_handle) else (lambda: out_handle)
    if current_output() is None:  # an op whose output is made by its first call: make it now, outside the timing
        op.call()
        backend.synchronize(device)
    if not has_copies and not all(
            isinstance(h, np.ndarray) for h in (*op.device_inputs.values(), current_output())):
        raise Unavailable(f"{backend.name}: no copy_in/copy_out for its device arrays, "
                          "so include_transfer cannot run")
    # Host-side sources in the device dtype, converted once, outside the timing; private copies,
    # since the op may update its inputs in place (saxpy) and the host side never is.
    hosts = {name: backend.host_input(h, inputs[name], device) for name, h in op.device_inputs.items()}
    # A host buffer of the output's shape and device dtype, allocated once, outside the timing.
    host_out = backend.host_output(current_output(), device)
    pairs: list[tuple[Any, Any]] = [(h, hosts[name]) for name, h in op.device_inputs.items()]
    copy_in, copy_out, inner = backend.copy_in, backend.copy_out, op.call

    def call() -> None:
        for handle, host in pairs:
            copy_in(handle, host, device)
        inner()
        copy_out(current_output(), host_out, device)

    moved = sum(backend.nbytes(h) for h in hosts.values())
    out_bytes = backend.nbytes(current_output())  # the host buffer has its dtype and shape
    metrics = dict(op.metrics)
    metrics["include_transfer"] = (f"each call copies {', '.join(hosts)} host→device "
                                   f"({moved} bytes, pageable) and the output device→host ({out_bytes} bytes); "
                                   "dtype conversions outside the timing")
    return BoundOp(call=call, result=lambda: backend.host_array(host_out),
                   timer=HostTimer(lambda: backend.synchronize(device)), close=op.close,
                   sources=dict(op.sources), metrics=metrics,
                   device_inputs=op.device_inputs, device_output=op.device_output)
