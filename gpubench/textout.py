"""Text that leaves gpubench for a person or a spreadsheet: made safe at the output boundary.

Suite names, imported pytest node ids, plug-in backend and device names, error messages: much of
what gpubench prints comes from files other people wrote. Three rules apply where text leaves:

* **Terminals** (:func:`visible`, :class:`TerminalStream`): control characters (C0 and C1, DEL)
  and the invisible format characters that reorder or hide text (bidi overrides, zero-width
  characters, line and paragraph separators) are shown as escapes (``\\x1b``, ``\\u202e``), so a
  name cannot retitle the terminal, clear the screen, move the cursor or forge a line. Table cells
  escape newlines as well; a stream keeps its line breaks.
* **Encodings** (:func:`for_encoding`): where the output stream's encoding cannot carry a
  character (``LC_ALL=C``, ``PYTHONIOENCODING=ascii``), it is written in an ASCII form (``µs`` →
  ``us``, ``4096³`` → ``4096^3``, ``×`` → ``x``, ``–`` → ``-``) or, failing that, as a ``\\u``
  escape: output never fails with ``UnicodeEncodeError``. :func:`stdout_encoding` is the one
  place that knows which encoding that is.
* **Spreadsheets** (:func:`csv_cell`): a text cell that a spreadsheet would read as a formula
  (starting with ``=``, ``+``, ``-``, ``@``, tab, carriage return or line feed, as OWASP lists
  them) gets a leading ``'``; numbers stay numbers.

:func:`terminal_streams` installs :class:`TerminalStream` over ``sys.stdout`` and ``sys.stderr``
for the length of one CLI command; :func:`write_data` writes a data format (JSON, CSV) to
standard output unchanged.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

#: Characters shown as escapes: C0 controls, DEL, C1 controls, and format characters that hide or
#: reorder text (soft hyphen, Arabic letter mark, Mongolian vowel separator, zero-width and bidi
#: marks, line and paragraph separators, bidi embeddings, overrides and isolates, invisible operators,
#: byte-order mark, interlinear annotations, tag characters).
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    "\U000e0000-\U000e007f]")
#: The same, without the line feed (a stream keeps its line breaks).
_CONTROL_BUT_NEWLINE = re.compile(_CONTROL.pattern.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))

_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: Any, *, newlines: bool = False) -> str:
    """``text`` (``str()`` of it) with every control and invisible format character written as an escape.

    With ``newlines`` the line feed is kept (a stream of lines); otherwise it is escaped too (one
    table cell or one line of a header).
    """
    s = "" if text is None else str(text)
    pattern = _CONTROL_BUT_NEWLINE if newlines else _CONTROL
    return pattern.sub(_escape, s) if pattern.search(s) else s


#: ASCII forms of the characters gpubench itself prints, for streams that cannot carry them.
ASCII_FORMS = {
    "µ": "u", "μ": "u", "³": "^3", "²": "^2", "¹": "^1", "⁸": "^8", "⁹": "^9", "⁻": "^-", "ᵀ": "^T",
    "×": "x", "·": "*", "–": "-", "—": "--", "−": "-", "±": "+/-", "…": "...", "≥": ">=", "≤": "<=",
    "≈": "~", "→": "->", "←": "<-", "↔": "<->", "‖": "||", "√": "sqrt", "°": "deg", "§": "S",
    "“": '"', "”": '"', "‘": "'", "’": "'", "ε": "eps", "σ": "sigma", "Σ": "sum", "β": "beta",
    "∘": "o", "⋆": "*", "₁": "1", "₂": "2", "⚠": "!", "\u00a0": " ", "␛": "ESC",
}

_HANDLER = "gpubench.ascii"


def _fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: an unencodable character as its ASCII form, else as a backslash escape."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for ch in exc.object[exc.start:exc.end]:
        form = ASCII_FORMS.get(ch)
        if form is None:
            code = ord(ch)
            form = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        out.append(form)
    return "".join(out), exc.end


codecs.register_error(_HANDLER, _fallback)


def _codec(encoding: str | None) -> str:
    try:
        return codecs.lookup(encoding or "utf-8").name
    except LookupError:
        return "ascii"


def for_encoding(text: str, encoding: str | None) -> str:
    """``text`` as ``encoding`` can carry it: characters it cannot are replaced by ASCII forms (:data:`ASCII_FORMS`)
    or escapes. Unchanged for UTF encodings and for ASCII text."""
    codec = _codec(encoding)
    if text.isascii() or codec.startswith("utf"):
        return text
    return text.encode(codec, _HANDLER).decode(codec)


def stdout_encoding() -> str:
    """The encoding of standard output (what :func:`terminal_text` prepares table cells for)."""
    stream = sys.stdout
    return getattr(stream, "encoding", None) or "utf-8"


def terminal_formatter(encoding: str | None = None) -> Callable[[Any], str]:
    """A function making table cells safe for a terminal whose encoding is ``encoding`` (default: standard
    output's), as :func:`terminal_text` does; the encoding is looked up once, for tables of many cells."""
    codec = _codec(encoding or stdout_encoding())
    utf = codec.startswith("utf")

    def cell(value: Any) -> str:
        s = "" if value is None else str(value)
        if not s.isprintable():  # every character :data:`_CONTROL` escapes is one Python cannot print
            s = _CONTROL.sub(_escape, s)
        return s if utf or s.isascii() else s.encode(codec, _HANDLER).decode(codec)

    return cell


def terminal_text(text: Any) -> str:
    """One table cell or header value for the terminal: :func:`visible` (newlines escaped too), then in a form
    standard output's encoding carries. Tables apply it before measuring column widths, so columns stay aligned."""
    return terminal_formatter()(text)


class TerminalStream:
    """A text stream for people: what is written passes :func:`visible` (keeping line breaks) and
    :func:`for_encoding` for the wrapped stream's encoding.

    On a terminal, a carriage return that begins a write is kept: it is the progress line redrawing
    itself; one anywhere else came from data and is escaped. Everything else (``isatty``, ``fileno``,
    ``encoding``, ``flush``...) is the wrapped stream's.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._tty = isatty(stream)

    def write(self, text: str) -> int:
        """Write ``text`` made safe for a terminal; returns the length of ``text``."""
        head = "\r" if self._tty and text.startswith("\r") else ""
        safe = head + visible(text[len(head):], newlines=True)
        self.stream.write(for_encoding(safe, getattr(self.stream, "encoding", None)))
        return len(text)

    def writelines(self, lines) -> None:
        """Write each line as :meth:`write` does."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def raw_stream(stream: TextIO) -> TextIO:
    """The stream under a :class:`TerminalStream` (``stream`` itself otherwise)."""
    while isinstance(stream, TerminalStream):
        stream = stream.stream
    return stream


@contextlib.contextmanager
def terminal_streams() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` as :class:`TerminalStream` for the length of the block (one CLI command)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalStream(sys.stdout), TerminalStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def write_data(text: str, stream: TextIO | None = None) -> None:
    """Write a data format (JSON, CSV; UTF-8 text) to standard output unchanged, and flush it.

    On a terminal it is shown like any other output (:class:`TerminalStream`). Where the stream's
    encoding cannot carry the text, its bytes are written as UTF-8, which is what the formats are.
    A stream that cannot take the bytes (a full disk behind ``> file``, ``/dev/full``) is a one-line
    :class:`~gpubench.errors.GpubenchError`, and standard output is then pointed at the null
    device so that nothing fails again when the interpreter exits.
    """
    from gpubench.errors import GpubenchError

    raw = raw_stream(stream if stream is not None else sys.stdout)
    encoding = getattr(raw, "encoding", None)
    try:
        if isatty(raw):
            TerminalStream(raw).write(text)
        elif text.isascii() or _codec(encoding).startswith("utf"):
            raw.write(text)
        elif hasattr(raw, "buffer"):
            raw.flush()
            raw.buffer.write(text.encode("utf-8"))
        else:
            raw.write(for_encoding(text, encoding))
        raw.flush()
    except OSError as exc:
        _silence(raw)
        raise GpubenchError(f"cannot write the output: {exc.strerror or exc}") from exc


def isatty(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for a stream that cannot say, or is closed)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _silence(stream: TextIO) -> None:
    """Point the file descriptor behind ``stream`` at the null device, dropping what its buffer still holds."""
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list, plus the line feed
#: and the full-width forms some spreadsheets fold to the ASCII ones).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text starting with a formula character gets a leading ``'``
    (shown, not evaluated); numbers, booleans and other text are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (not JSON) replaced by None, keys included."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k) if isinstance(k, float) else k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: Any, **kw: Any) -> str:
    """``json.dumps(obj, **kw)`` that is always valid JSON: NaN and infinities (which stores may hold, such as the
    relative error of an output full of NaN) are written as ``null``, never as the bare ``NaN`` JSON lacks."""
    import json

    kw.setdefault("default", str)
    try:
        return json.dumps(obj, allow_nan=False, **kw)
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, **kw)
