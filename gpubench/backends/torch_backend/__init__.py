"""PyTorch on the CPU (oneDNN/MKL) and on CUDA GPUs (cuBLAS, cuDNN), timed with CUDA events on GPUs.

Every case runs inside :meth:`TorchBackend.case_scope`: the case's GPU is the current CUDA device
for its whole life (build, check, timing), its events are recorded on that GPU's current stream,
and the process-global precision switches a case may set (TF32 for cuBLAS and cuDNN, the float32
matmul precision, cuDNN's autotuner) are restored when it ends, so they never leak into the next
case of a worker or a pytest session.
"""

from __future__ import annotations

import contextlib

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import require

TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")
#: Process-global switches under ``torch.backends`` a case may change, restored after each case.
#: Legacy booleans first, the newer ``fp32_precision`` strings last: setting the one API moves the
#: other, and restoring in this order gives back exactly the saved state of both.
PRECISION_SWITCHES = ("cuda.matmul.allow_tf32", "cudnn.allow_tf32", "cudnn.benchmark", "cudnn.deterministic")
PRECISION_STRINGS = ("fp32_precision", "cuda.matmul.fp32_precision", "cudnn.fp32_precision",
                     "cudnn.conv.fp32_precision", "cudnn.rnn.fp32_precision", "mkldnn.fp32_precision",
                     "mkldnn.matmul.fp32_precision", "mkldnn.conv.fp32_precision", "mkldnn.rnn.fp32_precision")


def _get_path(root, path: str):
    for part in path.split("."):
        root = getattr(root, part)
    return root


def _has_path(root, path: str) -> bool:
    try:
        _get_path(root, path)
    except AttributeError:
        return False
    return True


def _set_path(root, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        root = getattr(root, part)
    setattr(root, last, value)


class StreamEvent:
    """A timing CUDA event recorded on the current stream of one GPU, whatever device is current.

    ``torch.cuda.Event.record()`` without a stream records on the *current device's* stream; a case
    on ``cuda:1`` must time ``cuda:1``'s stream, where its kernels run.
    """

    def __init__(self, torch, index: int):
        self.torch, self.index = torch, index
        self.event = torch.cuda.Event(enable_timing=True)

    def record(self) -> None:
        self.event.record(self.torch.cuda.current_stream(self.index))

    def synchronize(self) -> None:
        self.event.synchronize()

    @staticmethod
    def elapsed_ms(start: StreamEvent, end: StreamEvent) -> float:
        """Milliseconds between two recorded events."""
        return start.event.elapsed_time(end.event)


class TorchBackend(Backend):
    """PyTorch tensors on ``cpu`` or ``cuda:N``."""

    name = "torch"
    device_kinds = ("cpu", "cuda")
    extra = "torch"
    ops_package = "gpubench.backends.torch_backend"
    description = "PyTorch (CPU and CUDA)"

    def load(self):
        self.torch = require("torch", "torch", self.extra)

    def devices(self):
        from gpubench.envinfo import cpu_model

        torch = self.torch
        out = [DeviceInfo("cpu", cpu_model(), "cpu", dtypes=TORCH_DTYPES,
                          details={"threads": torch.get_num_threads()})]
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                out.append(DeviceInfo(f"cuda:{i}", p.name, "cuda", memory_bytes=p.total_memory,
                                      dtypes=TORCH_DTYPES,
                                      details={"capability": f"{p.major}.{p.minor}",
                                               "sm_count": p.multi_processor_count}))
        return out

    @staticmethod
    def index(device: DeviceInfo) -> int:
        """CUDA ordinal of a ``cuda:N`` device."""
        return int(device.id.split(":")[1]) if ":" in device.id else 0

    @contextlib.contextmanager
    def case_scope(self, spec, device):
        """Make the case's GPU current and restore the precision switches and the current device after it."""
        torch = self.torch
        backends = torch.backends
        saved = {path: _get_path(backends, path) for path in PRECISION_SWITCHES + PRECISION_STRINGS
                 if _has_path(backends, path)}
        matmul_precision = torch.get_float32_matmul_precision()
        try:
            with torch.cuda.device(self.index(device)) if device.kind == "cuda" else contextlib.nullcontext():
                yield
        finally:
            for path in PRECISION_SWITCHES:
                if path in saved:
                    _set_path(backends, path, saved[path])
            torch.set_float32_matmul_precision(matmul_precision)
            for path in PRECISION_STRINGS:
                if path in saved:
                    _set_path(backends, path, saved[path])

    def torch_dtype(self, dtype: str):
        """The torch dtype for a gpubench dtype name."""
        return getattr(self.torch, dtype)

    def upload(self, array, device, dtype=None):
        """Copy a host array onto ``device`` as ``dtype`` (exact: host values are representable)."""
        # A copy, never a view: ops update tensors in place, and the host inputs must stay pristine.
        t = self.torch.from_numpy(array).to(device.id, copy=True)
        if dtype is not None:
            t = t.to(self.torch_dtype(dtype))
        return t.contiguous()

    def download(self, tensor):
        """Synchronize and return a NumPy copy (float64 for bfloat16, which NumPy lacks)."""
        t = tensor.detach()
        if t.dtype == self.torch.bfloat16:
            t = t.to(self.torch.float64)
        return t.cpu().numpy().copy()

    def host_input(self, handle, array, device):
        """A CPU tensor (pageable) holding ``array`` in the device tensor's dtype, converted once."""
        torch = self.torch
        return torch.from_numpy(array.copy()).to(handle.dtype).contiguous()

    def host_output(self, handle, device):
        """A CPU tensor (pageable) of the device tensor's shape, strides and dtype."""
        return self.torch.empty_like(handle, device="cpu")

    def host_array(self, host):
        """The host tensor as NumPy (bfloat16 widened to float64, after the timing)."""
        return self.download(host)

    def copy_in(self, handle, host, device):
        """Copy a host tensor of the same dtype into an existing device tensor (a plain copy)."""
        handle.copy_(host)

    def copy_out(self, handle, host, device):
        """Copy a device tensor into a host tensor of the same dtype; blocks until the data is in host memory."""
        host.copy_(handle.detach())

    def synchronize(self, device):
        """Wait for the device's queued work (CUDA only)."""
        if device.kind == "cuda":
            self.torch.cuda.synchronize(device.id)

    def timer(self, device):
        """CUDA events on a GPU; a host clock on the CPU."""
        from gpubench.harness import DeviceEventTimer, HostTimer

        if device.kind == "cuda":
            torch, index = self.torch, self.index(device)
            return DeviceEventTimer("cuda_event", lambda: StreamEvent(torch, index), StreamEvent.elapsed_ms)
        return HostTimer()

    def last_level_cache(self, device):
        """A GPU's L2 as torch reports it (``L2_cache_size``); the host's for the CPU."""
        if device.kind != "cuda":
            return super().last_level_cache(device)
        size = int(getattr(self.torch.cuda.get_device_properties(device.id), "L2_cache_size", 0) or 0)
        return (size, "torch L2_cache_size") if size > 0 else None

    def cache_flusher(self, device):
        """On a GPU, ``zero_()`` of a device buffer twice the L2, on the device's current stream (as nvbench's
        ``cudaMemsetAsync``); on the CPU, the host flusher."""
        if device.kind != "cuda":
            return super().cache_flusher(device)
        from gpubench.cacheflush import flush_bytes
        from gpubench.ops import CacheFlusher

        cache = self.last_level_cache(device)
        if cache is None:
            return None
        torch = self.torch
        nbytes = flush_bytes(cache[0])
        with torch.cuda.device(device.id):
            buffer = torch.empty(nbytes, dtype=torch.uint8, device=device.id)

        def flush():
            buffer.zero_()

        return CacheFlusher(flush, nbytes, cache[0], cache[1])

    def device_identity(self, device):
        """A GPU's UUID (NVML finds the device by it)."""
        if device.kind != "cuda":
            return {}
        uuid = getattr(self.torch.cuda.get_device_properties(device.id), "uuid", None)
        return {"uuid": str(uuid)} if uuid else {}

    def environment(self):
        torch = self.torch
        env = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "mkldnn": bool(torch.backends.mkldnn.is_available())}
        if torch.cuda.is_available():
            env.update({
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            })
        return env


#: Calls made on a side stream before capture, as torch's CUDA-graph docs require (lazy
#: initialization, cuBLAS workspaces and cuDNN autotuning must happen outside the capture).
GRAPH_WARMUP_CALLS = 3


def capture_graph(torch, index: int, fn):
    """Capture one call of ``fn`` on GPU ``index`` into a ``torch.cuda.CUDAGraph``; return the graph.

    Follows torch's documented recipe: warm up on a side stream that waits for the current one,
    make the current stream wait for it, then capture on that same side stream (passed to
    ``torch.cuda.graph`` explicitly, so the capture happens on ``index`` and reuses the warm-up's
    cuBLAS workspace). ``graph.replay()`` then launches the whole captured work on the current
    stream with one ``cudaGraphLaunch``. ``fn`` must only touch tensors allocated before (its
    inputs and outputs are the graph's static buffers).
    """
    cuda = torch.cuda
    side = cuda.Stream(device=index)
    side.wait_stream(cuda.current_stream(index))
    with cuda.stream(side):
        for _ in range(GRAPH_WARMUP_CALLS):
            fn()
    cuda.current_stream(index).wait_stream(side)
    graph = cuda.CUDAGraph()
    with cuda.graph(graph, stream=side):
        fn()
    cuda.synchronize(index)
    return graph
