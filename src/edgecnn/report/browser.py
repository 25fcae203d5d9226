"""Render an HTML file in headless Chromium and report what a reader would see.

Talks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (the browser reads
NUL-terminated JSON messages on fd 3 and writes on fd 4), so no websocket library is needed.
:func:`check_rendering` loads the page offline and returns every ``<img>``'s natural size, the
console errors and uncaught exceptions, every network request other than the page itself and
``data:`` URLs, and a PNG screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--remote-debugging-pipe",
)


@dataclass
class RenderCheck:
    """What the page did in the browser."""

    title: str
    images: list[dict[str, Any]]  # {"alt", "width", "height"} natural sizes in pixels
    console_errors: list[str]
    network_requests: list[str]
    screenshot_png: bytes = field(repr=False, default=b"")
    script_result: Any = None  # JSON value returned by the optional ``script``

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not (i["width"] > 0 and i["height"] > 0)]


def find_chromium() -> str:
    """Path of a Chromium/Chrome binary, or a clear error saying how to install one."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise EdgecnnError("no Chromium found: install it (Debian: apt-get install -y chromium)")


class _Pipe:
    def __init__(self, proc: subprocess.Popen, wfd: int, rfd: int) -> None:
        self.proc, self.wfd, self.rfd = proc, wfd, rfd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def _read_one(self, deadline: float) -> dict | None:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                raise EdgecnnError("Chromium closed the DevTools pipe unexpectedly")
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        return json.loads(raw)

    def call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 20,
    ) -> dict:
        mid = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_one(deadline)
            if msg is None:
                raise EdgecnnError(f"Chromium did not answer {method} within {timeout:.0f} s")
            if msg.get("id") == mid:
                if "error" in msg:
                    raise EdgecnnError(f"Chromium refused {method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> bool:
        if any(e["method"] == method for e in self.events):
            return True
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_one(deadline)
            if msg is None:
                return False
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return True

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (msg := self._read_one(deadline)) is not None:
            if "method" in msg:
                self.events.append(msg)


def check_rendering(
    html_path: str | os.PathLike[str],
    chromium: str | None = None,
    width: int = 1280,
    height: int = 2000,
    timeout_s: float = 30.0,
    script: str | None = None,
) -> RenderCheck:
    """Load ``html_path`` in headless Chromium and collect images, errors, requests, a screenshot.

    ``script`` is an optional JavaScript expression evaluated after loading (before the
    screenshot); its JSON-serialisable value is returned in ``script_result``.
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise EdgecnnError(f"HTML file '{page}' does not exist")
    exe = chromium or find_chromium()
    url = page.as_uri()
    with tempfile.TemporaryDirectory(prefix="edgecnn-chromium-") as profile:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        def wire_fds() -> None:  # runs in the child before exec: fd 3 = its input, fd 4 = output
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        proc = subprocess.Popen(
            [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=wire_fds,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        pipe = _Pipe(proc, to_child_w, from_child_r)
        try:
            return _inspect(pipe, url, width, height, timeout_s, script)
        finally:
            try:
                pipe.send("Browser.close")
            except OSError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)


def _inspect(
    pipe: _Pipe, url: str, width: int, height: int, timeout_s: float, script: str | None
) -> RenderCheck:
    targets = pipe.call("Target.getTargets", timeout=timeout_s)["targetInfos"]
    pages = [t for t in targets if t.get("type") == "page"]
    target = (
        pages[0]["targetId"]
        if pages
        else pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    )
    sid = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.call(f"{domain}.enable", session=sid)
    pipe.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=sid,
    )
    pipe.events.clear()
    pipe.call("Page.navigate", {"url": url}, session=sid)
    if not pipe.wait_event("Page.loadEventFired", timeout_s):
        raise EdgecnnError(f"the page did not finish loading within {timeout_s:.0f} s")
    pipe.drain(0.3)
    expr = (
        "JSON.stringify({title: document.title, images: Array.from(document.images).map("
        "i => ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight, complete: i.complete}))})"
    )
    res = pipe.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=sid)
    info = json.loads(res["result"]["value"])
    script_result = None
    if script is not None:
        out = pipe.call(
            "Runtime.evaluate", {"expression": script, "returnByValue": True}, session=sid
        )
        if "exceptionDetails" in out:
            raise EdgecnnError(f"script failed in the page: {out['exceptionDetails'].get('text')}")
        script_result = out["result"].get("value")
    shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session=sid, timeout=timeout_s)
    errors: list[str] = []
    requests: list[str] = []
    for e in pipe.events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            )
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            errors.append(str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append(str(p["entry"].get("text")))
        elif m == "Network.requestWillBeSent":
            u = p.get("request", {}).get("url", "")
            if u != url and not u.startswith("data:"):
                requests.append(u)
    return RenderCheck(
        title=info["title"],
        images=[{k: i[k] for k in ("alt", "width", "height")} for i in info["images"]],
        console_errors=errors,
        network_requests=requests,
        screenshot_png=base64.b64decode(shot["data"]),
        script_result=script_result,
    )
