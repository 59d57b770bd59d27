"""Browser tests: Python Playwright driving Debian's Chromium against the
live cloud (tests/live.py). Playwright's own browser downloads are never
used; there is no internet."""

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(browser, live_cloud):
    """Fresh browser contexts (own cookies) on the live cloud, closed after the test."""
    contexts = []

    def make(**options):
        context = browser.new_context(base_url=live_cloud.url, viewport={"width": 1440, "height": 900}, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
