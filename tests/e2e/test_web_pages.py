"""The order forms, my devices and the audit trail in a real browser (Debian's chromium driven
by Playwright) against a real ``reco2 serve --demo`` process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.test_web_market import ARTIFACTS, WAIT_MS, chromium_path, login
from tests.e2e.web_server import WebServer

DEMO_DAYS = 7  # web.demo_readings.DAYS
DEVICE = "fukushima-pv-web"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("webpages")
    web = WebServer(base / "data", base / "server.log").start()
    try:
        yield web
    finally:
        web.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_devices_chart_has_a_bar_per_day(server: WebServer, browser: Browser) -> None:
    seller = login(browser, server, "seller")
    seller.goto("/devices?lang=en")
    for chart in ("gen", "self", "value"):
        svg = seller.locator(f"svg#chart-{chart}-{DEVICE}")
        expect(svg).to_be_visible(timeout=WAIT_MS)
        expect(svg.locator("rect.bar")).to_have_count(DEMO_DAYS)
        expect(svg.locator("title").first).to_contain_text("(")
    table = seller.locator(f"#device-{DEVICE} table.days tbody tr")
    expect(table).to_have_count(DEMO_DAYS)
    expect(table.first).to_contain_text("2025-05-01")
    # every day issued value: no zero-height value bars
    heights = seller.locator(f"svg#chart-value-{DEVICE} rect.bar").evaluate_all(
        "bars => bars.map(b => Number(b.getAttribute('height')))"
    )
    assert len(heights) == DEMO_DAYS and all(h > 0 for h in heights), heights
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seller.screenshot(path=str(ARTIFACTS / "web-devices.png"), full_page=True)


def test_audit_trail_proof_is_checked(server: WebServer, browser: Browser) -> None:
    batch_id = f"{DEVICE}:2025-05-03"
    buyer = login(browser, server, "buyer")
    buyer.goto("/audit?lang=en")
    buyer.fill("input[name=batch_id]", batch_id)
    buyer.click("form[action='/audit'] button[type=submit]")
    expect(buyer.locator("#trail-status .check")).to_have_attribute(
        "data-checked", "yes", timeout=WAIT_MS
    )
    expect(buyer.locator("#readings-status .check")).to_have_attribute("data-checked", "yes")
    expect(buyer.locator("#reading-proof .check")).to_have_count(2)
    for check in buyer.locator("#reading-proof .check").all():
        expect(check).to_have_attribute("data-checked", "yes")
    expect(buyer.locator("#history-status .check")).to_have_attribute("data-checked", "yes")
    expect(buyer.locator("#tip-status .check")).to_have_attribute("data-checked", "yes")
    expect(buyer.locator("#events")).to_contain_text("issue_value")
    expect(buyer.locator("#state-proofs .check[data-checked=no]")).to_have_count(0)
    # another reading's proof
    buyer.goto(f"/audit/{batch_id}?reading=5&lang=en")
    expect(buyer.locator("#reading-proof")).to_contain_text("5 / 28")
    expect(buyer.locator("#trail-status .check")).to_have_attribute("data-checked", "yes")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    buyer.screenshot(path=str(ARTIFACTS / "web-audit-trail.png"), full_page=True)


def test_api_reference_at_docs_works_under_the_csp(server: WebServer, browser: Browser) -> None:
    """/docs is linked from every page, so it must work with the app's Content-Security-Policy
    (a CDN-loaded Swagger UI is blocked by it): no CSP violation, every operation listed."""
    page = browser.new_context(base_url=server.url).new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto("/board?lang=en")
    page.click("nav a[href='/docs']")
    expect(page).to_have_url(f"{server.url}/docs", timeout=WAIT_MS)
    expect(page.locator("#docs-title")).to_contain_text("ReCO2 web market")
    spec = page.request.get("/openapi.json").json()
    index = page.locator("#operations-index")
    for path, item in spec["paths"].items():
        for method in item:
            expect(index).to_contain_text(f"{method.upper()} {path}")
    buy = page.locator("section.operation", has_text="POST /api/v1/orders/buy")
    expect(buy.locator("a[href='#schema-BuyOrderIn']")).to_be_visible()
    expect(buy).to_contain_text("409")
    page.click("#openapi-link")
    expect(page).to_have_url(f"{server.url}/openapi.json", timeout=WAIT_MS)
    assert not problems, problems
    assert "'self'" in page.request.get("/docs").headers["content-security-policy"]
