"""What the terminal tests share: a stream that says whether it is a terminal, and the cells of a printed table."""

from __future__ import annotations

import io
import re


class FakeStream(io.StringIO):
    """A text stream that answers ``isatty()`` as told and has no file descriptor (the width comes from $COLUMNS)."""

    def __init__(self, tty: bool = False):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        raise OSError("no terminal")


def table_cells(text: str) -> list[list[str]]:
    """The body cells of the first terminal table in ``text``, cut at the columns its rule line marks."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+( +-+)+", line))
    spans = [m.span() for m in re.finditer(r"-+", lines[rule])]
    body = []
    for line in lines[rule + 1:]:
        if not line.strip():
            break
        body.append([line[a:b].strip() for a, b in spans])
    return body
