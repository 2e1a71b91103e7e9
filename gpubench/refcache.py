"""The reference cache: float64 references kept on disk by content, computed once per problem.

A workload's float64 reference depends on the *problem* — the workload and its version, the
parameters that change the answer, the input seed and the input dtype — never on the backend,
device, variant or timing mode that produced the output it checks. So :mod:`gpubench.case` keys
each reference by a hash of exactly that (plus the source of the code that computes it and a
fingerprint of the inputs, see :func:`key_of`) and keeps it here, to be reused by every backend,
every dtype-equal case and every later run.

Where it lives, first match wins:

1. ``gpubench run --ref-cache PATH`` (``off`` disables it);
2. ``$GPUBENCH_REFCACHE`` (a directory, or ``off``);
3. a ``refcache/`` directory beside the results store (``results/refcache`` for the default store
   ``results/gpubench.sqlite``; for a store that is not a file, ``results/refcache``).

``gpubench run`` resolves the location once and hands it to its worker processes through
``$GPUBENCH_REFCACHE`` (:func:`exported`), so the runner and every worker agree; the pytest plugin
and a direct :func:`gpubench.case.run_case` read the same variable.

Entries:

* **content-addressed**: the file name is the key, a SHA-256 of the problem;
* **verified when read**: each file carries the SHA-256 of its payload; an entry whose magic,
  header, length or hash does not match is deleted and the reference recomputed — never trusted;
* **written atomically**: into a temporary file in the same directory, then renamed over the
  final name, so a reader sees a whole entry or none (two runs writing the same key write the
  same bytes; the last rename wins);
* **bounded**: at most ``$GPUBENCH_REFCACHE_SIZE`` bytes (default 2 GiB; ``500M``, ``4G``...);
  after each write the least recently used entries are deleted until the total fits (a hit
  refreshes the entry's modification time, which is its "last used" time);
* **safe to share**: several runs may read, write and evict the same directory at once; a file
  deleted under a reader is a miss, and every failure of the cache is a miss, never a failed case.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import re
import secrets
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Environment variable naming the cache directory (or ``off``).
ENV = "GPUBENCH_REFCACHE"
#: Environment variable with the cache's size bound (``2G``, ``500M``, bytes).
SIZE_ENV = "GPUBENCH_REFCACHE_SIZE"
#: The value of :data:`ENV` or ``--ref-cache`` that disables the cache.
OFF = "off"
DEFAULT_MAX_BYTES = 2 * 2**30
#: Directory name of the default cache, beside the store.
DIRNAME = "refcache"
#: Bumped when the entry format or the key's composition changes (old entries then never match).
FORMAT = 1

_MAGIC = b"GPUBENCH-REF\x00\x01"
_SUFFIX = ".ref"
_TMP_PREFIX = ".tmp-"
#: A temporary file older than this is a crashed writer's and is removed by the next eviction.
_STALE_TMP_S = 3600.0
#: Largest number of elements of each input array that :func:`fingerprint` reads.
_FINGERPRINT_ELEMENTS = 4096


def parse_size(text: str) -> int:
    """``"2G"`` → 2·2³⁰, ``"500M"``, ``"64K"``, ``"1000"`` (bytes); ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 2G, 500M, 1000000)")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise ValueError(f"not a positive size: {text!r}")
    return value


def max_bytes_from_environment() -> int:
    """The size bound from ``$GPUBENCH_REFCACHE_SIZE`` (default 2 GiB); UsageError when it is malformed."""
    from gpubench.errors import UsageError

    text = os.environ.get(SIZE_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"${SIZE_ENV}: {exc}") from exc


def default_location(store: str | os.PathLike | None = None) -> Path:
    """``refcache/`` beside the results store (``$GPUBENCH_STORE`` or the default when ``store`` is None)."""
    from gpubench.store.kinds import default_location as default_store
    from gpubench.store.kinds import sqlite_path

    text = os.fspath(default_store() if store is None else store)
    if text.startswith("sqlite:"):
        text = str(sqlite_path(text))
    if "://" in text or not text:  # a database server's store: the cache stays on this machine
        return Path("results") / DIRNAME
    return Path(text).parent / DIRNAME


def resolve(option: str | None = None, store: str | os.PathLike | None = None) -> Path | None:
    """The cache directory a run uses, or None when it is disabled: ``option``, then ``$GPUBENCH_REFCACHE``,
    then beside ``store``. An empty option is a UsageError."""
    from gpubench.errors import UsageError

    if option is not None:
        if not option.strip():
            raise UsageError(f"--ref-cache must name a directory or '{OFF}'")
        return None if option.strip().lower() == OFF else Path(option)
    env = os.environ.get(ENV, "").strip()
    if env:
        return None if env.lower() == OFF else Path(env)
    return default_location(store)


@contextlib.contextmanager
def exported(location: Path | None) -> Iterator[None]:
    """Hand the resolved location to the processes started inside (the runner's workers) through
    ``$GPUBENCH_REFCACHE``; the variable's old value comes back afterwards."""
    old = os.environ.get(ENV)
    os.environ[ENV] = OFF if location is None else str(Path(location).absolute())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def from_environment() -> RefCache | None:
    """The cache a worker or an in-process case uses (:func:`resolve` without an option), or None when off."""
    location = resolve()
    if location is None:
        return None
    try:
        max_bytes = max_bytes_from_environment()
    except Exception:  # noqa: BLE001 - a bad bound in a worker falls back, the CLI reports it
        max_bytes = DEFAULT_MAX_BYTES
    return RefCache(location, max_bytes)


def key_of(parts: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``parts`` as canonical JSON, with :data:`FORMAT` mixed in."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(arrays: dict[str, Any]) -> str:
    """A short hash of arrays' names, dtypes, shapes and an evenly strided sample of their values.

    Inputs are a deterministic function of the problem, so this costs a few microseconds and
    still catches inputs that changed without the key knowing (a new NumPy random stream, a
    different data file).
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        flat = a.reshape(-1)
        if flat.size:
            step = max(1, flat.size // _FINGERPRINT_ELEMENTS)
            h.update(np.ascontiguousarray(flat[::step]).tobytes())
            h.update(np.ascontiguousarray(flat[-1:]).tobytes())
    return h.hexdigest()[:32]


@functools.cache
def source_digest(modules: tuple[str, ...]) -> str:
    """SHA-256 of the source files of ``modules`` (importing them): a changed reference code changes every key."""
    h = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        path = getattr(module, "__file__", None)
        h.update(name.encode() + b"\0")
        if path:
            try:
                h.update(Path(path).read_bytes())
            except OSError:
                h.update(b"unreadable")
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class CacheStats:
    """What is in a cache directory."""

    entries: int
    bytes: int


class RefCache:
    """A reference-cache directory: :meth:`get`, :meth:`put`, :meth:`stats`; see the module docstring."""

    def __init__(self, root: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.last_error = ""
        """The last failure of the cache itself (unwritable directory, corrupt entry), for the record."""

    def path_of(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16,128}", key):
            raise ValueError(f"malformed cache key {key!r}")
        return self.root / (key + _SUFFIX)

    # --- reading -----------------------------------------------------------------------------------
    def get(self, key: str) -> np.ndarray | None:
        """The array stored under ``key`` (read-only), or None: missing, unreadable or failing its hash check.

        A corrupt entry is deleted, so the next writer replaces it.
        """
        path = self.path_of(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.last_error = f"cannot read {path.name}: {exc.strerror or exc}"
            return None
        array = self._decode(data, key)
        if array is None:
            self.last_error = f"corrupt entry {path.name} removed"
            self._unlink(path)
            return None
        try:
            os.utime(path)  # "last used", for least-recently-used eviction
        except OSError:
            pass
        return array

    @staticmethod
    def _decode(data: bytes, key: str) -> np.ndarray | None:
        n = len(_MAGIC)
        if len(data) < n + 8 or data[:n] != _MAGIC:
            return None
        (header_len,) = struct.unpack("<Q", data[n:n + 8])
        start = n + 8 + header_len
        if header_len > 1 << 20 or start > len(data):
            return None
        try:
            header = json.loads(data[n + 8:start].decode())
            dtype = np.dtype(header["dtype"])
            shape = tuple(int(s) for s in header["shape"])
            digest, stored_key = str(header["sha256"]), str(header["key"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None
        payload = memoryview(data)[start:]
        if stored_key != key or dtype.hasobject or len(payload) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            return None
        if hashlib.sha256(payload).hexdigest() != digest:
            return None
        array = np.frombuffer(payload, dtype=dtype).reshape(shape)
        return array

    # --- writing -----------------------------------------------------------------------------------
    def put(self, key: str, array: np.ndarray, meta: dict[str, Any] | None = None) -> bool:
        """Store ``array`` under ``key`` atomically, then evict down to the bound; False when it was not stored.

        An array larger than the whole bound is not stored. Never raises for a failure of the disk.
        """
        array = np.ascontiguousarray(array)
        if array.dtype.hasobject or array.nbytes > self.max_bytes:
            return False
        payload = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
        header = json.dumps({"key": key, "dtype": array.dtype.str, "shape": list(array.shape),
                             "sha256": hashlib.sha256(payload).hexdigest(), "meta": meta or {}},
                            sort_keys=True, default=str).encode()
        path = self.path_of(key)
        tmp = self.root / f"{_TMP_PREFIX}{key[:16]}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(_MAGIC + struct.pack("<Q", len(header)) + header)
                f.write(payload)
            os.replace(tmp, path)
        except OSError as exc:
            self.last_error = f"cannot write to {self.root}: {exc.strerror or exc}"
            self._unlink(tmp)
            return False
        self.evict()
        return True

    def evict(self) -> None:
        """Delete least recently used entries until the total fits :attr:`max_bytes`; remove stale temporary files."""
        entries = []
        total = 0
        now = time.time()
        try:
            scan = list(os.scandir(self.root))
        except OSError:
            return
        for entry in scan:
            try:
                st = entry.stat()
            except OSError:
                continue
            if entry.name.startswith(_TMP_PREFIX):
                if now - st.st_mtime > _STALE_TMP_S:
                    self._unlink(Path(entry.path))
                continue
            if entry.name.endswith(_SUFFIX):
                entries.append((st.st_mtime, st.st_size, entry.path))
                total += st.st_size
        if total <= self.max_bytes:
            return
        for _, size, path in sorted(entries):
            self._unlink(Path(path))
            total -= size
            if total <= self.max_bytes:
                break

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            path.unlink()
        except OSError:  # gone already (another run evicted it) or not ours to delete
            pass

    # --- reading the whole ---------------------------------------------------------------------------
    def stats(self) -> CacheStats:
        """Entries and bytes in the directory (0 and 0 when it does not exist yet)."""
        count = total = 0
        try:
            for entry in os.scandir(self.root):
                if entry.name.endswith(_SUFFIX) and not entry.name.startswith(_TMP_PREFIX):
                    try:
                        total += entry.stat().st_size
                        count += 1
                    except OSError:
                        continue
        except OSError:
            pass
        return CacheStats(count, total)


def describe(location: Path | None, max_bytes: int | None = None) -> dict[str, Any]:
    """JSON-ready facts of a cache location for ``gpubench env`` and ``runs``: path, enabled, entries, bytes, bound."""
    if location is None:
        return {"enabled": False, "path": None, "reason": f"disabled (${ENV}={OFF} or --ref-cache {OFF})"}
    bound = max_bytes if max_bytes is not None else max_bytes_from_environment()
    st = RefCache(location, bound).stats()
    return {"enabled": True, "path": str(location), "entries": st.entries, "bytes": st.bytes, "max_bytes": bound}


def describe_line(info: dict[str, Any]) -> str:
    """``results/refcache: 12 references, 45.3 MiB of 2 GiB`` (or why it is disabled)."""
    if not info.get("enabled"):
        return str(info.get("reason", "disabled"))
    return (f"{info['path']}: {info['entries']} reference{'s' if info['entries'] != 1 else ''}, "
            f"{_size(info['bytes'])} of {_size(info['max_bytes'])}")


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


# --- in-process memo ---------------------------------------------------------------------------------
#: The memo keeps small references of this process (so a disabled disk cache still computes each
#: problem once per process): at most this many bytes in all, each entry at most a quarter of it.
MEMO_MAX_BYTES = 64 * 2**20
_memo: dict[str, np.ndarray] = {}


def memo_get(key: str) -> np.ndarray | None:
    """A reference this process computed or read before under ``key``, or None."""
    array = _memo.pop(key, None)
    if array is not None:
        _memo[key] = array  # most recently used last
    return array


def memo_put(key: str, array: np.ndarray) -> None:
    """Remember a (read-only) reference of this process; the least recently used leave past :data:`MEMO_MAX_BYTES`."""
    if not isinstance(array, np.ndarray) or array.nbytes > MEMO_MAX_BYTES // 4:
        return
    array = array.view()
    array.flags.writeable = False
    _memo.pop(key, None)
    _memo[key] = array
    while sum(a.nbytes for a in _memo.values()) > MEMO_MAX_BYTES:
        _memo.pop(next(iter(_memo)))


def memo_clear() -> None:
    """Forget every memoized reference (tests)."""
    _memo.clear()
