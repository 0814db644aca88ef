"""Screenshots of the operator console, for the README: headless Chromium through Selenium.

    python scripts/screenshots.py --url http://127.0.0.1:8080 [--key KEY] [--out docs/console]

Against a running system (``make run``: its demo data holds leads and campaigns, though no campaign
metrics, so a campaign's charts need some posted first). The key is an admin key, from ``--key`` or
``MAS_ADMIN_API_KEY``. One PNG each of: the sign-in page, the leads list with the live flow, a lead
(``--lead``, by default the newest engaged one), a review queue with a lead under review, a campaign
with its charts (``--campaign``, by default the demo's first), the models with the gains chart, and
the system status.

Only Debian's ``chromium`` and ``chromedriver`` are used (``/usr/bin``); Selenium never downloads a
browser or a driver. ``start_chromium`` is also how the console's browser tests start theirs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from marketing_agents.demo import DEMO_CAMPAIGNS

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1400, 1000)
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)
WAIT_S = 30
MAX_HEIGHT = 3200


def start_chromium(user_data_dir: str) -> WebDriver:
    """Headless Chromium with a profile of its own (``user_data_dir``, fresh: no state from another run)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    # Both paths given: Selenium Manager, which would fetch a browser or driver, is never asked.
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def shoot(driver: WebDriver, out: Path, name: str, ready: Callable[[WebDriver], object], whole: bool = False) -> Path:
    """Waits until ``ready`` holds, then saves the window, or with ``whole`` the whole page (up to MAX_HEIGHT)."""
    WebDriverWait(driver, WAIT_S).until(ready)
    if whole:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WINDOW[0], min(max(height + 100, WINDOW[1]), MAX_HEIGHT))
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(*WINDOW)
    return path


def css(selector: str) -> Callable[[WebDriver], object]:
    return ec.presence_of_element_located((By.CSS_SELECTOR, selector))


def first_link(driver: WebDriver, selector: str) -> str:
    """The hash of the first link the selector finds, once there is one."""
    link = WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))
    return link.get_attribute("href").split("#", 1)[1]


def take(driver: WebDriver, url: str, key: str, campaign: str, lead: str | None, out: Path) -> list[Path]:
    console = url.rstrip("/") + "/console/"
    go = lambda route: driver.execute_script("location.hash = arguments[0]", route)  # noqa: E731
    taken = []

    driver.get(console)
    taken.append(shoot(driver, out, "sign-in", css("#api-key")))
    driver.find_element(By.ID, "api-key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    WebDriverWait(driver, WAIT_S).until(ec.visibility_of_element_located((By.ID, "who")))

    go("#/leads")
    taken.append(shoot(driver, out, "leads-and-live-flow", css("#lead-results tbody a[data-lead-id]")))

    if lead is None:
        go("#/leads?status=engaged")  # a lead with a plan
        go("#" + first_link(driver, "#lead-results tbody a[data-lead-id]"))
    else:
        go(f"#/leads/{lead}")
    taken.append(shoot(driver, out, "lead", css("#timeline-h"), whole=True))

    go("#/reviews")
    WebDriverWait(driver, WAIT_S).until(css(".view tbody a[href^='#/reviews/']"))
    # The queue with the most leads waiting, one of them open for review.
    busiest = driver.execute_script(
        "const rows = [...document.querySelectorAll('.view tbody tr')].filter(r => Number(r.cells[1].textContent) > 0);"
        "rows.sort((a, b) => Number(b.cells[1].textContent) - Number(a.cells[1].textContent));"
        "return rows.length ? rows[0].querySelector('a').getAttribute('href') : null;")
    if busiest:
        go(busiest)
        WebDriverWait(driver, WAIT_S).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.open-review"))).click()
    taken.append(shoot(driver, out, "review-queues", css(".review-panel" if busiest else ".view tbody tr"), whole=True))

    go(f"#/campaigns/{campaign}")
    taken.append(shoot(driver, out, "campaign", css("#optimizations-h"), whole=True))

    go("#/models")
    taken.append(shoot(driver, out, "models", css(".view figure svg"), whole=True))

    go("#/system")
    taken.append(shoot(driver, out, "system-status", css("#main h2 + .table-wrap tbody tr"), whole=True))
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the operator console (PNG) from a running system.")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the API's root URL (default: %(default)s)")
    parser.add_argument("--key", default=os.environ.get("MAS_ADMIN_API_KEY"),
                        help="an admin API key (default: $MAS_ADMIN_API_KEY)")
    parser.add_argument("--campaign", default=str(DEMO_CAMPAIGNS[0].id),
                        help="the campaign to show (default: the demo's %(default)s)")
    parser.add_argument("--lead", help="the lead to show (default: the newest engaged one)")
    parser.add_argument("--out", type=Path, default=Path("docs/console"), help="where the PNGs go (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("no API key: pass --key or set MAS_ADMIN_API_KEY")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as profile:
        driver = start_chromium(profile)
        try:
            for path in take(driver, args.url, args.key, args.campaign, args.lead, args.out):
                print(path)
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
