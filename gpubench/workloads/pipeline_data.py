"""The data of the input-pipeline workload: encoded images in memory, and what each stream position delivers.

Framework-free on purpose: the torch ``DataLoader`` runs :class:`PipelineDataset` in its worker
processes, the float64 reference decodes the same samples with the same code, and TensorFlow's
``tf.data`` pipeline reads the same :class:`Plan` (its decoder is TensorFlow's own).

**The stream.** A loader delivers sample *positions* 0, 1, 2, … in order (batch ``b`` holds positions
``b·B … b·B + B − 1``). What position ``p`` holds is fixed by the case's seed (:func:`make_plan`):
the image ``index[p]`` (a fresh permutation of the set per pass, as a shuffling sampler draws), and
for the ``images`` set a random ``crop × crop`` window (``top[p]``, ``left[p]``) of the stored image
and a horizontal ``flip[p]``. So a sample's augmentation is a function of its position, whatever
worker process produced it: the output can be checked exactly against a reference.

**The sets.**

* ``images``: synthetic RGB photographs (smooth colour fields with texture and edges, so they
  compress like photographs rather than like noise), ``stored × stored`` pixels, each encoded
  once as JPEG (quality 90) or PNG with Pillow and kept in memory as bytes; a sample is decoded,
  cropped, flipped and normalized with the ImageNet mean and standard deviation into float32
  ``(3, crop, crop)``: the cost of a real image pipeline without a dataset on disk.
* ``mnist``: the MNIST images shipped with gpubench (``28 × 28`` uint8, already decoded),
  normalized with MNIST's mean and standard deviation into float32 ``(1, 28, 28)``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

#: ImageNet's per-channel mean and standard deviation (of pixel values scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: MNIST's mean and standard deviation (of pixel values scaled to [0, 1]).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: Classes of the synthetic image set (each image has a label drawn from the seed).
IMAGE_CLASSES = 10
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Plan:
    """What each stream position delivers: the image, and (images set) the crop window and the flip."""

    index: np.ndarray
    top: np.ndarray
    left: np.ndarray
    flip: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


def make_plan(seed: int, positions: int, count: int, stored: int, crop: int) -> Plan:
    """The first ``positions`` positions of the stream over ``count`` images (a permutation per pass)."""
    rng = np.random.default_rng([seed, 11])
    passes = -(-positions // count)
    index = np.concatenate([rng.permutation(count) for _ in range(passes)])[:positions].astype(np.int64)
    span = stored - crop + 1
    top = rng.integers(0, span, positions).astype(np.int64)
    left = rng.integers(0, span, positions).astype(np.int64)
    flip = rng.random(positions) < 0.5
    return Plan(index, top, left, flip)


def pillow():
    """Pillow's ``Image`` module; :class:`~gpubench.errors.Unavailable` (a skip naming the extra) without it."""
    try:
        from PIL import Image
    except ImportError as exc:
        from gpubench.errors import Unavailable

        raise Unavailable("input_pipeline: the picture set needs Pillow: pip install 'gpubench[pipeline]'") from exc
    return Image


def synthetic_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """One ``size × size`` RGB uint8 picture: a smooth colour field, a few shapes and fine texture."""
    Image = pillow()  # noqa: N806 - the module's own name

    coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(3):  # discs with hard edges: what makes JPEG work
        cy, cx, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(size // 10, size // 3))]
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        field[mask] = rng.integers(0, 256, 3)
    field += rng.normal(0.0, 6.0, field.shape)  # sensor-like texture
    return np.clip(field, 0, 255).astype(np.uint8)


def synthetic_images(seed: int, count: int, size: int, fmt: str) -> tuple[list[bytes], np.ndarray]:
    """``count`` encoded pictures (``jpeg`` or ``png``) and their labels, from ``seed``."""
    Image = pillow()  # noqa: N806 - the module's own name

    rng = np.random.default_rng([seed, 12])
    encoded = []
    for _ in range(count):
        buf = io.BytesIO()
        image = Image.fromarray(synthetic_image(rng, size))
        if fmt == "jpeg":
            image.save(buf, format="JPEG", quality=JPEG_QUALITY)
        else:
            image.save(buf, format="PNG")
        encoded.append(buf.getvalue())
    labels = rng.integers(0, IMAGE_CLASSES, count).astype(np.int64)
    return encoded, labels


def decode(data: bytes) -> np.ndarray:
    """An encoded picture as ``(H, W, 3)`` uint8 (Pillow's decoder)."""
    Image = pillow()  # noqa: N806 - the module's own name

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def augment_image(pixels: np.ndarray, top: int, left: int, flip: bool, crop: int,
                  dtype: type = np.float32) -> np.ndarray:
    """Crop, flip and normalize one ``(H, W, 3)`` uint8 picture into ``(3, crop, crop)`` of ``dtype``."""
    window = pixels[top:top + crop, left:left + crop]
    if flip:
        window = window[:, ::-1]
    x = window.astype(dtype) / dtype(255)
    x = (x - np.asarray(IMAGENET_MEAN, dtype=dtype)) / np.asarray(IMAGENET_STD, dtype=dtype)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def normalize_digit(pixels: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """One ``28 × 28`` uint8 digit as normalized ``(1, 28, 28)`` of ``dtype``."""
    x = pixels.astype(dtype) / dtype(255)
    return ((x - dtype(MNIST_MEAN)) / dtype(MNIST_STD))[None]


class PipelineDataset:
    """A map-style dataset over stream positions (what a torch ``DataLoader`` indexes).

    ``items`` holds the encoded pictures (``images``) or the uint8 digits (``mnist``). Item ``p``
    is ``(sample, label)``: the decoded, augmented, normalized float32 sample and its int64 label.
    Picklable and free of any framework, so the loader's worker processes can run it.
    """

    def __init__(self, dataset: str, items: list, labels: np.ndarray, plan: Plan, crop: int):
        self.dataset, self.items, self.labels, self.plan, self.crop = dataset, items, labels, plan, crop

    def __len__(self) -> int:
        return len(self.plan)

    def sample(self, p: int, dtype: type = np.float32) -> np.ndarray:
        """The sample at stream position ``p`` in ``dtype`` (float64 for the reference)."""
        i = int(self.plan.index[p])
        if self.dataset == "mnist":
            return normalize_digit(self.items[i], dtype)
        return augment_image(decode(self.items[i]), int(self.plan.top[p]), int(self.plan.left[p]),
                             bool(self.plan.flip[p]), self.crop, dtype)

    def __getitem__(self, p: int) -> tuple[np.ndarray, np.int64]:
        return self.sample(p), np.int64(self.labels[int(self.plan.index[p])])
