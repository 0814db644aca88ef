"""How fast the operator console paints, in Debian's headless Chromium, against the running system.

Starts the whole system as a user does (``marketing_agents.cli run``) with a few hundred leads, then in
each of ``--rounds`` rounds, with the browser's cache cleared each time:

- the anchor: ``GET /healthz`` from the same gateway, as a page (Chromium shows the JSON as text): the
  first contentful paint of the smallest page this server can send, so the ratio is what the console
  costs over the server and the browser themselves;
- the console's first page (``/console/``, the sign-in form): its first contentful paint;
- the leads page of a signed-in tab (``/console/#/leads``, the key in sessionStorage as after sign-in):
  the time from navigation until the first page of leads from ``GET /api/v1/leads`` is on screen
  (polled every 5 ms, so an upper bound).

Figures are medians over the rounds. Targets: the console's first page paints within 1 s, and the
signed-in leads page shows its leads within 1 s. Writes results/bench_console.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench_leads import System
from common import target, write_result

POLL_S = 0.005
FCP = "return (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"


def seed(api_url: str, key: str, count: int) -> None:
    import httpx

    from marketing_agents.demo import demo_leads

    leads = demo_leads(count, seed=5)
    with httpx.Client(base_url=api_url, timeout=120, headers={"Authorization": f"Bearer {key}"}) as client:
        client.post("/api/v1/leads:batch", json={"leads": leads}).raise_for_status()


def painted(driver, url: str) -> float:
    """Milliseconds to the first contentful paint of ``url``, loaded with an empty cache."""
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(url)
    deadline = time.monotonic() + 10
    while (fcp := driver.execute_script(FCP)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} never painted")
        time.sleep(POLL_S)
    return float(fcp)


def leads_shown(driver, console: str, key: str) -> float:
    """Milliseconds from navigating to a signed-in tab's leads page until its first leads are on screen."""
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(console)
    who = driver.execute_script(
        "const r = await fetch(arguments[0], {headers: {Authorization: 'Bearer ' + arguments[1]}}); return await r.text()",
        console.split("/console/")[0] + "/api/v1/me", key)
    driver.execute_script("sessionStorage.setItem('mas.console.key', arguments[0]);"
                          "sessionStorage.setItem('mas.console.who', arguments[1])", key, who)
    driver.get("about:blank")
    driver.get(console + "#/leads")
    deadline = time.monotonic() + 10
    while not driver.execute_script("return document.querySelectorAll('main table tbody tr td a').length > 0"):
        if time.monotonic() > deadline:
            raise RuntimeError("the leads page showed no leads")
        time.sleep(POLL_S)
    return float(driver.execute_script("return performance.now()"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="page loads of each kind (default 15)")
    parser.add_argument("--leads", type=int, default=300, help="leads stored before measuring (default 300)")
    args = parser.parse_args()

    from scripts.screenshots import start_chromium

    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        system = System(Path(tmp) / "run")
        system.data_dir.mkdir()
        print(f"starting the system ... ({system.start():.0f} s)")
        try:
            seed(system.url, system.admin_key, args.leads)
            driver = start_chromium(str(Path(tmp) / "chromium"))
            try:
                anchor, first_page, leads = [], [], []
                for n in range(args.rounds):
                    anchor.append(painted(driver, f"{system.url}/healthz"))
                    first_page.append(painted(driver, f"{system.url}/console/"))
                    leads.append(leads_shown(driver, f"{system.url}/console/", system.admin_key))
                    print(f"  round {n + 1}/{args.rounds}: anchor {anchor[-1]:.0f} ms, console {first_page[-1]:.0f} ms, "
                          f"leads page {leads[-1]:.0f} ms")
            finally:
                driver.quit()
        finally:
            system.stop()

    figures = {"rounds": args.rounds, "leads_stored": args.leads,
               "anchor_healthz_fcp_ms": statistics.median(anchor),
               "console_first_page_fcp_ms": statistics.median(first_page),
               "console_leads_page_ms": statistics.median(leads)}
    figures["console_first_page_ratio"] = figures["console_first_page_fcp_ms"] / figures["anchor_healthz_fcp_ms"]
    figures["console_leads_page_ratio"] = figures["console_leads_page_ms"] / figures["anchor_healthz_fcp_ms"]
    for name, value in figures.items():
        print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}")
    targets = {
        "first_page": target("the console's first page paints within (ms)", figures["console_first_page_fcp_ms"],
                             1000, at_least=False),
        "leads_page": target("a signed-in leads page shows its leads within (ms)", figures["console_leads_page_ms"],
                             1000, at_least=False),
    }
    write_result("bench_console", figures, targets)


if __name__ == "__main__":
    main()
