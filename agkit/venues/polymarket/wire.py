"""Wire formats of the CLOB: request bodies (exact bytes, since the HMAC covers them),
status normalisation and small helpers shared by the client, the venue and the fake."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from agkit.venues.polymarket.signing import SignedOrder

MAX_BATCH = 15  # POST /orders
MAX_CANCEL_IDS = 1000  # DELETE /orders since 2026-06-15


def dumps(obj: Any) -> bytes:
    """Compact JSON, key order kept: the exact bytes that are signed and sent."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def order_payload(
    signed: SignedOrder, owner: str, order_type: str = "GTC", *, post_only: bool = False, defer_exec: bool = False
) -> dict[str, Any]:
    """One order object of POST /order or POST /orders (§3.6), SDK key order."""
    return {
        "order": signed.to_json(),
        "owner": owner,
        "orderType": order_type,
        "deferExec": defer_exec,
        "postOnly": post_only,
    }


def order_body(
    signed: SignedOrder, owner: str, order_type: str = "GTC", *, post_only: bool = False, defer_exec: bool = False
) -> bytes:
    return dumps(order_payload(signed, owner, order_type, post_only=post_only, defer_exec=defer_exec))


def orders_body(payloads: Iterable[Mapping[str, Any]]) -> bytes:
    items = list(payloads)
    if len(items) > MAX_BATCH:
        raise ValueError(f"Too many orders in payload: {len(items)}, max allowed: {MAX_BATCH}")
    return dumps(items)


def orderbook_hash_payload(book: Mapping[str, Any]) -> str:
    """The SDKs' order-book hash helper input (SHA-1 of this text); the server's own hash
    algorithm is unverified, so agkit never validates server hashes with it."""
    ordered = {
        "market": book.get("market", ""),
        "asset_id": book.get("asset_id", ""),
        "timestamp": book.get("timestamp", ""),
        "hash": "",
        "bids": [{"price": lv["price"], "size": lv["size"]} for lv in book.get("bids", [])],
        "asks": [{"price": lv["price"], "size": lv["size"]} for lv in book.get("asks", [])],
        "min_order_size": book.get("min_order_size", ""),
        "tick_size": book.get("tick_size", ""),
        "neg_risk": book.get("neg_risk", False),
        "last_trade_price": book.get("last_trade_price", ""),
    }
    return json.dumps(ordered, separators=(",", ":"))


def norm_status(status: Any) -> str:
    """'ORDER_STATUS_LIVE' / 'TRADE_STATUS_CONFIRMED' / 'live' -> 'LIVE' / 'CONFIRMED'."""
    text = str(status or "")
    for prefix in ("ORDER_STATUS_", "TRADE_STATUS_"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if text.upper().startswith("CANCELED_"):
        return "CANCELED"
    return text.upper()
