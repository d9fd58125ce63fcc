"""The API's docs page in a real browser, offline: Swagger UI from our own server only (every request
to another host is aborted), under its CSP, rendering the operations; screenshots in docs/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.bootstrap import Settings, open_context
from api.http.app import create_app
from tests.test_auth_limits import served

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")  # Debian's (.ci/run installs it); Playwright downloads no browser here
RENDER_TIMEOUT_MS = 120_000  # Swagger UI lays out 80 operations; a loaded 2-core machine takes its time
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not shutil.which("chromium"), reason="chromium is not installed"
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("docs")
    ctx = open_context(
        Settings(data_dir=data, database_url=str(data / "entraide.db"), keys_dir=data / "keys"), create=True
    )
    with served(create_app(ctx)) as url:
        yield url
    ctx.engine.dispose()


def test_swagger_ui_renders_every_operation_offline(base: str) -> None:
    ours = urlsplit(base).netloc
    foreign, problems = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def only_ours(route) -> None:
            if urlsplit(route.request.url).netloc == ours:
                route.continue_()
            else:
                foreign.append(route.request.url)
                route.abort()

        page.route("**/*", only_ours)
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/schema/swagger")
        page.wait_for_selector(".opblock-summary-path", timeout=RENDER_TIMEOUT_MS)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/v1/pos/holds" in p for p in paths) and len(paths) > 50
        assert page.get_by_text("signed requests from a merchant's terminals at the till").first.is_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "swagger.png")

        hold = page.locator(".opblock-post", has=page.locator('[data-path="/v1/pos/holds"]')).first
        hold.locator(".opblock-summary").click()
        page.wait_for_selector(".opblock.is-open .responses-table", timeout=RENDER_TIMEOUT_MS)
        hold.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / "swagger-pos-hold.png")
        assert page.locator(".opblock.is-open .responses-table").get_by_text("invalid_signature").count() > 0
        browser.close()
    assert not foreign, foreign
    assert not problems, problems
