"""Model inference on ONNX Runtime: the exported model in an ``InferenceSession`` with every graph optimization.

The session is made once per case (graph optimizations run then, outside any timing), on the
CPU execution provider or on the CUDA execution provider of the case's GPU. The CPU provider
runs with ONNX Runtime's default threading (one intra-op thread per physical core).

* CPU: each call is ``session.run`` on the host batch; the output is a new host array.
* CUDA: the batch is copied to the GPU once and bound as an ``OrtValue`` there, and the output is
  bound on the GPU too (``IOBinding``), so a call is the model alone, as for the other GPU
  backends, with no host↔device copy; each call ends with ``synchronize_outputs()``, so it returns
  when the answer is ready.
"""

from __future__ import annotations

import contextlib

import numpy as np

from gpubench.backends.base import BoundOp
from gpubench.backends.onnxruntime_backend import CPU_PROVIDER, CUDA_PROVIDER
from gpubench.backends.onnxruntime_backend.export import exported
from gpubench.errors import Unavailable
from gpubench.workloads.inference import case_weights

GRAPH_OPTIMIZATION = "ORT_ENABLE_ALL"


def session(ort, path, device, index: int):
    """An ``InferenceSession`` of the ONNX file on the device's execution provider, all graph optimizations on."""
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION)
    options.log_severity_level = 3  # errors only: its warnings (unused initializers...) are not the run's
    if device.kind == "cuda":
        providers = [(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]
    else:
        providers = [CPU_PROVIDER]
    sess = ort.InferenceSession(str(path), options, providers=providers)
    if device.kind == "cuda" and sess.get_providers()[0] != CUDA_PROVIDER:
        raise Unavailable(f"onnxruntime: the CUDA execution provider did not load (the session runs on "
                          f"{', '.join(sess.get_providers())}): its CUDA and cuDNN libraries are missing or do "
                          "not match this onnxruntime-gpu")
    return sess


def build(backend, spec, params, inputs, device):
    """Export (or find) the model's ONNX file, open a session on the case's device and bind one ``run``."""
    ort = backend.ort
    model, seed = params["model"], params["seed"]
    weights = case_weights(inputs)
    path, info = exported(model, seed, spec.dtype, weights)
    index = backend.index(device)
    try:
        sess = session(ort, path, device, index)
    except Unavailable:
        raise
    except Exception:
        if not info.get("cached"):
            raise
        with contextlib.suppress(OSError):  # a damaged cached file: make it again, once
            path.unlink()
        path, info = exported(model, seed, spec.dtype, weights)
        sess = session(ort, path, device, index)
    in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    x = np.ascontiguousarray(inputs["x"] if inputs["x"].dtype.kind == "i" else inputs["x"].astype(spec.dtype))
    metrics = {"onnx_exporter": info.get("exporter", "unknown"), "onnx_opset": info.get("opset"),
               "onnx_file": path.name, "execution_provider": sess.get_providers()[0],
               "graph_optimization": GRAPH_OPTIMIZATION,
               "peak_memory_note": "not available: ONNX Runtime exposes no allocator statistics"}
    if info.get("exporter_failures"):
        metrics["onnx_exporter_failures"] = info["exporter_failures"]
    holder: list = [None]
    if device.kind == "cuda":
        binding = sess.io_binding()
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", index)
        binding.bind_ortvalue_input(in_name, x_dev)
        binding.bind_output(out_name, "cuda", index)

        def call():
            sess.run_with_iobinding(binding)
            binding.synchronize_outputs()  # the answer is on the GPU when the call returns

        def result() -> np.ndarray:
            return np.array(binding.get_outputs()[0].numpy(), dtype=np.float64 if spec.dtype == "float16" else None)
    else:
        feed = {in_name: x}
        names = [out_name]

        def call():
            holder[0] = sess.run(names, feed)[0]

        def result() -> np.ndarray:
            return np.array(holder[0])

    def close() -> None:
        holder[0] = None

    return BoundOp(call=call, result=result, timer=backend.timer(device), close=close, metrics=metrics,
                   sources={f"onnx:{model}": f"{info.get('exporter', 'unknown')} opset {info.get('opset')}"})
