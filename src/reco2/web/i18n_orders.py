"""Texts of the order forms (buy orders with every condition, sell orders by hand), in Japanese
(the default) and English; kept apart from ``i18n`` and ``i18n_pages``."""

from __future__ import annotations

_TEXTS: dict[str, tuple[str, str]] = {
    "place_buy": ("買い注文を出す", "Place a buy order"),
    "place_sell": ("売り注文を出す", "Place a sell order"),
    "quantity_kg": ("数量 (kg)", "Quantity (kg)"),
    "limit_price": ("上限価格 (円/kg)", "Limit price (yen/kg)"),
    "min_price": ("最低価格 (円/kg)", "Minimum price (yen/kg)"),
    "all_or_none": ("全量のみ (部分約定しない)", "All or none (no partial fill)"),
    "conditions": ("条件 (空欄は不問)", "Conditions (empty: any)"),
    "sellers": ("売り手 (複数選択可)", "Sellers (any of; several allowed)"),
    "prefectures": ("都道府県 (複数選択可)", "Prefectures (any of)"),
    "municipalities": (
        "市区町村 (複数選択可; 選んだ都道府県の中では市区町村に絞ります)",
        "Municipalities (any of; inside a chosen prefecture they narrow it)",
    ),
    "sources": ("電源 (複数選択可)", "Sources (any of)"),
    "period_from": ("発電期間 (この日から)", "Generated from (day, JST)"),
    "period_to": ("発電期間 (この日まで)", "Generated until (day, JST, inclusive)"),
    "commissioned_after": ("運転開始日がこの日より後", "Device commissioned after"),
    "exclude_estimated": (
        "推計値を含む価値を除く",
        "Exclude value that contains estimated intervals",
    ),
    "expires": ("有効期限 (日本時間; 空欄は取消まで)", "Expires (JST; empty: until cancelled)"),
    "listing": ("電源と場所 (保有する価値から)", "Source and place (from the value you hold)"),
    "sellable": ("売却可能", "sellable"),
    "name_public": ("名前を公表する (外すと「非公表」)", "Show my name (unticked: undisclosed)"),
    "buyers": ("買い手を限定 (任意・複数選択可)", "Only these buyers (optional; several)"),
    "no_value": ("売却できる価値がありません", "You hold no value you can sell"),
    "submit": ("送信", "Submit"),
    "my_orders": ("わたしの注文", "My orders"),
    "order": ("注文", "Order"),
    "side": ("売買", "Side"),
    "buy": ("買い", "Buy"),
    "sell": ("売り", "Sell"),
    "remaining": ("残量 (kg)", "Remaining (kg)"),
    "price": ("価格 (円/kg)", "Price (yen/kg)"),
    "details": ("条件", "Conditions"),
    "any": ("不問", "any"),
    "undisclosed": ("非公表", "undisclosed"),
    "shown": ("名前公表", "name shown"),
    "period": ("発電期間", "generated"),
    "commissioned": ("運転開始", "commissioned after"),
    "no_estimates": ("推計値なし", "no estimates"),
    "until": ("期限", "expires"),
    "only_buyers": ("買い手限定", "buyers"),
    "cancel": ("取消", "Cancel"),
    "none_yet": ("注文はありません", "No open orders"),
}


def texts(lang: str) -> dict[str, str]:
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in _TEXTS.items()}
