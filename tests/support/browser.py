"""Debian's Chromium, headless, as the page tests use it (flags from the machine notes: no GPU, no
background networking on this closed network, a fresh profile per call)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

from support import ROOT

ARTIFACTS = ROOT / "artifacts" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def chromium() -> str:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is not installed (make test installs it when run as root)"
    return binary


def render(url: str, *, screenshot: str, size: tuple[int, int] = (1200, 2400)) -> str:
    """The DOM of ``url`` after Chromium rendered it; a screenshot is saved under artifacts/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        common = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]
        subprocess.run([*common, f"--screenshot={ARTIFACTS / screenshot}", url], capture_output=True, timeout=120,
                       check=True)
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    assert (ARTIFACTS / screenshot).stat().st_size > 0
    return dom.stdout


class DevToolsPage:
    """One Chromium tab driven over the DevTools protocol: what ``render`` cannot do (a session
    cookie, waiting for a script-rendered page, a full-page screenshot)."""

    def __init__(self, socket):
        self.socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, **params):
        request_id = next(self._ids)
        self.socket.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == request_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def open(self, url: str, *, cookies: dict[str, str] | None = None, wait_for: str = "true",
             timeout: float = 60) -> str:
        """Load ``url`` with ``cookies`` set for it; wait until the JavaScript ``wait_for`` is true;
        the DOM as the page then has it."""
        for name, value in (cookies or {}).items():
            self.call("Network.setCookie", name=name, value=value, url=url, httpOnly=True)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        expression = f"document.readyState === 'complete' && Boolean({wait_for})"
        while not self.call("Runtime.evaluate", expression=expression)["result"].get("value"):
            assert time.monotonic() < deadline, f"{url}: {wait_for} did not become true in {timeout} s"
            time.sleep(0.25)
        return self.call("Runtime.evaluate", expression="document.documentElement.outerHTML")["result"]["value"]

    def screenshot(self, name: str, *, selector: str | None = None) -> Path:
        """The whole page, or the element ``selector`` matches (its laid-out box), saved under
        artifacts/screenshots/."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        clip = {}
        if selector is not None:
            box = self.call("Runtime.evaluate", returnByValue=True, expression=(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect(); "
                "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height, scale: 1}; })()"
            ))["result"]["value"]
            assert box["width"] > 0 and box["height"] > 0, f"{selector}: not laid out"
            clip = {"clip": box}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, **clip)["data"]
        (ARTIFACTS / name).write_bytes(base64.b64decode(data))
        return ARTIFACTS / name


@contextlib.contextmanager
def devtools_page(size: tuple[int, int] = (1400, 1000)):
    """A ``DevToolsPage`` in a fresh headless Chromium, ended with the block."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
             "--remote-debugging-port=0", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                assert time.monotonic() < deadline and process.poll() is None, "Chromium did not start"
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                target = next(t for t in json.load(response) if t["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as socket:
                yield DevToolsPage(socket)
        finally:
            process.terminate()
            process.wait(timeout=30)
