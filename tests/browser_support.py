"""Headless Chromium for the browser tests and screenshots: Debian's build, driven by Playwright.

Playwright never downloads a browser here (`playwright install` is not allowed); it drives
/usr/bin/chromium, or $ATLAS_CHROMIUM.
"""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright):  # noqa: ANN001, ANN201 - Playwright objects
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
