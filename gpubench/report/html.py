"""Safe HTML building blocks shared by ``gpubench report`` and ``gpubench compare --html``.

Everything that comes from results, plug-ins or the environment is untrusted text: it goes
into HTML through :func:`esc`, into ``<script>`` blocks through :func:`script_json` (which
escapes ``<``, ``>`` and ``&`` so no string can close the block), into Plotly labels through
:func:`plot_text` (Plotly renders a subset of HTML in labels), and into the sortable table
through ``textContent`` on the page. The page also carries a Content-Security-Policy that
allows only its own inline scripts (by hash) and no network access at all, so even a string
that slipped through could neither run script nor fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from gpubench.textout import json_text

_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def plot_text(value: Any) -> str:
    """Text for a Plotly label: HTML-escaped, because Plotly interprets tags and entities in labels."""
    return html.escape("" if value is None else str(value), quote=False)


def script_json(obj: Any) -> str:
    """JSON safe to place inside a ``<script>`` element (``</script>`` cannot appear in it; NaN and infinities
    are ``null``, :func:`gpubench.textout.json_text`)."""
    text = json_text(obj, separators=(",", ":"))
    for ch, rep in _SCRIPT_ESCAPES.items():
        text = text.replace(ch, rep)
    return text


def csp_hash(script: str) -> str:
    """The CSP source expression (``'sha256-…'``) allowing exactly this inline script."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def csp_meta(scripts: list[str]) -> str:
    """A ``<meta>`` Content-Security-Policy: these inline scripts only, inline styles, no network."""
    hashes = " ".join(csp_hash(s) for s in scripts)
    policy = (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
              "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")
    return f'<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">'


def table(headers: list[str], rows: list[list[Any]], cls: str = "kv") -> str:
    """A static HTML table; every cell is escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def iframe(document: str, *, height: int = 720, title: str = "gpubench report", scripts: bool = True) -> str:
    """A whole HTML page shown inside another one (a notebook's output): an ``<iframe>`` whose ``srcdoc`` holds
    ``document``, escaped as an attribute value.

    The page keeps its own styles, scripts and Content-Security-Policy (an ``about:srcdoc`` page runs the inline
    scripts its policy allows by hash, as from disk) and needs no network and no file. It runs sandboxed, in an
    origin of its own: ``scripts`` allows its scripts (and Plotly's image downloads), nothing else — no forms, no
    pop-ups, no navigating the notebook, no access to the notebook's page.
    """
    sandbox = "allow-scripts allow-downloads" if scripts else ""
    return (f'<iframe srcdoc="{html.escape(document, quote=True)}" sandbox="{sandbox}" title="{esc(title)}" '
            f'style="width:100%;height:{int(height)}px;border:1px solid #dde3e8;border-radius:6px"></iframe>')
