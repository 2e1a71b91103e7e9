"""Random weights of the inference models, drawn from a seed and cached: one file per model and seed, made once.

Every backend and the float64 reference read the same float32 weights. They are drawn with NumPy
from ``(seed, model)`` — the same numbers on every machine — and saved once as
``<cache>/weights/<model>-seed<seed>-v<WEIGHTS_VERSION>.npz`` (written to a temporary name and
renamed into place, so two workers making it at once never leave half a file). ``<cache>`` is the
reference cache's directory (:func:`cache_dir`; ``results/refcache`` by default, ``--ref-cache`` or
``$GPUBENCH_REFCACHE`` move it). A file that cannot be read, or whose names or shapes are not the
model's, is made again.

How they are drawn (the usual initializations of each kind of model, so activations keep a sane
scale through the layers, with every bias and normalization non-trivial so that a backend that
dropped one would fail its check):

* ``mlp``, ``cnn``: the MNIST workload's Glorot-uniform weights of the same seed
  (:func:`gpubench.workloads.mnist.initial_weights`), and biases uniform in ±0.1 instead of its zeros;
* ``resnet18``: torchvision's initialization (convolutions He-normal with ``mode="fan_out"``, the
  classifier uniform in ±1/√512), and BatchNorm in an eval state as after training: γ uniform in
  [0.5, 1), β and the running mean uniform in ±0.1, the running variance uniform in [0.5, 1.5);
* ``gpt``: GPT-2's initialization (normal, σ 0.02; the residual projections σ 0.02/√(2·layers)),
  biases normal with σ 0.02, LayerNorm γ 1 + N(0, 0.1²), β N(0, 0.02²).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from gpubench.workloads.models import GPT_LAYERS, MODELS, resnet18_layers, shapes

#: Bumped when the way weights are drawn changes (old files are then never read again).
WEIGHTS_VERSION = 1

#: Weights kept in memory after loading, by (model, seed): a worker runs many cases of one model.
_MEMORY: dict[tuple[str, int], dict[str, np.ndarray]] = {}
_MEMORY_MODELS = 2


def cache_dir() -> Path:
    """Where gpubench keeps what it makes once: the reference cache's directory (:func:`gpubench.refcache.resolve`:
    ``$GPUBENCH_REFCACHE``, as ``gpubench run --ref-cache`` sets it for its workers, else ``refcache/`` beside
    the result store). With that cache off, a directory of this process's own, so weights are still made once
    per worker process and never left behind (the worker's private temporary directory)."""
    from gpubench import refcache

    location = refcache.resolve()
    if location is not None:
        return location
    global _PRIVATE
    if _PRIVATE is None:
        import atexit
        import shutil

        _PRIVATE = Path(tempfile.mkdtemp(prefix="gpubench-made-once-"))
        atexit.register(shutil.rmtree, _PRIVATE, True)
    return _PRIVATE


_PRIVATE: Path | None = None


def weights_path(model: str, seed: int) -> Path:
    """The weight file of ``model`` drawn from ``seed``."""
    return cache_dir() / "weights" / f"{model}-seed{seed}-v{WEIGHTS_VERSION}.npz"


def _rng(model: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 23, zlib.crc32(model.encode())])


def _mnist(model: str, seed: int) -> dict[str, np.ndarray]:
    from gpubench.workloads.mnist import initial_weights

    out = initial_weights(model, seed)
    rng = _rng(model, seed)
    for name, value in out.items():
        if value.ndim == 1:
            out[name] = rng.uniform(-0.1, 0.1, size=value.shape).astype(np.float32)
    return out


def _resnet18(seed: int) -> dict[str, np.ndarray]:
    from gpubench.workloads.models import bn_of

    rng = _rng("resnet18", seed)
    out: dict[str, np.ndarray] = {}
    for name, cin, cout, k, _, _ in resnet18_layers():
        std = math.sqrt(2.0 / (cout * k * k))  # kaiming_normal_(mode="fan_out", nonlinearity="relu")
        out[f"{name}.weight"] = rng.normal(0.0, std, size=(cout, cin, k, k)).astype(np.float32)
        bn = bn_of(name)
        out[f"{bn}.weight"] = rng.uniform(0.5, 1.0, size=cout).astype(np.float32)
        out[f"{bn}.bias"] = rng.uniform(-0.1, 0.1, size=cout).astype(np.float32)
        out[f"{bn}.running_mean"] = rng.uniform(-0.1, 0.1, size=cout).astype(np.float32)
        out[f"{bn}.running_var"] = rng.uniform(0.5, 1.5, size=cout).astype(np.float32)
    bound = 1.0 / math.sqrt(512)
    out["fc.weight"] = rng.uniform(-bound, bound, size=(1000, 512)).astype(np.float32)
    out["fc.bias"] = rng.uniform(-bound, bound, size=1000).astype(np.float32)
    return out


def _gpt(seed: int) -> dict[str, np.ndarray]:
    rng = _rng("gpt", seed)
    out: dict[str, np.ndarray] = {}
    residual = 0.02 / math.sqrt(2 * GPT_LAYERS)
    for name, shape in shapes("gpt").items():
        if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            value = 1.0 + rng.normal(0.0, 0.1, size=shape)
        elif len(shape) == 1:
            value = rng.normal(0.0, 0.02, size=shape)
        elif name.endswith(("attn.proj.weight", "mlp.proj.weight")):
            value = rng.normal(0.0, residual, size=shape)
        else:
            value = rng.normal(0.0, 0.02, size=shape)
        out[name] = value.astype(np.float32)
    return out


def make_weights(model: str, seed: int) -> dict[str, np.ndarray]:
    """Draw the float32 weights of ``model`` from ``seed`` (no cache)."""
    if model in ("mlp", "cnn"):
        return _mnist(model, seed)
    if model == "resnet18":
        return _resnet18(seed)
    if model == "gpt":
        return _gpt(seed)
    raise KeyError(f"unknown model {model!r} (known: {', '.join(MODELS)})")


def _valid(model: str, arrays: dict[str, np.ndarray]) -> bool:
    expected = shapes(model)
    return (set(arrays) == set(expected)
            and all(arrays[k].shape == tuple(v) and arrays[k].dtype == np.float32 for k, v in expected.items()))


def _read(path: Path, model: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zlib.error, EOFError, KeyError):
        return None
    return arrays if _valid(model, arrays) else None


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_weights(model: str, seed: int) -> dict[str, np.ndarray]:
    """The float32 weights of ``model`` drawn from ``seed``: from the cache file, made (and saved) the first time.

    A cache that cannot be written (a read-only checkout) costs only the time to draw them again.
    The arrays returned are shared within the process: treat them as read-only.
    """
    key = (model, seed)
    if key in _MEMORY:
        return _MEMORY[key]
    path = weights_path(model, seed)
    arrays = _read(path, model) if path.exists() else None
    if arrays is None:
        arrays = make_weights(model, seed)
        try:
            _write(path, arrays)
        except OSError:
            pass
    while len(_MEMORY) >= _MEMORY_MODELS:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = arrays
    return arrays


def weights_digest(arrays: dict[str, np.ndarray]) -> str:
    """A short SHA-256 of the weights (names, shapes and bytes): what a record says it ran."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + b"\0" + str(a.shape).encode() + b"\0" + a.dtype.str.encode() + b"\0")
        h.update(a.data)
    return h.hexdigest()[:16]
