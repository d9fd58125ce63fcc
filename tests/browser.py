"""The browser tests' tools: Debian's chromium driven by Playwright (one browser per test module, a
fresh context, so fresh cookies, per visitor), every request to another host aborted, every console
error or CSP violation collected, and `check(page, name)` for each page: zero axe-core violations
(WCAG 2.1 A and AA), no sideways scrolling on a 360-pixel phone, and screenshots (desktop and phone)
in the run's output folder, `ENTRAIDE_SCREENSHOTS` or `.test-output/screenshots/`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.http.app import create_app
from tests.test_auth_limits import served

playwright = pytest.importorskip("playwright.sync_api")
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright")
AxeResults = axe_playwright.AxeResults

CHROMIUM = Path("/usr/bin/chromium")  # Debian's (.ci/run installs it); Playwright downloads no browser here
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("ENTRAIDE_SCREENSHOTS", ROOT / ".test-output" / "screenshots"))
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 800, "height": 1280}  # a till's tablet, upright
# Every WCAG 2.1 A and AA rule runs; only the violations come back in full (axe-core's `resultTypes`:
# the passes, the inapplicable and the incomplete keep one node each). The whole report, all four
# kinds with every node, took about half of each run (0.5 s of 1.1 s, a machine at load 26).
WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
           "resultTypes": ["violations"]}  # fmt: skip
AXE_SCRIPT = axe_playwright.Axe().axe_script  # axe-core, as axe-playwright-python ships it
TIMEOUT_MS = 30_000  # a loaded 2-core machine runs two suites' browsers at once

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not shutil.which("chromium"), reason="chromium is not installed"
)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Visitor:
    """One person's browser: their own cookies, the site's address, what went wrong in the console."""

    page: object
    base: str
    problems: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def open(self, path: str):
        response = self.page.goto(self.base + path)  # type: ignore[attr-defined]
        return response

    def check(self, name: str, tablet: bool = False) -> None:
        """The page as it is now: axe-clean on a desktop and on a phone (and a tablet if asked), no
        sideways scroll on the phone, screenshots of each; and nothing went wrong so far (console,
        CSP, foreign hosts)."""
        page = self.page
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for viewport, suffix in ((DESKTOP, ""), *([(TABLET, "-tablet")] if tablet else []), (PHONE, "-phone")):
            page.set_viewport_size(viewport)  # type: ignore[attr-defined]
            results = self.axe()
            assert results.violations_count == 0, f"{name}{suffix}: {results.generate_report()}"
            page.screenshot(path=SCREENSHOTS / f"{name}{suffix}.png", full_page=True)  # type: ignore[attr-defined]
        overflow = page.evaluate(  # type: ignore[attr-defined]
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow} px on a 360-px phone"
        page.set_viewport_size(DESKTOP)  # type: ignore[attr-defined]
        self.assert_clean()

    def axe(self):
        """axe-core's run on the page as it is now. axe is put into a document once (0.2 s for its
        570 kB), not at each run: a new viewport is the same document, a new page has none yet."""
        page = self.page
        if page.evaluate("() => typeof window.axe === 'undefined'"):  # type: ignore[attr-defined]
            page.evaluate(AXE_SCRIPT)  # type: ignore[attr-defined]
        return AxeResults(page.evaluate("options => axe.run(options)", WCAG_AA))  # type: ignore[attr-defined]

    def tab_to(self, target, presses: int = 30) -> None:
        """Press Tab until `target` (a locator) has the focus, as a keyboard user would; fail if it never does."""
        for _ in range(presses):
            self.page.keyboard.press("Tab")  # type: ignore[attr-defined]
            if target.evaluate("element => element === document.activeElement"):
                return
        raise AssertionError(f"Tab never reached {target}")

    def expect_refused(self, status: int) -> None:
        """The page answered `status` on purpose (a refusal is a page with the problem's status):
        Chromium's one console note of it is expected; anything else it said is still a problem."""
        expected = f"Failed to load resource: the server responded with a status of {status}"
        assert [m for m in self.problems if m.startswith(expected)], self.problems
        self.problems[:] = [m for m in self.problems if not m.startswith(expected)]

    def assert_clean(self) -> None:
        assert not self.problems, self.problems
        assert not self.foreign, self.foreign


@contextmanager
def visitor(browser, base: str, locale: str = "fr-CA", elsewhere: tuple[str, ...] = ()) -> Iterator[Visitor]:
    """A new visitor whose browser speaks `locale` (its Accept-Language), and may go to our site and
    to the sites of `elsewhere` (base URLs: a card processor's hosted page, an identity provider)."""
    context = browser.new_context(locale=locale, viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    seen = Visitor(page, base)
    ours = {urlsplit(url).netloc for url in (base, *elsewhere)}

    def only_ours(route) -> None:
        if urlsplit(route.request.url).netloc in ours or route.request.url.startswith("data:"):
            route.continue_()
        else:
            seen.foreign.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.on("console", lambda m: seen.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: seen.problems.append(str(error)))
    try:
        yield seen
    finally:
        context.close()


@contextmanager
def site(ctx) -> Iterator[str]:
    """The whole app (API and pages) on a real loopback server: its base URL."""
    with served(create_app(ctx)) as base:
        yield base


def locale_of(ctx) -> str:
    """The language a page's scenario test walks in: French on SQLite, English on PostgreSQL. Each
    flow then runs on both databases and in both languages, at the cost of two runs, not four (the
    catalogs' completeness in all three languages is checked by `python -m web.catalogs --check`)."""
    return "en-CA" if ctx.settings.database_url.startswith("postgresql") else "fr-CA"


def signed_in(seen: Visitor, ctx, holder_id: str, city: str, area=None) -> None:
    """Give a visitor the session a sign-in would give (web.auth.open_session) in `area` (the
    wallet's unless told: web.auth.PORTAL, OFFICE with a principal's id): for the pages' tests that
    start signed in. The sign-in ways themselves are tested step by step in the browser."""
    from web.auth import WALLET, open_session

    cookie = open_session(ctx, holder_id, city, "test:browser", area or WALLET)
    seen.page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": seen.base,  # type: ignore[attr-defined]
                                    "httpOnly": True, "secure": True, "sameSite": "Lax"}])  # fmt: skip
