"""Helpers of the tests that start torch.distributed ranks: gloo's presence, and torchrun on one node."""

from __future__ import annotations

import socket
import sys

import pytest


def gloo_available() -> bool:
    """Whether torch with torch.distributed and its gloo backend is installed."""
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_gloo_available()


needs_gloo = pytest.mark.skipif(not gloo_available(), reason="torch with gloo not installed")


def free_port() -> int:
    """A TCP port nothing listens on now (for a rendezvous endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(rdzv_id: str, *args: str, ranks: int = 2) -> list[str]:
    """``torchrun`` on this node with ``ranks`` processes and the c10d rendezvous on localhost, running ``args``."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(ranks),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{free_port()}", "--rdzv-id", rdzv_id, *args]
