"""Headless Chromium (Debian's package) driven by Playwright: no browser download."""
from __future__ import annotations

import contextlib
import os

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def open_page(url: str, width: int = 1500, height: int = 900, login: tuple[str, str] | None = None):
    """`url` in a fresh browser; `login`: the (user, password) the browser gives a basic-auth prompt."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            credentials = {"username": login[0], "password": login[1]} if login else None
            page = browser.new_page(viewport={"width": width, "height": height}, http_credentials=credentials)
            page.goto(url, wait_until="load", timeout=120_000)  # the UI polls: never network-idle
            yield page
        finally:
            browser.close()
