"""The MNIST IDX loader, the shipped offline set and the (network-free) download path."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest

from gpubench import mnist_data
from gpubench.errors import UsageError
from gpubench.mnist_data import MnistDataError


def write_idx(path, magic, dims, body: bytes | None = None, rng=None):
    """Write a gzip IDX file; ``body`` defaults to random bytes of the right length."""
    n = int(np.prod(dims))
    if body is None:
        body = (rng or np.random.default_rng(0)).integers(0, 10 if magic == mnist_data.LABELS_MAGIC else 256,
                                                          n, dtype=np.uint8).tobytes()
    header = struct.pack(f">i{len(dims)}i", magic, *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + body)
    return path


def test_shipped_test_set_loads_with_known_labels():
    d = mnist_data.packaged_dir()
    x, y = mnist_data.read_pair(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,)
    # The first MNIST test digits are famously 7, 2, 1, 0, 4.
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert sorted(set(y.tolist())) == list(range(10))
    assert x.max() == 255 and x.min() == 0


def test_shipped_checksums_match_the_published_values():
    sums = mnist_data.read_sums(mnist_data.packaged_dir() / "SHA256SUMS")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert sums[name] == mnist_data.SHA256[name]
        assert mnist_data.sha256_file(mnist_data.packaged_dir() / name) == sums[name]


def test_offline_split_is_deterministic_and_disjoint():
    a = mnist_data.load_offline()
    b = mnist_data.load_offline()
    assert a.x_train.shape == (8000, 28, 28) and a.x_eval.shape == (2000, 28, 28)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_eval, b.y_eval)
    train, ev = mnist_data.split_indices(10000, 8000, 2000)
    assert len(set(train.tolist()) | set(ev.tolist())) == 10000
    # A smaller training part keeps the same evaluation images (no leakage between sizes).
    small = mnist_data.load_offline(1000, 2000)
    assert np.array_equal(small.x_eval, a.x_eval)
    # Every class is present in both parts.
    assert np.bincount(a.y_train, minlength=10).min() > 600
    assert np.bincount(a.y_eval, minlength=10).min() > 150


def test_offline_split_rejects_impossible_sizes():
    with pytest.raises(MnistDataError, match="at most 10000"):
        mnist_data.load_offline(9000, 2000)


def test_wrong_magic_is_rejected(tmp_path):
    p = write_idx(tmp_path / "x.gz", mnist_data.LABELS_MAGIC, (4,))
    with pytest.raises(MnistDataError, match="magic number 2049, expected 2051"):
        mnist_data.read_images(p)


def test_truncated_body_is_rejected(tmp_path):
    p = write_idx(tmp_path / "x.gz", mnist_data.IMAGES_MAGIC, (10, 28, 28), body=bytes(5 * 784))
    with pytest.raises(MnistDataError, match="truncated: 3920 data bytes, header says 7840"):
        mnist_data.read_images(p)


def test_overlong_body_and_bad_dimensions_are_rejected(tmp_path):
    p = write_idx(tmp_path / "x.gz", mnist_data.LABELS_MAGIC, (3,), body=bytes(4))
    with pytest.raises(MnistDataError, match="longer than its header says"):
        mnist_data.read_labels(p)
    p = write_idx(tmp_path / "y.gz", mnist_data.IMAGES_MAGIC, (2, 14, 14))
    with pytest.raises(MnistDataError, match="14×14, expected 28×28"):
        mnist_data.read_images(p)
    p = write_idx(tmp_path / "z.gz", mnist_data.LABELS_MAGIC, (0,), body=b"")
    with pytest.raises(MnistDataError, match="invalid dimensions"):
        mnist_data.read_labels(p)


def test_cut_gzip_stream_and_non_gzip_are_rejected(tmp_path):
    src = mnist_data.packaged_dir() / "t10k-labels-idx1-ubyte.gz"
    cut = tmp_path / "cut.gz"
    cut.write_bytes(src.read_bytes()[:2000])
    with pytest.raises(MnistDataError, match="not a valid gzip file"):
        mnist_data.read_labels(cut)
    plain = tmp_path / "plain.gz"
    plain.write_bytes(b"\x00\x00\x08\x01not gzip at all")
    with pytest.raises(MnistDataError, match="not a valid gzip file"):
        mnist_data.read_labels(plain)


def test_out_of_range_label_and_count_mismatch(tmp_path):
    bad = write_idx(tmp_path / "l.gz", mnist_data.LABELS_MAGIC, (3,), body=bytes([1, 2, 11]))
    with pytest.raises(MnistDataError, match="label 11 out of range"):
        mnist_data.read_labels(bad)
    images = write_idx(tmp_path / "i.gz", mnist_data.IMAGES_MAGIC, (3, 28, 28))
    labels = write_idx(tmp_path / "l2.gz", mnist_data.LABELS_MAGIC, (4,))
    with pytest.raises(MnistDataError, match="3 images, 4 labels"):
        mnist_data.read_pair(images, labels)


def test_errors_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError) as info:
        mnist_data.read_images(tmp_path / "missing.gz")
    assert "\n" not in str(info.value) and "not found" in str(info.value)
    assert info.value.exit_code == 2


def test_wrong_checksum_is_rejected(tmp_path):
    d = tmp_path / "mnist"
    shutil.copytree(mnist_data.packaged_dir(), d)
    assert mnist_data.load_offline(directory=d).x_train.shape == (8000, 28, 28)
    # Replace the labels by a valid IDX file with different content: only the checksum catches it.
    (d / "t10k-labels-idx1-ubyte.gz").chmod(0o644)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", mnist_data.LABELS_MAGIC, (10000,))
    with pytest.raises(MnistDataError, match="SHA-256 .* does not match"):
        mnist_data.load_offline(directory=d)
    (d / "SHA256SUMS").chmod(0o644)
    (d / "SHA256SUMS").write_text("0" * 64 + "  t10k-images-idx3-ubyte.gz\n")
    with pytest.raises(MnistDataError, match="does not list the published SHA-256"):
        mnist_data.load_offline(directory=d)


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """A local directory holding four small, valid MNIST-format files, with their checksums patched in."""
    src = tmp_path / "mirror"
    src.mkdir()
    rng = np.random.default_rng(1)
    write_idx(src / "train-images-idx3-ubyte.gz", mnist_data.IMAGES_MAGIC, (60, 28, 28), rng=rng)
    write_idx(src / "train-labels-idx1-ubyte.gz", mnist_data.LABELS_MAGIC, (60,), rng=rng)
    write_idx(src / "t10k-images-idx3-ubyte.gz", mnist_data.IMAGES_MAGIC, (10, 28, 28), rng=rng)
    write_idx(src / "t10k-labels-idx1-ubyte.gz", mnist_data.LABELS_MAGIC, (10,), rng=rng)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    monkeypatch.setattr(mnist_data, "SHA256", sums)
    return src


def test_download_from_a_file_url_mirror_after_a_failing_one(tmp_path, fake_mirror):
    cache = tmp_path / "cache"
    mirrors = ((tmp_path / "nowhere").as_uri() + "/", fake_mirror.as_uri() + "/")
    root = mnist_data.download(cache, mirrors=mirrors)
    assert sorted(p.name for p in root.iterdir()) == sorted(mnist_data.SHA256)
    full = mnist_data.load_full(cache)
    assert full.x_train.shape == (60, 28, 28) and full.x_eval.shape == (10, 28, 28)
    # A second download keeps the verified files and fetches nothing.
    calls = []
    mnist_data.download(cache, mirrors=mirrors, fetch=lambda url, dest: calls.append(url))
    assert calls == []


def test_download_rejects_a_bad_checksum_and_leaves_nothing(tmp_path, fake_mirror, monkeypatch):
    sums = dict(mnist_data.SHA256)
    sums["train-labels-idx1-ubyte.gz"] = "f" * 64
    monkeypatch.setattr(mnist_data, "SHA256", sums)
    cache = tmp_path / "cache"
    with pytest.raises(MnistDataError, match="could not download train-labels-idx1-ubyte.gz: .*does not match"):
        mnist_data.download(cache, mirrors=(fake_mirror.as_uri() + "/",))
    assert not (cache / "train-labels-idx1-ubyte.gz").exists()
    assert not list(cache.glob("*.part"))


def test_download_uses_the_fetch_function_and_cache_dir_env(tmp_path, fake_mirror, monkeypatch):
    monkeypatch.setenv("GPUBENCH_MNIST_DIR", str(tmp_path / "envcache"))
    assert mnist_data.cache_dir() == tmp_path / "envcache"
    seen = []

    def fetch(url, dest):
        seen.append(url)
        shutil.copyfile(fake_mirror / url.rsplit("/", 1)[1], dest)

    root = mnist_data.download(mirrors=("https://example.invalid/mnist/",), fetch=fetch)
    assert root == tmp_path / "envcache" and len(seen) == 4
    assert mnist_data.load("full").x_train.shape == (60, 28, 28)


def test_full_set_missing_names_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUBENCH_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(MnistDataError, match="python -m gpubench.mnist_data download"):
        mnist_data.load("full")
