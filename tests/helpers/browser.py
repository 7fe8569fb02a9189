"""Headless Chromium for the web page's tests and benchmark: Debian's browser, never a downloaded one."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium() -> webdriver.Chrome:
    """Debian's chromium through its chromedriver, headless.

    Raises:
        RuntimeError: either is missing (Debian: apt-get install chromium chromium-driver).

    """
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise RuntimeError("the browser tests need Debian's chromium and chromium-driver; .ci/run installs them")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    # No background traffic: the machines this runs on have no internet, and Chromium's
    # update, sync and QUIC probes would only fail, many at a time.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700",
                "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic"):  # fmt: skip
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
    """Poll ``check`` until it returns something true (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
