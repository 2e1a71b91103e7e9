"""Writing an output file whole or not at all, with the permissions the user asked for.

Every file gpubench writes for a user (``export -o``, ``report``, ``history``, ``compare --html``)
goes through :func:`write_text`:

* the text goes to a temporary file beside the target, which is renamed over the target only
  when every byte is written and flushed, so a reader never sees half a file;
* on any failure (a full disk, a file size limit, an interrupt) the temporary file is removed:
  nothing is left beside the target;
* a new file gets the mode an ordinary ``open(path, "w")`` would give it, ``0666`` less the
  process's umask (the temporary file is created with that mode, so the kernel applies the umask,
  with no read of the umask and no window with other permissions); a file that already exists
  keeps its mode, as it would when written in place.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from gpubench.errors import GpubenchError

#: Permissions of a new file before the umask, as ``open()`` and ``touch`` use.
NEW_FILE_MODE = 0o666


class OutputError(GpubenchError):
    """An output file that could not be written (one line: the path and the reason)."""


def _create_temporary(target: Path) -> tuple[int, Path]:
    """Create and open a fresh temporary file beside ``target`` (mode :data:`NEW_FILE_MODE`, less the umask)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
            return os.open(tmp, flags, NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))  # pragma: no cover


def write_bytes(path: str | os.PathLike[str], data: bytes, *, make_dirs: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see the module doc); return the absolute path written.

    Raises :class:`OutputError` (one line, naming the path) when the file cannot be written.
    """
    target = Path(path).absolute()
    tmp: Path | None = None
    try:
        if make_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(target)
        with os.fdopen(fd, "wb") as f:
            try:
                mode = stat.S_IMODE(os.stat(target).st_mode)
            except FileNotFoundError:
                mode = None
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return target


def write_text(path: str | os.PathLike[str], text: str, *, make_dirs: bool = True) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`write_bytes`); return the absolute path."""
    return write_bytes(path, text.encode("utf-8"), make_dirs=make_dirs)
