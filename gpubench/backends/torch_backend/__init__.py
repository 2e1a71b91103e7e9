"""PyTorch on the CPU (oneDNN/MKL) and on CUDA GPUs (cuBLAS, cuDNN), timed with CUDA events on GPUs."""

from __future__ import annotations

from gpubench.backends.base import Backend, DeviceInfo
from gpubench.errors import require

TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")


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

    def copy_in(self, handle, array, device):
        """Copy a host array into an existing tensor (pageable host memory; dtype converted)."""
        handle.copy_(self.torch.from_numpy(array))

    def copy_out(self, handle, array, device):
        """Copy a tensor into an existing host array; blocks until the data is in host memory."""
        self.torch.from_numpy(array).copy_(handle.detach())

    def synchronize(self, device):
        """Wait for the device's queued work (CUDA only)."""
        if device.kind == "cuda":
            self.torch.cuda.synchronize(device.id)

    def timer(self, device):
        """CUDA events on a GPU; a host clock on the CPU."""
        from gpubench.harness import DeviceEventTimer, HostTimer

        if device.kind == "cuda":
            cuda = self.torch.cuda
            return DeviceEventTimer("cuda_event", lambda: cuda.Event(enable_timing=True),
                                    lambda start, end: start.elapsed_time(end))
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
