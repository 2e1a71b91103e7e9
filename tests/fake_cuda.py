"""Recorded fakes of the CUDA parts of CuPy and PyTorch, for testing GPU code paths on a CPU machine.

:class:`FakeCupy` is a NumPy-backed stand-in for the ``cupy`` module as gpubench's CuPy adapter
uses it, with the CUDA semantics the adapter must respect:

* a current device per thread (``Device(i)`` as a context or ``.use()``); arrays live on the device
  current at their creation, and a kernel launched with an array of another device fails, as it
  would on a GPU without peer access;
* kernels run on the current stream of the current device and advance that device's kernel
  counter; an event records the counter of the stream it is recorded on, and the elapsed time of
  two events is ``COST_MS`` per kernel between them. Events recorded on another device's stream
  than the kernels therefore measure ~0, the very bug of a timer on the wrong GPU;
* between ``Stream.begin_capture()`` and ``end_capture()`` kernels are recorded, not run; the
  returned graph's ``launch()`` runs them on the current stream of its device;
* ``runtime``/``driver``/``nvrtc``/``cublas`` answer like CuPy's, raising the exception types and
  texts CuPy raises when a driver or library is missing (configured per test);
* ``cublas.gemmStridedBatchedEx`` computes what cuBLAS computes from raw pointers, column-major, in
  NumPy (:class:`FakeCublas`), so a caller's transposes, leading dimensions and strides are checked;
* ``ElementwiseKernel`` compiles (or raises ``kernel_error``, as NVRTC does without the CUDA headers)
  and ``RawModule`` hands out the NumPy models of gpubench's kernels a test registers (``kernels``);
* ``runtime.memcpyAsync`` copies between host addresses on the current stream.

Every call of interest is appended to ``log``.

:class:`FakeTorchCuda` fakes ``torch.cuda`` (devices, streams, events, CUDA graphs) for the
torch adapter; :func:`fake_torch` wraps the real (CPU) torch module with it.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections import defaultdict

import numpy as np

COST_MS = 0.05


class FakeCUDARuntimeError(RuntimeError):
    """Stands in for ``cupy_backends.cuda.api.runtime.CUDARuntimeError``."""


class FakeArray(np.ndarray):
    """A NumPy array that knows its (fake) device."""

    fake = None
    device = None

    @classmethod
    def make(cls, fake: FakeCupy, values: np.ndarray) -> FakeArray:
        out = np.array(values, copy=True).view(cls)
        out.fake, out.device = fake, fake.current
        return out

    def __array_finalize__(self, obj):
        self.fake = getattr(obj, "fake", None)
        self.device = getattr(obj, "device", None)

    @property
    def data(self):
        """CuPy's ``MemoryPointer``: only its ``ptr`` (here the host address of the values)."""
        return type("MemoryPointer", (), {"ptr": self.ctypes.data})()

    # CuPy's ndarray.set / ndarray.get: host <-> device copies of the same dtype.
    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray) or isinstance(arr, FakeArray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        self.fake.log.append(("set", self.device, arr.dtype.name, arr))  # the array itself: ids get reused
        np.copyto(np.asarray(self), arr)

    def get(self, stream=None, order="C", out=None):
        self.fake.log.append(("get", self.device, out))
        if out is None:
            return np.array(np.asarray(self), copy=True)
        if out.dtype != self.dtype:
            raise TypeError(f"{self.dtype} array cannot be copied to {out.dtype} array")
        np.copyto(out, np.asarray(self))
        return out


class FakeStream:
    def __init__(self, fake, device, name):
        self.fake, self.device_id, self.name = fake, device, name
        self.capturing = None

    @property
    def ptr(self):
        return id(self)

    def __enter__(self):
        self.fake._streams[self.device_id].append(self)
        self.fake.log.append(("stream enter", self.name, self.device_id))
        return self

    def __exit__(self, *exc):
        self.fake._streams[self.device_id].pop()
        self.fake.log.append(("stream exit", self.name, self.device_id))

    def synchronize(self):
        self.fake.log.append(("stream sync", self.name, self.device_id))

    def begin_capture(self, mode=None):
        self.fake.log.append(("begin_capture", self.name, self.device_id))
        self.capturing = []

    def end_capture(self):
        self.fake.log.append(("end_capture", self.name, self.device_id))
        nodes, self.capturing = self.capturing, None
        return FakeGraph(self.fake, self.device_id, nodes)


class FakeGraph:
    def __init__(self, fake, device, nodes):
        self.fake, self.device, self.nodes = fake, device, nodes

    def launch(self, stream=None):
        fake = self.fake
        assert fake.current == self.device, f"graph of device {self.device} launched on device {fake.current}"
        fake.log.append(("graph launch", self.device, len(self.nodes)))
        for _name, work in self.nodes:
            fake.kernels[self.device] += 1
            work()


class FakeEvent:
    def __init__(self, fake):
        self.fake, self.device, self.count = fake, fake.current, None

    def record(self, stream=None):
        fake = self.fake
        stream = stream or fake.cuda.get_current_stream()
        if stream.device_id != self.device:
            raise FakeCUDARuntimeError("cudaErrorInvalidResourceHandle: event and stream on different devices")
        self.count = fake.kernels[stream.device_id]
        fake.log.append(("record", stream.device_id))

    def synchronize(self):
        self.fake.log.append(("event sync", self.device))


class FakeDevice:
    def __init__(self, fake, index):
        self.fake, self.id = fake, int(index)
        self._previous = []

    def __enter__(self):
        self._previous.append(self.fake.current)
        self.fake.current = self.id
        self.fake.log.append(("device enter", self.id))
        return self

    def __exit__(self, *exc):
        self.fake.current = self._previous.pop()
        self.fake.log.append(("device exit", self.id))

    def use(self):
        self.fake.current = self.id
        self.fake.log.append(("device use", self.id))

    def synchronize(self):
        self.fake.log.append(("device sync", self.id))


class FakeLinalg:
    """``cupy._core._routines_linalg``'s compute-type switch (TF32 needs a device of capability 8.0+)."""

    COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC = 0, 1, 2
    COMPUTE_TYPE_TF32 = 7

    def __init__(self, fake):
        self.fake = fake
        self.types = {"float32": self.COMPUTE_TYPE_DEFAULT}

    def get_compute_type(self, dtype):
        return self.types[np.dtype(dtype).name]

    def set_compute_type(self, dtype, compute_type):
        self.fake.log.append(("set_compute_type", np.dtype(dtype).name, compute_type, self.fake.current))
        self.types[np.dtype(dtype).name] = compute_type


#: CUDA's ``cudaDataType`` codes (``CUDA_R_16F`` ...), as ``cupy.cuda.runtime`` names them.
CUDA_DTYPES = {2: np.float16, 0: np.float32, 1: np.float64}


def _column_major(ptr: int, dtype, rows: int, cols: int, ld: int) -> np.ndarray:
    """A writable NumPy view of a column-major ``rows × cols`` matrix at host address ``ptr`` (leading dim ``ld``)."""
    item = np.dtype(dtype).itemsize
    count = ld * (cols - 1) + rows
    flat = np.frombuffer((ctypes.c_char * (count * item)).from_address(ptr), dtype=dtype, count=count)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (item, ld * item))


class FakeCublas:
    """``cupy.cuda.cublas``: ``gemmStridedBatchedEx`` as cuBLAS defines it, computed in NumPy from raw pointers."""

    CUBLAS_COMPUTE_16F, CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_64F = 64, 68, 70
    CUBLAS_GEMM_DEFAULT = -1
    CUBLAS_OP_N, CUBLAS_OP_T = 0, 1

    def __init__(self, fake):
        self.fake = fake

    def gemmStridedBatchedEx(self, handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA,  # noqa: N802
                             B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batch, compute, algo):
        """C[i] = α·op(A[i])·op(B[i]) + β·C[i], all column-major, for i < batch (α, β float32 host scalars)."""
        fake = self.fake
        fake.log.append(("gemmStridedBatchedEx", fake.current, Atype, Btype, Ctype, compute, batch))
        assert compute == self.CUBLAS_COMPUTE_32F, "half and single GEMMs accumulate in float32 here"
        a_t, b_t, c_t = CUDA_DTYPES[Atype], CUDA_DTYPES[Btype], CUDA_DTYPES[Ctype]
        alpha_v = float(np.frombuffer((ctypes.c_char * 4).from_address(alpha), np.float32)[0])
        beta_v = float(np.frombuffer((ctypes.c_char * 4).from_address(beta), np.float32)[0])
        ra, ca = (m, k) if transa == self.CUBLAS_OP_N else (k, m)
        rb, cb = (k, n) if transb == self.CUBLAS_OP_N else (n, k)
        assert lda >= max(1, ra) and ldb >= max(1, rb) and ldc >= max(1, m), "a leading dimension too small"
        for i in range(batch):
            a = _column_major(A + i * strideA * np.dtype(a_t).itemsize, a_t, ra, ca, lda)
            b = _column_major(B + i * strideB * np.dtype(b_t).itemsize, b_t, rb, cb, ldb)
            c = _column_major(C + i * strideC * np.dtype(c_t).itemsize, c_t, m, n, ldc)
            opa = a.T if transa else a
            opb = b.T if transb else b
            prod = opa.astype(np.float32) @ opb.astype(np.float32)
            c[...] = alpha_v * prod + (beta_v * c.astype(np.float32) if beta_v else 0.0)
        fake.kernels[fake.current] += 1


class FakeCuda:
    """``cupy.cuda``: devices, streams, events, the runtime and the libraries' probes."""

    def __init__(self, fake, n_devices, driver_version, build_version, cublas_error, nvrtc_error, count_error):
        self.fake = fake
        self._cublas_error = cublas_error
        fake_self = self

        class Runtime:
            CUDARuntimeError = FakeCUDARuntimeError
            is_hip = False

            @staticmethod
            def driverGetVersion():  # noqa: N802 - CuPy's name
                return driver_version

            @staticmethod
            def runtimeGetVersion():  # noqa: N802
                return build_version

            @staticmethod
            def getDeviceCount():  # noqa: N802
                if count_error is not None:
                    raise count_error
                return n_devices

            @staticmethod
            def getDeviceProperties(i):  # noqa: N802
                return {"name": f"Fake GPU {i}".encode(), "totalGlobalMem": 80 * 2**30, "major": 9, "minor": 0,
                        "multiProcessorCount": 132, "l2CacheSize": 50 * 2**20}

            CUDA_R_16F, CUDA_R_32F, CUDA_R_64F = 2, 0, 1
            memcpyHostToDevice, memcpyDeviceToHost, memcpyDeviceToDevice = 1, 2, 3

            @staticmethod
            def memcpyAsync(dst, src, nbytes, kind, stream_ptr):  # noqa: N802
                fake = fake_self.fake
                stream = fake.cuda.get_current_stream()
                if stream.ptr != stream_ptr:
                    raise FakeCUDARuntimeError("memcpyAsync on a stream that is not the current device's")
                ctypes.memmove(dst, src, nbytes)
                fake.kernels[stream.device_id] += 1
                fake.log.append(("memcpy", stream.device_id, kind, nbytes))

            @staticmethod
            def memsetAsync(ptr, value, nbytes, stream_ptr):  # noqa: N802
                # A device operation on the stream like a kernel: a flush between two timing events
                # would add COST_MS to the sample, so a flush inside the timed region shows.
                fake = fake_self.fake
                stream = fake.cuda.get_current_stream()
                if stream.ptr != stream_ptr:
                    raise FakeCUDARuntimeError("memsetAsync on a stream that is not the current device's")
                fake.kernels[stream.device_id] += 1
                fake.log.append(("memset", stream.device_id, nbytes))

        class Driver:
            @staticmethod
            def get_build_version():
                return build_version

        class Nvrtc:
            @staticmethod
            def getVersion():  # noqa: N802
                fake_self.fake.log.append(("nvrtc.getVersion",))
                if nvrtc_error is not None:
                    raise nvrtc_error
                return (build_version // 1000, build_version % 1000 // 10)

        self.runtime, self.driver, self.nvrtc = Runtime, Driver, Nvrtc
        self.device = type("device", (), {"get_cublas_handle": staticmethod(lambda: 1000 + fake.current)})()

        class MemoryHook:
            """``cupy.cuda.MemoryHook``: a context manager here (the fake pool reports nothing)."""

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        self.MemoryHook = MemoryHook

    def __getattr__(self, name):
        if name == "cublas":
            self.fake.log.append(("cublas import",))
            if self._cublas_error is not None:
                raise self._cublas_error
            return FakeCublas(self.fake)
        raise AttributeError(name)

    def Device(self, index=None):  # noqa: N802
        return FakeDevice(self.fake, self.fake.current if index is None else index)

    def Stream(self, non_blocking=False):  # noqa: N802
        fake = self.fake
        fake.log.append(("new stream", fake.current))
        return FakeStream(fake, fake.current, f"s{len(fake.log)}")

    def get_current_stream(self, device_id=-1):
        device = self.fake.current if device_id == -1 else device_id
        return self.fake._streams[device][-1]

    def Event(self):  # noqa: N802
        return FakeEvent(self.fake)

    @staticmethod
    def get_elapsed_time(start, end):
        return (end.count - start.count) * COST_MS


class FakeCupy:
    """A NumPy-backed ``cupy`` module with the CUDA semantics listed in this file's docstring."""

    __version__ = "fake"

    def __init__(self, n_devices=2, driver_version=13000, build_version=13020, cublas_error=None, nvrtc_error=None,
                 count_error=None, kernel_error=None, raw_kernels=None):
        self.kernel_error = kernel_error
        """Raised by the first launch of an ``ElementwiseKernel`` (its NVRTC compile), as CuPy raises it."""
        self.raw_kernels = dict(raw_kernels or {})
        """NumPy models of ``RawModule`` kernels by name: ``fn(grid, block, args)``."""
        self.log: list[tuple] = []
        self.current = 0
        self.kernels: dict[int, int] = defaultdict(int)
        self._streams = defaultdict(list)
        for d in range(n_devices):
            self._streams[d].append(FakeStream(self, d, f"null{d}"))
        self.cuda = FakeCuda(self, n_devices, driver_version, build_version, cublas_error, nvrtc_error, count_error)
        self._core = type("core", (), {})()
        self._core._routines_linalg = FakeLinalg(self)
        self.float32 = np.float32
        self.uint8 = np.uint8

    # --- arrays --------------------------------------------------------------------------------------
    def array(self, values, dtype=None, copy=True):
        return FakeArray.make(self, np.array(values, dtype=dtype))

    def asarray(self, values):
        return self.array(values)

    def empty(self, shape, dtype=np.float64):
        return FakeArray.make(self, np.empty(shape, dtype))

    def empty_like(self, a):
        return FakeArray.make(self, np.empty_like(np.asarray(a)))

    def zeros(self, shape, dtype=np.float64):
        return FakeArray.make(self, np.zeros(shape, dtype))

    def stack(self, arrays):
        return FakeArray.make(self, np.stack([np.asarray(a) for a in arrays]))

    multiply = staticmethod(np.multiply)
    sum = staticmethod(np.sum)

    def asnumpy(self, array):
        return np.array(np.asarray(array), copy=True)

    def get_default_memory_pool(self):
        return type("pool", (), {"free_all_blocks": staticmethod(lambda: None)})()

    # --- kernels -------------------------------------------------------------------------------------
    def _launch(self, name, arrays, work):
        device = self.current
        for a in arrays:
            if a.device != device:
                raise FakeCUDARuntimeError(f"{name} launched on device {device} with an array of device {a.device}")
        stream = self._streams[device][-1]
        if stream.capturing is not None:
            stream.capturing.append((name, work))
            self.log.append(("captured", name, device))
            return
        self.log.append(("kernel", name, device))
        self.kernels[device] += 1
        work()

    def matmul(self, a, b, out=None):
        def work():
            np.matmul(np.asarray(a), np.asarray(b), out=np.asarray(out))

        self._launch("matmul", (a, b, out), work)
        return out

    def ElementwiseKernel(self, in_params, out_params, operation, name):  # noqa: N802
        """SAXPY (``y = a * x + y``) or the load probe's ``y = x + 1`` (float32); compiled at the first launch."""
        assert operation in ("y = a * x + y", "y = x + 1.0f"), operation
        compiled = []

        def compile_once():
            if not compiled:
                self.log.append(("nvrtc compile", name))
                if self.kernel_error is not None:
                    raise self.kernel_error
                compiled.append(True)

        def saxpy(x, a, y):
            compile_once()

            def work():
                yv = np.asarray(y)
                yv[...] = a * np.asarray(x) + yv

            self._launch(name, (x, y), work)
            return y

        def plus_one(x):
            compile_once()
            y = self.empty_like(x)

            def work():
                np.asarray(y)[...] = np.asarray(x) + 1

            self._launch(name, (x, y), work)
            return y

        return saxpy if operation == "y = a * x + y" else plus_one

    def RawModule(self, code, options=()):  # noqa: N802
        """A compiled module whose functions are the NumPy models in ``raw_kernels`` (a launch on the current
        stream, like any kernel)."""
        fake = self

        class Module:
            def get_function(self, name):
                model = fake.raw_kernels[name]

                def kernel(grid, block, args):
                    arrays = tuple(a for a in args if isinstance(a, FakeArray))
                    fake._launch(name, arrays, lambda: model(grid, block, args))

                return kernel

        self.log.append(("RawModule", len(code)))
        return Module()


# --- torch.cuda ------------------------------------------------------------------------------------------
class FakeTorchStream:
    def __init__(self, cuda, device, name):
        self.cuda, self.device_index, self.name = cuda, device, name

    def wait_stream(self, other):
        self.cuda.log.append(("wait_stream", self.name, other.name))


class FakeTorchEvent:
    def __init__(self, cuda, enable_timing=False):
        assert enable_timing
        self.cuda, self.count, self.device = cuda, None, None

    def record(self, stream=None):
        stream = stream or self.cuda.current_stream()
        self.device = stream.device_index
        self.count = self.cuda.calls[stream.device_index]
        self.cuda.log.append(("record", stream.name))

    def synchronize(self):
        self.cuda.log.append(("event sync", self.device))

    def elapsed_time(self, end):
        assert self.device == end.device
        return (end.count - self.count) * COST_MS


class FakeCUDAGraph:
    def __init__(self, cuda):
        self.cuda = cuda

    def replay(self):
        self.cuda.log.append(("replay", self.cuda.current))
        self.cuda.calls[self.cuda.current] += 1


class FakeTorchCuda:
    """``torch.cuda`` for the adapter: current device, per-device streams, timing events, CUDA graphs."""

    def __init__(self, n_devices=2):
        self.log: list[tuple] = []
        self.current = 0
        self.n_devices = n_devices
        self.calls: dict[int, int] = defaultdict(int)
        self._streams = {d: [FakeTorchStream(self, d, f"default{d}")] for d in range(n_devices)}

    def is_available(self):
        return True

    def device_count(self):
        return self.n_devices

    def current_device(self):
        return self.current

    @contextlib.contextmanager
    def device(self, index):
        previous, self.current = self.current, int(index)
        self.log.append(("device enter", self.current))
        try:
            yield
        finally:
            self.log.append(("device exit", self.current))
            self.current = previous

    def current_stream(self, device=None):
        return self._streams[self.current if device is None else int(device)][-1]

    def Stream(self, device=None):  # noqa: N802
        index = self.current if device is None else int(device)
        stream = FakeTorchStream(self, index, f"side{len(self.log)}")
        self.log.append(("new stream", stream.name, index))
        return stream

    @contextlib.contextmanager
    def stream(self, stream):
        self._streams[stream.device_index].append(stream)
        self.log.append(("stream enter", stream.name))
        try:
            yield
        finally:
            self._streams[stream.device_index].pop()
            self.log.append(("stream exit", stream.name))

    def Event(self, enable_timing=False):  # noqa: N802
        return FakeTorchEvent(self, enable_timing)

    def CUDAGraph(self):  # noqa: N802
        self.log.append(("new graph",))
        return FakeCUDAGraph(self)

    @contextlib.contextmanager
    def graph(self, graph, stream=None, **kw):
        assert stream is not None, "capture must name its stream (torch's default capture stream is per process)"
        self._streams[stream.device_index].append(stream)
        self.log.append(("capture begin", stream.name))
        try:
            yield
        finally:
            self._streams[stream.device_index].pop()
            self.log.append(("capture end", stream.name))

    def synchronize(self, device=None):
        self.log.append(("synchronize", device))

    def empty_cache(self):
        pass


class FakeTorch:
    """The real (CPU) torch module, with ``torch.cuda`` replaced by a :class:`FakeTorchCuda`."""

    def __init__(self, real, cuda: FakeTorchCuda):
        self._real, self.cuda = real, cuda

    def __getattr__(self, name):
        return getattr(self._real, name)


# --- models of gpubench's own CUDA kernels -------------------------------------------------------------


def attention_softmax_model(grid, block, args):
    """NumPy model of ``attention_softmax_*`` in kernels/cuda/attention_softmax.cu: one block per row."""
    from gpubench.backends.cupy_backend.attention import THREADS

    scores, n, rows_per_head, q0, causal, scale = args
    assert block == (THREADS,) and THREADS % 32 == 0
    assert isinstance(n, np.int64) and isinstance(rows_per_head, np.int32) and isinstance(q0, np.int64)
    assert isinstance(causal, np.int32) and isinstance(scale, (np.float32, np.float64))
    flat = np.asarray(scores).reshape(-1, int(n))
    assert grid == (flat.shape[0],)
    for row in range(flat.shape[0]):
        valid = min(int(n), int(q0) + row % int(rows_per_head) + 1) if causal else int(n)
        x = flat[row, :valid].astype(np.float64) * float(scale)
        e = np.exp(x - x.max())
        flat[row, :valid] = e / e.sum()
        flat[row, valid:] = 0
