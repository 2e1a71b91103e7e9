"""The inference models as ONNX files: exported once from gpubench's torch modules, then cached.

``torch.onnx.export`` with the ``torch.export``-based exporter (``dynamo=True``, the default and
the maintained one since torch 2.9; ``onnxscript`` translates the graph), the batch axis left
dynamic, so one file serves every batch size. Should it fail, the TorchScript-based exporter
(``dynamo=False``, ``dynamic_axes``) is tried. The file is made once per model, seed and dtype
(the weights rounded to the dtype, the module converted to it) at
``<cache>/onnx/<model>-seed<seed>-<dtype>-w<weights version>-e<EXPORT_VERSION>.onnx`` (the cache
of :mod:`gpubench.workloads.models.weights`), with a JSON file beside it saying which exporter
and which torch made it. Exporting needs torch; running the file needs only ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gpubench.errors import Unavailable
from gpubench.workloads.models import MODELS

#: Bumped when the export changes (old files are then never read again).
EXPORT_VERSION = 1
#: The opset asked of the exporters.
OPSET = 18
#: Batch of the example input the model is traced with (2, not 1: ``torch.export`` specializes sizes 0 and 1).
EXAMPLE_BATCH = 2


def onnx_path(model: str, seed: int, dtype: str) -> Path:
    """The cached ONNX file of ``model`` with the weights of ``seed`` in ``dtype``."""
    from gpubench.workloads.models.weights import WEIGHTS_VERSION, cache_dir

    return cache_dir() / "onnx" / f"{model}-seed{seed}-{dtype}-w{WEIGHTS_VERSION}-e{EXPORT_VERSION}.onnx"


def _example(torch, model: str, dtype):
    spec = MODELS[model]
    if spec.tokens:
        return torch.zeros((EXAMPLE_BATCH, *spec.input_shape), dtype=torch.int64)
    return torch.zeros((EXAMPLE_BATCH, *spec.input_shape), dtype=dtype)


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters print progress and log warnings (missing torchvision ops): keep them off the run's output."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_model(torch, model: str, weights: dict[str, np.ndarray], dtype: str, path: Path) -> dict[str, Any]:
    """Export ``model`` holding ``weights`` in ``dtype`` to ``path`` (written whole or not at all); what made it."""
    from gpubench.backends.torch_backend.inference_nets import build_net

    tdtype = getattr(torch, dtype)
    net = build_net(torch, model, weights).to(tdtype)
    x = _example(torch, model, tdtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    failures = []
    info: dict[str, Any] = {"torch": torch.__version__, "opset": OPSET, "export_version": EXPORT_VERSION}
    try:
        with _quiet():
            try:
                batch = torch.export.Dim("batch", min=1, max=65536)
                program = torch.onnx.export(net, (x,), dynamo=True, input_names=["x"], output_names=["y"],
                                            dynamic_shapes=({0: batch},), opset_version=OPSET)
                program.save(tmp, external_data=False)
                info["exporter"] = "torch.onnx.export(dynamo=True)"
            except Exception as exc:  # noqa: BLE001 - fall back to the TorchScript exporter, saying why
                failures.append(f"dynamo=True: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                torch.onnx.export(net, (x,), tmp, dynamo=False, input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=OPSET)
                info["exporter"] = "torch.onnx.export(dynamo=False)"
        if failures:
            info["exporter_failures"] = failures
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    meta = path.with_suffix(".json")
    with contextlib.suppress(OSError):
        meta.write_text(json.dumps(info, indent=1) + "\n")
    return info


def exported(model: str, seed: int, dtype: str, weights: dict[str, np.ndarray]) -> tuple[Path, dict[str, Any]]:
    """The ONNX file of the case's model (made now if the cache lacks it) and what made it.

    Raises :class:`Unavailable` when it must be made and torch is not installed.
    """
    path = onnx_path(model, seed, dtype)
    meta = path.with_suffix(".json")
    if path.exists() and path.stat().st_size > 0:
        try:
            return path, {**json.loads(meta.read_text()), "cached": True}
        except (OSError, ValueError):
            return path, {"cached": True}
    try:
        import torch
    except ImportError as exc:
        raise Unavailable("onnxruntime: exporting the model to ONNX needs torch, which is not installed — "
                          "pip install 'gpubench[torch]' (once exported, the file is cached)") from exc
    return path, {**export_model(torch, model, weights, dtype, path), "cached": False}
