"""Debian's Chromium, headless, as the page tests use it (flags from the machine notes: no GPU, no
background networking on this closed network, a fresh profile per call)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def chromium() -> str:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is not installed (make test installs it when run as root)"
    return binary


def render(url: str, *, screenshot: str, size: tuple[int, int] = (1200, 2400)) -> str:
    """The DOM of ``url`` after Chromium rendered it; a screenshot is saved under artifacts/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        common = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"]
        subprocess.run([*common, f"--screenshot={ARTIFACTS / screenshot}", url], capture_output=True, timeout=120,
                       check=True)
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    assert (ARTIFACTS / screenshot).stat().st_size > 0
    return dom.stdout
