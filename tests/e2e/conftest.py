"""Browser fixtures: Debian's chromium driven by Playwright against pytest-django's live server.

`playwright install` cannot download browsers here, so the system chromium is launched by path.
Without it the browser tests skip, or fail when REQUIRE_SERVICES=1 (CI), like the service tests.

Every page records console errors and warnings, uncaught exceptions and CSP violations (an init
script reports `securitypolicyviolation` events to the console), and the tests assert that none
happened: a CSP that blocks one of our own scripts or styles breaks the page silently otherwise.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import _unavailable

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
VIEWPORT = {"width": 1400, "height": 900}
STATIC_SCRIPTS = ("/static/django_htmx/htmx-2.min.js", "/static/js/app.js")

# Runs before any page script; CDP-injected, so the page's CSP does not apply to it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " +
                (event.blockedURI || "inline") + " at " + event.sourceFile + ":" +
                event.lineNumber);
});
"""


@dataclass
class BrowserPage:
    """A page plus what it logged; `problems` must stay empty unless a test expects an entry."""

    page: object
    base_url: str
    problems: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def screenshot(self, name: str) -> Path:
        # caret="initial": hiding the caret injects an inline <style>, which our CSP blocks.
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), caret="initial")
        return path

    def log_in(self, username: str, password: str) -> None:
        self.goto("/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(self.base_url + "/")


@pytest.fixture(scope="module")
def chromium():
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("needs Debian's chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API leaves its asyncio loop marked as running in this thread, which
    # Django's async-safety check takes for an async context; the test code around it is plain
    # synchronous code. Allowed only while the browser runs, not for the rest of the suite.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_server):
    ARTIFACTS.mkdir(exist_ok=True)
    context = chromium.new_context(viewport=VIEWPORT)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(5000)
    recorded = BrowserPage(page=page, base_url=live_server.url)

    def on_console(message):
        if message.type in ("error", "warning"):
            recorded.problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: recorded.problems.append(f"page error: {error}"))
    page.on(
        "response",
        # The first answer per URL: a later reload may rightly answer 304 from the cache.
        lambda response: recorded.statuses.setdefault(
            response.url.removeprefix(live_server.url), response.status
        ),
    )
    yield recorded
    context.close()
