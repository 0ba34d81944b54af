"""The web market in a real browser (Debian's chromium driven by Playwright): a buyer's order
with a place condition meets a seller's standing rule when new value is issued, the trade
appears on an open board without a reload, and the buyer's retirement statement verifies."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from reco2 import factors
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from tests.e2e.harness import run_cli
from tests.e2e.web_server import WebServer

ARTIFACTS = Path(tempfile.gettempdir()) / "reco2-test-artifacts"
WAIT_MS = 20_000


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Debian's chromium is missing: scripts/test installs it (apt-get install chromium)"
        )
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("web")
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


def login(browser: Browser, server: WebServer, username: str) -> Page:
    page = browser.new_context(base_url=server.url, accept_downloads=True).new_page()
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", server.users[username][0])
    page.click("#login-submit")
    expect(page).to_have_url(f"{server.url}/board", timeout=WAIT_MS)
    expect(page.locator("form[action='/logout']")).to_contain_text(username)
    return page


def test_buy_meets_standing_rule_live_then_statement_verifies(
    server: WebServer, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seller = login(browser, server, "seller")
    seller.goto("/orders")
    seller.fill("#rule-form input[name=price_yen_per_kg]", "2")
    seller.fill("#rule-form input[name=cap_kg]", "100")
    seller.click("#rule-form button[type=submit]")
    expect(seller.locator("#result")).to_have_class("ok", timeout=WAIT_MS)

    buyer = login(browser, server, "buyer")
    buyer.goto("/orders")
    order_id = buyer.locator("#buy-form input[name=order_id]").input_value()
    buyer.fill("#buy-form input[name=quantity_kg]", "5")
    buyer.fill("#buy-form input[name=price_yen_per_kg]", "4")
    buyer.select_option("#buy-form select[name=prefecture]", "07")
    buyer.select_option("#buy-form select[name=municipality]", "072010")  # 福島市, not S2's 郡山市
    buyer.click("#buy-form button[type=submit]")
    expect(buyer.locator("#result")).to_have_class("ok", timeout=WAIT_MS)
    expect(buyer.locator("#my-orders")).to_contain_text(order_id)
    expect(buyer.locator("#my-orders")).to_contain_text("福島県福島市")

    # An open board, in another browser, with no session; it must update without a reload.
    board = browser.new_context(base_url=server.url).new_page()
    board.goto("/board")
    expect(board.locator("#buys")).to_contain_text(order_id)
    expect(board.locator("#trades")).not_to_contain_text(order_id)
    expect(board.locator("#live")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
    board.evaluate("window.__sameDocument = 'yes'")

    # The aggregator issues a day of the seller's device through the CLI and the node API.
    day = parse_iso_date("2025-06-02")
    assert day is not None
    start = jst_midnight_s(day)
    run_cli(
        "tx", "issue", "web-batch-1",
        "--device", "fukushima-pv-web",
        "--period-start-s", start, "--period-end-s", start + 86_400,
        "--self-consumed-wh", 20_000, "--measured-intervals", 48,
        "--readings-root", "00" * 32,
        "--factor-version", factors.publish_action().version,
        "--node", f"{server.url}/node",
        "--key", server.data_dir / "keys" / "mrv.key",
        "-d", server.data_dir,
    )  # fmt: skip
    expect(board.locator("#trades")).to_contain_text(order_id, timeout=WAIT_MS)
    row = board.locator("#trades tr", has_text=order_id)
    expect(row).to_contain_text("5.000")
    expect(row).to_contain_text("4.00")  # the resting buy order's price
    assert board.evaluate("window.__sameDocument") == "yes", "the board was reloaded"
    assert int(board.locator("#board").get_attribute("data-updates") or "0") >= 1
    board_png = ARTIFACTS / "web-board.png"
    board.screenshot(path=str(board_png), full_page=True)

    # The buyer holds the value, retires it and downloads the statement.
    buyer.goto("/value")
    expect(buyer.locator("#batches")).to_contain_text("web-batch-1")
    expect(buyer.locator("#batches")).to_contain_text("福島県福島市")
    retirement_id = buyer.locator("#retire-form input[name=retirement_id]").input_value()
    buyer.select_option("#retire-form select[name=batch_id]", "web-batch-1")
    buyer.fill("#retire-form input[name=quantity_kg]", "5")
    buyer.fill("#retire-form input[name=beneficiary]", "デモ買い手株式会社")
    buyer.select_option("#retire-form select[name=purpose]", "offset")
    buyer.fill("#retire-form input[name=claimed_period]", "FY2025")
    buyer.click("#retire-form button[type=submit]")
    expect(buyer.locator("#result")).to_have_class("ok", timeout=WAIT_MS)
    expect(buyer.locator("#retirements")).to_contain_text(retirement_id)
    with buyer.expect_download(timeout=WAIT_MS) as download_info:
        buyer.locator("#retirements a[download]").first.click()
    pdf_path = ARTIFACTS / f"statement-{retirement_id}.pdf"
    download_info.value.save_as(pdf_path)
    assert pdf_path.read_bytes().startswith(b"%PDF-")
    # the same statement as a page, which is what the screenshot shows
    buyer.locator("#retirements a.statement-view").first.click()
    statement = buyer.locator("#statement")
    expect(statement).to_contain_text(retirement_id, timeout=WAIT_MS)
    expect(statement).to_contain_text("5.000 kg-CO2")
    expect(statement).to_contain_text("デモ買い手株式会社")
    expect(statement).to_contain_text("福島県福島市")
    statement_page_png = ARTIFACTS / "web-statement.png"
    buyer.screenshot(path=str(statement_page_png), full_page=True)
    buyer.goto("/value")

    # Anyone can verify it: on the verify page, and with the command line.
    verifier = browser.new_context(base_url=server.url).new_page()
    verifier.goto("/verify?lang=en")
    verifier.set_input_files("input[name=file]", str(pdf_path))
    verifier.click("form[action='/verify'] button[type=submit]")
    result = verifier.locator("#verify-result")
    expect(result).to_have_class("ok", timeout=WAIT_MS)
    expect(result).to_contain_text(retirement_id)
    statement_png = ARTIFACTS / "web-statement-verified.png"
    verifier.screenshot(path=str(statement_png), full_page=True)
    buyer.screenshot(path=str(ARTIFACTS / "web-my-value.png"), full_page=True)
    proc = run_cli("verify-statement", pdf_path, "-d", server.data_dir)
    assert f"verified retirement {retirement_id}" in proc.stdout
    print(f"\nartifacts: {board_png}, {statement_page_png}, {statement_png}, {pdf_path}")
