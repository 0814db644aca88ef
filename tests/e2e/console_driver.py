"""The operator console as its browser tests use it: a real headless Chromium, signed in as a person would.

Every wait is a WebDriverWait on what the page shows; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 30


class Console:
    def __init__(self, driver: WebDriver, api_url: str) -> None:
        self.driver = driver
        self.url = api_url.rstrip("/") + "/console/"

    # -- waiting --------------------------------------------------------------------------------------

    def wait(self, condition: Callable[[WebDriver], Any], timeout_s: float = WAIT_S, message: str = "") -> Any:
        return WebDriverWait(self.driver, timeout_s, ignored_exceptions=(StaleElementReferenceException,)).until(
            condition, message)

    def element(self, selector: str, timeout_s: float = WAIT_S) -> WebElement:
        return self.wait(ec.presence_of_element_located((By.CSS_SELECTOR, selector)), timeout_s,
                         f"nothing matches {selector!r} on {self.driver.current_url}")

    def visible(self, selector: str, timeout_s: float = WAIT_S) -> WebElement:
        return self.wait(ec.visibility_of_element_located((By.CSS_SELECTOR, selector)), timeout_s,
                         f"nothing visible matches {selector!r} on {self.driver.current_url}")

    def text_in(self, selector: str, text: str, timeout_s: float = WAIT_S) -> WebElement:
        self.wait(ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text), timeout_s,
                  f"{selector!r} never showed {text!r} on {self.driver.current_url}")
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def click(self, selector: str) -> None:
        self.wait(ec.element_to_be_clickable((By.CSS_SELECTOR, selector)), WAIT_S,
                  f"{selector!r} is not clickable on {self.driver.current_url}").click()

    # -- moving around --------------------------------------------------------------------------------

    def open(self) -> None:
        """The console's page, signed out: a fresh tab state (sessionStorage of this origin cleared)."""
        self.driver.get(self.url)
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(self.url)
        self.visible("#api-key")

    def sign_in(self, key: str) -> None:
        self.open()
        field = self.driver.find_element(By.ID, "api-key")
        field.send_keys(key)
        self.driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()

    def signed_in(self, key: str) -> str:
        """Signs in and waits for the console; returns the role it shows."""
        self.sign_in(key)
        return self.visible("#who .role").text

    def go(self, route: str) -> None:
        """A page by its hash route, e.g. ``#/models``: as following a link in the console does."""
        self.driver.execute_script("location.hash = arguments[0]", route)

    def storage(self) -> dict[str, Any]:
        return self.driver.execute_script(
            "return {session: {...sessionStorage}, local: {...localStorage}, cookies: document.cookie,"
            " resources: performance.getEntriesByType('resource').map(e => e.name)}")
