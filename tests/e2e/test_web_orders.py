"""The order forms with their conditions in a real browser (Debian's chromium driven by
Playwright) against a real ``reco2 serve --demo`` process: a buy order with seller, source and
generation-period conditions shows them in 買い場, and a sell order placed by hand with the
seller's name hidden shows 非公表 on the public board."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.e2e.test_web_market import ARTIFACTS, WAIT_MS, chromium_path, login
from tests.e2e.web_server import WebServer

SELLER_NAME = "福島ソーラー合同会社"  # web.demo: web-seller, name public
SELLER_PLACE = "福島県福島市"  # the demo seller's device is in 072010


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("weborders")
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


def test_buy_order_conditions_show_in_buy_side(server: WebServer, browser: Browser) -> None:
    buyer = login(browser, server, "buyer")
    buyer.goto("/orders")
    form = buyer.locator("#buy-form")
    order_id = form.locator("input[name=order_id]").input_value()
    form.locator("input[name=quantity_kg]").fill("3")
    form.locator("input[name=price_yen_per_kg]").fill("2")
    form.locator("select[name=sellers]").select_option("web-seller")
    form.locator("input[name=sources][value=solar]").check()
    # June: the demo seller's value is from May, so nothing can fill this order meanwhile.
    form.locator("input[name=period_from]").fill("2025-06-01")
    form.locator("input[name=period_to]").fill("2025-06-30")
    form.locator("button[type=submit]").click()
    expect(buyer.locator("#result")).to_have_class("ok", timeout=WAIT_MS)
    mine = buyer.locator("#my-orders tr", has_text=order_id)
    expect(mine).to_contain_text(SELLER_NAME)
    expect(mine).to_contain_text("2025-06-01〜2025-06-30")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    buyer.screenshot(path=str(ARTIFACTS / "web-orders-form.png"), full_page=True)

    # The public board, with no session: 買い場 shows the order and its conditions.
    board = browser.new_context(base_url=server.url).new_page()
    board.goto("/board")
    row = board.locator("#buys tr", has_text=order_id)
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(row).to_contain_text(SELLER_NAME)
    expect(row).to_contain_text("太陽光")
    expect(row).to_contain_text("発電期間 2025-06-01〜2025-06-30")
    expect(row).to_contain_text("3.000")
    expect(row).to_contain_text("2.00")
    board.screenshot(path=str(ARTIFACTS / "web-orders-buy-side.png"), full_page=True)
    board.goto("/board?lang=en")
    row = board.locator("#buys tr", has_text=order_id)
    expect(row).to_contain_text("solar")
    expect(row).to_contain_text("generated 2025-06-01〜2025-06-30")


def test_hand_placed_sell_order_with_hidden_name(server: WebServer, browser: Browser) -> None:
    seller = login(browser, server, "seller")
    seller.goto("/orders")
    form = seller.locator("#sell-form")
    order_id = form.locator("input[name=order_id]").input_value()
    form.locator("select[name=listing]").select_option("solar/072010")
    form.locator("input[name=quantity_kg]").fill("1")
    form.locator("input[name=price_yen_per_kg]").fill("50")  # above any demo buy's limit
    form.locator("input[name=name_public]").uncheck()
    form.locator("button[type=submit]").click()
    expect(seller.locator("#result")).to_have_class("ok", timeout=WAIT_MS)
    mine = seller.locator("#my-orders tr", has_text=order_id)
    expect(mine).to_contain_text("非公表")
    expect(mine).to_contain_text(SELLER_PLACE)

    # Anyone's board: the seller is undisclosed, the place and source are shown.
    board = browser.new_context(base_url=server.url).new_page()
    board.goto("/board")
    row = board.locator("#sells tr", has_text=order_id)
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(row).to_contain_text("非公表")
    expect(row).not_to_contain_text(SELLER_NAME)
    expect(row).to_contain_text(SELLER_PLACE)
    expect(row).to_contain_text("太陽光")
    expect(row).to_contain_text("50.00")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    board.screenshot(path=str(ARTIFACTS / "web-orders-sell-hidden.png"), full_page=True)

    # Cancelling it takes it off the board.
    mine.locator("button", has_text="取消").click()
    expect(seller.locator("#result")).to_have_class("ok", timeout=WAIT_MS)
    expect(seller.locator("#my-orders")).not_to_contain_text(order_id)
    board.goto("/board")
    expect(board.locator("#sells")).not_to_contain_text(order_id)
