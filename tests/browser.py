"""A real headless Chromium driven by Selenium, for the web page tests.

Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs them); the system
chromedriver is passed to Selenium, so Selenium Manager never downloads anything. Elements are
found the way a user (or a screen reader) finds them: by their accessible name.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("SIGHTLINE_SCREENSHOTS") or Path(__file__).resolve().parent / ".tmp" / "screenshots")


def chromium_available() -> bool:
    return os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)


def make_driver(profile: Path, width: int = 1280, height: int = 800):
    if not chromium_available():
        if os.environ.get("CI"):
            raise RuntimeError("chromium and chromium-driver are not installed (.ci/run installs them)")
        pytest.skip("chromium / chromium-driver are not installed here")
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    # The viewport itself is 1280×800 (a laptop screen), whatever headless reserves for window chrome.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    return driver


class Page:
    """The page under test, with lookups by accessible name and a screenshot helper."""

    def __init__(self, driver, shots: Path = SCREENSHOTS):
        self.driver = driver
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def control(self, name: str):
        """The visible control whose label (``<label for>``, wrapping label or aria-label) is ``name``;
        its computed accessible name is checked too."""
        found = self.js("""
            const name = arguments[0];
            const visible = (el) => el && el.getClientRects().length > 0;
            for (const label of document.querySelectorAll('label')) {
              if (label.textContent.trim() !== name) continue;
              const el = label.htmlFor ? document.getElementById(label.htmlFor) : label.querySelector('input,select,textarea');
              if (visible(el)) return el;
            }
            for (const el of document.querySelectorAll('[aria-label]')) {
              if (el.getAttribute('aria-label') === name && visible(el)) return el;
            }
            for (const el of document.querySelectorAll('button, [role=tab]')) {
              if (el.textContent.trim() === name && visible(el)) return el;
            }
            return null;""", name)
        assert found is not None, f"no visible control named {name!r}"
        assert found.accessible_name.strip() == name, (name, found.accessible_name)
        return found

    def tab(self, name: str):
        """The section tab called ``name`` (a tab and a field may share a name: "Search", "People")."""
        for tab in self.driver.find_elements("css selector", "[role=tab]"):
            if tab.accessible_name.strip() == name:
                return tab
        raise AssertionError(f"no tab named {name!r}")

    def wait(self, condition, timeout: float = 60, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; page status: {self.statuses()}\n{self.console()}")

    def statuses(self) -> dict:
        return self.js("return Object.fromEntries([...document.querySelectorAll('[role=status]')]"
                       ".map(e => [e.id, e.textContent]))")

    def console(self) -> str:
        try:
            return "\n".join(f"{e['level']}: {e['message']}" for e in self.driver.get_log("browser"))
        except Exception:  # noqa: BLE001 - logs are a diagnostic only
            return ""

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


def cleanup(profile: Path) -> None:
    shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def open_page(base_url: str, profile: Path) -> Iterator[Page]:
    """A fresh Chromium on the server's page, started; closed (and its profile removed) after."""
    driver = make_driver(profile)
    try:
        driver.get(base_url + "/")
        ui = Page(driver)
        ui.wait(lambda: ui.js("return document.body.dataset.ready"), 30, "the page to start")
        yield ui
    finally:
        driver.quit()
        cleanup(profile)
