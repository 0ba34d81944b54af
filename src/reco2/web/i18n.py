"""Page texts in Japanese (the default) and English; ``?lang=en`` or the ``lang`` cookie."""

from __future__ import annotations

LANGS = ("ja", "en")
DEFAULT = "ja"

_TEXTS: dict[str, tuple[str, str]] = {
    "title": ("ReCO2 CO2削減価値マーケット", "ReCO2 CO2-reduction value market"),
    "board": ("マーケット", "Market"),
    "orders": ("注文", "Orders"),
    "value": ("わたしの価値", "My value"),
    "verify": ("証明書の検証", "Verify a statement"),
    "login": ("ログイン", "Log in"),
    "logout": ("ログアウト", "Log out"),
    "username": ("ユーザー名", "Username"),
    "password": ("パスワード", "Password"),
    "login_failed": ("ユーザー名またはパスワードが違います", "Wrong username or password"),
    "sell_side": ("売り場", "Sell orders (売り場)"),
    "buy_side": ("買い場", "Buy orders (買い場)"),
    "trades": ("約定", "Trades (約定)"),
    "order": ("注文", "Order"),
    "quantity_kg": ("数量 (kg)", "Quantity (kg)"),
    "price_yen": ("価格 (円/kg)", "Price (yen/kg)"),
    "seller": ("売り手", "Seller"),
    "place": ("場所", "Place"),
    "source": ("電源", "Source"),
    "buy_order": ("買い注文", "Buy order"),
    "sell_order": ("売り注文", "Sell order"),
    "any": ("不問", "any"),
    "undisclosed": ("非公表", "undisclosed"),
    "up_to": ("まで", "up to"),
    "live": ("ライブ更新", "live"),
    "height": ("ブロック高", "Block height"),
    "place_buy": ("買い注文を出す", "Place a buy order"),
    "prefecture": ("都道府県", "Prefecture"),
    "municipality": ("市区町村コード (任意)", "Municipality code (optional)"),
    "all_or_none": ("全量のみ", "All or none"),
    "submit": ("送信", "Submit"),
    "sell_rule": ("自動売り設定", "Standing sell rule"),
    "device": ("設備", "Device"),
    "cap_kg": ("上限 (kg)", "Cap (kg)"),
    "name_public": ("名前を公開する", "Show my name"),
    "my_orders": ("わたしの注文", "My orders"),
    "cancel": ("取消", "Cancel"),
    "remaining": ("残量 (kg)", "Remaining (kg)"),
    "batches": ("保有バッチ", "Batches I hold"),
    "batch": ("バッチ", "Batch"),
    "who": ("誰が", "Who"),
    "where": ("どこで", "Where"),
    "when": ("いつ", "When"),
    "tradable": ("保有 (kg)", "Tradable (kg)"),
    "retired": ("償却済 (kg)", "Retired (kg)"),
    "retire": ("償却する", "Retire"),
    "beneficiary": ("受益者", "Beneficiary"),
    "purpose": ("目的", "Purpose"),
    "claimed_period": ("対象期間", "Claimed period"),
    "note": ("メモ", "Note"),
    "retirements": ("償却の記録", "Retirements"),
    "statement": ("償却証明書", "Retirement statement"),
    "yen": ("円の残高", "Yen balance"),
    "done": ("完了しました", "Done"),
    "failed": ("失敗しました", "Failed"),
    "verify_file": ("証明書PDF", "Statement PDF"),
    "verified": ("検証できました", "Verified"),
    "not_verified": ("検証できません", "Does not verify"),
    "my_trades": ("わたしの約定", "My trades"),
}


def texts(lang: str) -> dict[str, str]:
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in _TEXTS.items()}
