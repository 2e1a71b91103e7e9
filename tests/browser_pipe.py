"""Headless Chromium driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``): no network,
no WebSocket library. Used by the tests that look inside a report shown in an ``<iframe srcdoc>``, which
``--dump-dom`` cannot see into.

    with Browser(width=1300, height=2000) as b:
        b.open(Path("page.html").as_uri())
        frame = b.wait_for_frame(lambda ctx: b.evaluate("location.href", ctx) == "about:srcdoc")
        b.evaluate("document.body.dataset.plotsRendered", frame)
        png = b.screenshot()

Frames stay in the page's process (``--disable-site-isolation-trials``), so every frame's script context,
sandboxed or not, is one :meth:`Browser.contexts` away. Console messages and exceptions are kept in
:attr:`Browser.console`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class BrowserUnavailable(RuntimeError):
    """This Chromium cannot be driven over a pipe (a sandboxed package may not pass it the descriptors)."""


class Browser:
    """One headless Chromium with one page; :meth:`call` sends a DevTools command to it."""

    def __init__(self, width: int = 1300, height: int = 2000):
        self.width, self.height = width, height
        self.console: list[str] = []
        self._contexts: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._next = 0
        self._buffer = b""

    def __enter__(self) -> Browser:
        assert CHROMIUM, "Chromium is not installed"
        self._profile = tempfile.mkdtemp(prefix="gpubench-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        def fds() -> None:  # the protocol's pipes are the child's descriptors 3 (commands) and 4 (replies)
            import fcntl

            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]  # out of 3 and 4's way
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
             "--hide-scrollbars", "--disable-site-isolation-trials", f"--user-data-dir={self._profile}",
             "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--remote-debugging-pipe",
             f"--window-size={self.width},{self.height}", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._out, self._in = to_child_w, from_child_r
        try:
            targets = self.call("Target.getTargets", session=False, timeout=30)["targetInfos"]
        except (EOFError, TimeoutError) as exc:
            self.__exit__()
            raise BrowserUnavailable(f"{CHROMIUM} does not answer the DevTools protocol on a pipe ({exc})") from exc
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:  # noqa: BLE001 - closing is best effort; the process is killed below
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        os.close(self._in)
        shutil.rmtree(self._profile, ignore_errors=True)

    # --- the protocol ---

    def _read(self, timeout: float) -> dict[str, Any]:
        import select

        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError("Chromium exited")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params") or {}
        if method == "Runtime.executionContextCreated":
            ctx = params["context"]
            self._contexts[ctx["id"]] = ctx
        elif method == "Runtime.executionContextDestroyed":
            self._contexts.pop(params["executionContextId"], None)
        elif method == "Runtime.executionContextsCleared":
            self._contexts.clear()
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            self.console.append(str(params["exceptionDetails"].get("exception", {}).get("description")
                                    or params["exceptionDetails"].get("text")))
        self._events.append(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True,
             timeout: float = 60) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are recorded)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def pump(self, seconds: float) -> None:
        """Let the page run for ``seconds``, recording the events it sends."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._event(self._read(max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                return

    # --- what the tests use ---

    def open(self, url: str, settle: float = 0.5) -> None:
        """Load ``url`` and wait for its load event."""
        self._events.clear()
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            self.pump(0.2)
        self.pump(settle)

    def contexts(self) -> list[dict[str, Any]]:
        """The pages' script contexts (the main frame's and every frame's default one)."""
        return [c for c in self._contexts.values() if (c.get("auxData") or {}).get("isDefault")]

    def evaluate(self, expression: str, context: int | None = None) -> Any:
        """The value of ``expression`` in a script context (default: the main frame's)."""
        params: dict[str, Any] = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if context is not None:
            params["contextId"] = context
        result = self.call("Runtime.evaluate", params)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for_frame(self, wanted: Callable[[int], bool], timeout: float = 60) -> int:
        """The first frame context for which ``wanted(context id)`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ctx in self.contexts():
                try:
                    if wanted(ctx["id"]):
                        return ctx["id"]
                except RuntimeError:
                    continue
            self.pump(0.2)
        raise TimeoutError("no such frame")

    def wait_until(self, expression: str, context: int | None = None, timeout: float = 60) -> Any:
        """Wait until ``expression`` is truthy in a context; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression, context)
            if value:
                return value
            self.pump(0.2)
        raise TimeoutError(f"never true: {expression}")

    def click(self, x: float, y: float) -> None:
        """A real left click at page coordinates (x, y) of the viewport."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                   "clickCount": 1})

    def screenshot(self, clip: tuple[float, float, float, float] | None = None) -> bytes:
        """A PNG of the viewport (or of ``clip``: x, y, width, height in page coordinates)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = {"x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
