"""Venue configuration and secrets, from the environment or `.env` (agkit.config.secret).

Names (DESIGN.md §4), with the original ag-botkit's and the SDK examples' as aliases:

    POLYMARKET_PRIVATE_KEY      the EOA key that signs orders and L1 auth
    POLYMARKET_API_KEY          L2 API key      (alias CLOB_API_KEY)
    POLYMARKET_API_SECRET       L2 secret       (alias CLOB_SECRET)
    POLYMARKET_API_PASSPHRASE   L2 passphrase   (alias CLOB_PASS_PHRASE)
    POLYMARKET_FUNDER           maker address for signature types 1-3
    POLYMARKET_SIGNATURE_TYPE   0 EOA, 1 POLY_PROXY, 2 POLY_GNOSIS_SAFE, 3 POLY_1271 (names ok)
    AGKIT_CLOB_URL              REST host (default https://clob.polymarket.com)
    AGKIT_CLOB_WS_URL           user channel (default wss://ws-subscriptions-clob.polymarket.com/ws/user)
    AGKIT_CHAIN_ID              137 (Polygon) or 80002 (Amoy)

Secrets are wrapped in `Secret` at once, so they never reach a repr, a log or a record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agkit.config import secret
from agkit.errors import ConfigError
from agkit.venues.polymarket.client import DEFAULT_HOST
from agkit.venues.polymarket.signing import SIGNATURE_TYPES, ApiCreds, Secret, Signer
from agkit.venues.polymarket.user_ws import DEFAULT_WS_URL


@dataclass(frozen=True)
class VenueConfig:
    private_key: Secret | None
    creds: ApiCreds | None
    funder: str | None
    signature_type: int
    chain_id: int
    host: str
    ws_url: str

    def signer(self) -> Signer:
        if not self.private_key:
            raise ConfigError(
                "POLYMARKET_PRIVATE_KEY is not set (environment or .env): it signs every order"
            )
        try:
            return Signer(self.private_key)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def parse_signature_type(text: str | None) -> int:
    if text is None or not text.strip():
        return 0
    t = text.strip().upper().replace("-", "_")
    if t.isdigit() and int(t) in (0, 1, 2, 3):
        return int(t)
    aliases = {**SIGNATURE_TYPES, "PROXY": 1, "SAFE": 2, "DEPOSIT_WALLET": 3, "1271": 3}
    if t in aliases:
        return aliases[t]
    raise ConfigError(f"POLYMARKET_SIGNATURE_TYPE {text!r}: expected 0-3 or EOA, POLY_PROXY, POLY_GNOSIS_SAFE, POLY_1271")


def load(host: str | None = None, ws_url: str | None = None) -> VenueConfig:
    key = secret("POLYMARKET_PRIVATE_KEY", "POLYMARKET_PK")
    api_key = secret("POLYMARKET_API_KEY", "CLOB_API_KEY")
    api_secret = secret("POLYMARKET_API_SECRET", "CLOB_SECRET")
    passphrase = secret("POLYMARKET_API_PASSPHRASE", "CLOB_PASS_PHRASE")
    creds = None
    present = [bool(api_key), bool(api_secret), bool(passphrase)]
    if all(present):
        assert api_key and api_secret and passphrase
        creds = ApiCreds(api_key, Secret(api_secret), Secret(passphrase))
    elif any(present):
        missing = [n for n, p in zip(("POLYMARKET_API_KEY", "POLYMARKET_API_SECRET", "POLYMARKET_API_PASSPHRASE"), present, strict=True) if not p]
        raise ConfigError(f"incomplete API credentials: {', '.join(missing)} missing (or unset all three to derive them)")
    chain = os.environ.get("AGKIT_CHAIN_ID") or "137"
    if chain not in ("137", "80002"):
        raise ConfigError(f"AGKIT_CHAIN_ID {chain!r}: expected 137 (Polygon) or 80002 (Amoy)")
    return VenueConfig(
        private_key=Secret(key) if key else None,
        creds=creds,
        funder=secret("POLYMARKET_FUNDER", "POLYMARKET_PROXY_ADDRESS") or None,
        signature_type=parse_signature_type(secret("POLYMARKET_SIGNATURE_TYPE")),
        chain_id=int(chain),
        host=host or os.environ.get("AGKIT_CLOB_URL") or DEFAULT_HOST,
        ws_url=ws_url or os.environ.get("AGKIT_CLOB_WS_URL") or DEFAULT_WS_URL,
    )
