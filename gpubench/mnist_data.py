"""MNIST data: a validating IDX reader, the offline set shipped with gpubench, and the full-set download.

* :func:`read_idx` reads one gzip-compressed IDX file (``train-images-idx3-ubyte.gz`` and friends)
  and rejects anything that is not exactly what the header promises: a wrong magic number, odd
  dimensions, a truncated or over-long body, a broken gzip stream.
* :func:`load_offline` is the default: the real 10,000-image MNIST *test* set, shipped inside the
  package with its checksums, verified on every load and split deterministically into a training
  part and an evaluation part (8,000 / 2,000 by default).
* :func:`download` fetches the full 70,000-image set (60k training, 10k test) into a cache
  directory (``$GPUBENCH_MNIST_DIR``, else ``$XDG_CACHE_HOME/gpubench/mnist``, else
  ``~/.cache/gpubench/mnist``) and checks each file's SHA-256 against the published values;
  :func:`load_full` reads it. Run ``python -m gpubench.mnist_data download`` to fetch it.

Every problem is a :class:`MnistDataError` (a :class:`~gpubench.errors.UsageError`) with a one-line message.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpubench.errors import UsageError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
ROWS = COLS = 28
N_CLASSES = 10

#: SHA-256 of the four standard files, as published by every major loader (torchvision,
#: tensorflow-datasets and others agree on these values).
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Mirrors tried in order (the original site often refuses scripted downloads).
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

#: Offline split of the shipped 10k test set (training part first, evaluation part last).
OFFLINE_TRAIN = 8000
OFFLINE_EVAL = 2000
#: Seed of the fixed permutation behind the offline split. ``RandomState`` is used on purpose:
#: NumPy keeps its stream frozen across versions, so the split never changes.
SPLIT_SEED = 20240601

_MAX_DIM = 10_000_000


class MnistDataError(UsageError):
    """A missing, corrupt or mismatched MNIST file (exit status 2, one-line message)."""


@dataclass(frozen=True)
class MnistSplit:
    """Training and evaluation arrays: images ``uint8 (N, 28, 28)``, labels ``uint8 (N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    source: str


# --- reading ---------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes and return it as a ``uint8`` array.

    ``magic`` is the expected magic number (:data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`). The
    header's dimensions must be positive and the body must hold exactly their product of bytes.
    """
    path = Path(path)
    name = path.name
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as exc:
        raise MnistDataError(f"MNIST file {name} not found in {path.parent}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a cut-off stream raises EOFError.
        raise MnistDataError(f"MNIST file {name} is not a valid gzip file ({type(exc).__name__}: {exc})") from exc
    if len(raw) < 4:
        raise MnistDataError(f"MNIST file {name} is truncated: {len(raw)} bytes, no IDX header")
    (found,) = struct.unpack(">i", raw[:4])
    if found != magic:
        raise MnistDataError(f"MNIST file {name}: magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistDataError(f"MNIST file {name} is truncated inside its header")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if any(d <= 0 or d > _MAX_DIM for d in dims):
        raise MnistDataError(f"MNIST file {name}: invalid dimensions {dims}")
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "longer than its header says"
        raise MnistDataError(f"MNIST file {name} is {what}: {body} data bytes, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Images ``uint8 (N, 28, 28)`` from an ``idx3`` file."""
    x = read_idx(path, IMAGES_MAGIC)
    if x.shape[1:] != (ROWS, COLS):
        raise MnistDataError(f"MNIST file {Path(path).name}: images are {x.shape[1]}×{x.shape[2]}, expected 28×28")
    return x


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Labels ``uint8 (N,)`` in 0..9 from an ``idx1`` file."""
    y = read_idx(path, LABELS_MAGIC)
    if y.size and int(y.max()) >= N_CLASSES:
        raise MnistDataError(f"MNIST file {Path(path).name}: label {int(y.max())} out of range 0..9")
    return y


def read_pair(images: str | os.PathLike, labels: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one set; their counts must agree."""
    x, y = read_images(images), read_labels(labels)
    if len(x) != len(y):
        raise MnistDataError(f"MNIST files {Path(images).name} and {Path(labels).name} do not match: "
                             f"{len(x)} images, {len(y)} labels")
    return x, y


# --- checksums -------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, expected_sha256: str) -> None:
    """Raise :class:`MnistDataError` unless the file exists and has the expected SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise MnistDataError(f"MNIST file {path.name} not found in {path.parent}")
    got = sha256_file(path)
    if got != expected_sha256:
        raise MnistDataError(f"MNIST file {path.name}: SHA-256 {got[:16]}… does not match the expected "
                             f"{expected_sha256[:16]}… (corrupt or a different file)")


def read_sums(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``sha256sum``-style file (``<hex>  <name>`` per line)."""
    sums = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


# --- the offline set -------------------------------------------------------------------------
def packaged_dir() -> Path:
    """Directory of the MNIST files shipped inside the package."""
    from importlib.resources import files

    return Path(str(files("gpubench.data"))) / "mnist"


def split_indices(n: int, train_size: int, eval_size: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint training and evaluation indices into ``n`` examples from a fixed permutation."""
    if train_size < 1 or eval_size < 1 or train_size + eval_size > n:
        raise MnistDataError(f"MNIST split: train_size ({train_size}) + eval_size ({eval_size}) must be "
                             f"positive and at most {n}")
    perm = np.random.RandomState(seed).permutation(n)
    return np.sort(perm[:train_size]), np.sort(perm[n - eval_size:])


def load_offline(train_size: int = OFFLINE_TRAIN, eval_size: int = OFFLINE_EVAL,
                 directory: str | os.PathLike | None = None) -> MnistSplit:
    """The shipped 10k MNIST test set, checksum-verified, split into training and evaluation parts.

    The evaluation part is always the same ``eval_size`` images for a given size (the tail of a
    fixed permutation), so a smaller ``train_size`` never leaks evaluation images into training.
    """
    root = Path(directory) if directory is not None else packaged_dir()
    sums_path = root / "SHA256SUMS"
    if not sums_path.is_file():
        raise MnistDataError(f"MNIST checksums file SHA256SUMS not found in {root}")
    sums = read_sums(sums_path)
    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    for name in names:
        # The shipped SHA256SUMS must itself agree with the published values.
        expected = SHA256[name]
        if sums.get(name) != expected:
            raise MnistDataError(f"MNIST checksums file {sums_path.name} does not list the published SHA-256 of {name}")
        verify_file(root / name, expected)
    x, y = read_pair(root / names[0], root / names[1])
    train, evaluation = split_indices(len(x), train_size, eval_size)
    return MnistSplit(x[train], y[train], x[evaluation], y[evaluation], "offline: MNIST test set (10k), split")


# --- the full set ----------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where the full set is kept: ``$GPUBENCH_MNIST_DIR``, else ``$XDG_CACHE_HOME/gpubench/mnist``."""
    env = os.environ.get("GPUBENCH_MNIST_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpubench" / "mnist"


def _urlopen_fetch(url: str, dest: Path) -> None:
    import shutil
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:  # noqa: S310
        shutil.copyfileobj(response, out)


def download(directory: str | os.PathLike | None = None, mirrors: tuple[str, ...] = MIRRORS,
             fetch: Callable[[str, Path], None] = _urlopen_fetch, log: Callable[[str], None] | None = None) -> Path:
    """Fetch the four standard MNIST files into ``directory`` (default :func:`cache_dir`), verified.

    Files already present with the right checksum are kept. Each file is fetched to a temporary
    name, checked against :data:`SHA256`, then renamed, so a failed download never leaves a bad
    file behind. ``fetch(url, dest)`` does the transfer (replaceable for tests).
    """
    root = Path(directory) if directory is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    for name, expected in SHA256.items():
        dest = root / name
        if dest.is_file() and sha256_file(dest) == expected:
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            tmp = root / (name + ".part")
            try:
                if log:
                    log(f"fetching {url}")
                fetch(url, tmp)
                got = sha256_file(tmp)
                if got != expected:
                    raise MnistDataError(f"SHA-256 {got[:16]}… does not match {expected[:16]}…")
                os.replace(tmp, dest)
                break
            except Exception as exc:  # noqa: BLE001 - try the next mirror, report all at the end
                errors.append(f"{url}: {exc}")
                tmp.unlink(missing_ok=True)
        else:
            raise MnistDataError(f"could not download {name}: " + "; ".join(errors))
    return root


def load_full(directory: str | os.PathLike | None = None) -> MnistSplit:
    """The full set from the cache: 60k training images and the 10k test set for evaluation."""
    root = Path(directory) if directory is not None else cache_dir()
    missing = [n for n in SHA256 if not (root / n).is_file()]
    if missing:
        raise MnistDataError(f"full MNIST set not found in {root} (missing {', '.join(missing)}); "
                             "run: python -m gpubench.mnist_data download")
    for name, expected in SHA256.items():
        verify_file(root / name, expected)
    x_train, y_train = read_pair(root / "train-images-idx3-ubyte.gz", root / "train-labels-idx1-ubyte.gz")
    x_eval, y_eval = read_pair(root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz")
    return MnistSplit(x_train, y_train, x_eval, y_eval, "full: MNIST 60k training, 10k test")


def load(data: str = "offline", train_size: int | None = None, eval_size: int | None = None) -> MnistSplit:
    """Load ``"offline"`` (the shipped split) or ``"full"`` (the downloaded set), optionally trimmed.

    ``train_size``/``eval_size`` take the first examples of each part (deterministic).
    """
    if data == "offline":
        return load_offline(train_size or OFFLINE_TRAIN, eval_size or OFFLINE_EVAL)
    if data != "full":
        raise MnistDataError(f"unknown MNIST data source {data!r} (offline or full)")
    full = load_full()
    nt, ne = train_size or len(full.x_train), eval_size or len(full.x_eval)
    if nt > len(full.x_train) or ne > len(full.x_eval):
        raise MnistDataError(f"full MNIST has {len(full.x_train)} training and {len(full.x_eval)} test images; "
                             f"asked for {nt} and {ne}")
    return MnistSplit(full.x_train[:nt], full.y_train[:nt], full.x_eval[:ne], full.y_eval[:ne], full.source)


def main(argv: list[str] | None = None) -> int:
    """``python -m gpubench.mnist_data download [DIR]``: fetch and verify the full set."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "download" or len(argv) > 2:
        print("usage: python -m gpubench.mnist_data download [DIR]", file=sys.stderr)
        return 2
    try:
        root = download(argv[1] if len(argv) == 2 else None, log=lambda m: print(m, file=sys.stderr))
    except MnistDataError as exc:
        print(f"gpubench: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"MNIST (70,000 images) verified in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
