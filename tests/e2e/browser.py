"""Headless Chromium driven over the DevTools protocol on a pipe: open a page, read it, click
at an element's place with the mouse, take a screenshot. No library beyond Chromium itself."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 60.0


class ChromiumError(Exception):
    """Chromium refused a command."""


class Browser:
    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()
        # Chromium reads commands on fd 3 and answers on fd 4; its ends are moved above 9
        # first, so that neither is 3 or 4 already when the shell puts them there.
        to_chrome, from_chrome = _high(to_chrome), _high(from_chrome)
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1280,900",
        ]  # fmt: skip
        script = f'exec "$0" "$@" 3<&{to_chrome} 4>&{from_chrome}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, CHROMIUM, *flags, "about:blank"],
            pass_fds=(to_chrome, from_chrome),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._next = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session: str = attached["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:  # fmt: skip
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            while b"\0" in self._buffer:
                raw, _, self._buffer = self._buffer.partition(b"\0")
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise ChromiumError(f"{method}: {reply['error']}")
                    result: dict[str, Any] = reply["result"]
                    return result
            left = deadline - time.monotonic()
            assert left > 0, f"Chromium did not answer {method}"
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 16)
                assert chunk, "Chromium closed its pipe"
                self._buffer += chunk

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        reply = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return reply["result"].get("value")

    def open(self, url: str) -> None:
        self.page("Page.navigate", {"url": url})
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def wait_for(self, condition: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self._holds(condition):
            assert time.monotonic() < deadline, f"the page never had {condition}"
            time.sleep(0.05)

    def _holds(self, condition: str) -> bool:
        try:
            return bool(self.evaluate(f"(() => {{ try {{ return !!({condition}); }} "
                                      "catch (e) { return false; } })()"))  # fmt: skip
        except ChromiumError:
            return False  # the page was between two documents

    def text(self, selector: str) -> str:
        value = self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent")
        return value if isinstance(value, str) else ""

    def click(self, selector: str) -> None:
        """A left click with the mouse at the middle of the element, as a person would."""
        where = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = where
        for kind in ("mousePressed", "mouseReleased"):
            event = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            self.page("Input.dispatchMouseEvent", event)

    def screenshot(self, path: Path) -> None:
        data = self.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        with contextlib.suppress(AssertionError, BrokenPipeError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._out)
        os.close(self._in)


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved
