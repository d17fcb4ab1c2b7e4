"""From an agkit order (exact Decimals) to a signed CLOB V2 order, with the local gate.

`OrderBuilder.build` (limit orders) and `build_market` (FOK/FAK by amount) validate price
and size the way the venue does (the venue's wording, before anything is signed),
compute makerAmount/takerAmount exactly, choose the exchange domain per market
(standard or neg-risk) and sign."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agkit.venues.polymarket import amounts as am
from agkit.venues.polymarket import signing as sg


@dataclass
class OrderBuilder:
    signer: sg.Signer
    chain_id: int = sg.CHAIN_POLYGON
    signature_type: int = sg.SIG_EOA
    funder: str | None = None  # maker: proxy / Safe / deposit wallet; the EOA for type 0
    builder_code: str = sg.ZERO32
    domain_version: str = "2"

    def __post_init__(self) -> None:
        if self.signature_type not in (0, 1, 2, 3):
            raise ValueError(f"POLYMARKET_SIGNATURE_TYPE must be 0-3, not {self.signature_type}")
        if self.signature_type == sg.SIG_EOA:
            if self.funder and self.funder.lower() != self.signer.address.lower():
                raise ValueError("signature type 0 (EOA) trades from the key's own address: POLYMARKET_FUNDER must be empty or equal to it")
            self.funder = self.signer.address
        elif not self.funder:
            raise ValueError(f"signature type {self.signature_type} needs POLYMARKET_FUNDER (the proxy, Safe or deposit wallet address)")
        else:
            self.funder = sg.to_checksum_address(self.funder)

    @property
    def maker(self) -> str:
        assert self.funder is not None
        return self.funder

    @property
    def order_signer(self) -> str:
        # POLY_1271: signer = maker = the deposit wallet; otherwise the EOA
        return self.maker if self.signature_type == sg.SIG_POLY_1271 else self.signer.address

    def domain(self, neg_risk: bool, version: str | None = None) -> bytes:
        return sg.exchange_domain(self.chain_id, neg_risk, version or self.domain_version)

    def build(
        self,
        token_id: str,
        side: str,
        price: Any,
        size: Any,
        tick: Any,
        *,
        neg_risk: bool = False,
        min_size: Any = None,
        expiration: int = 0,
        salt: int | None = None,
        timestamp_ms: int | None = None,
        domain_version: str | None = None,
    ) -> sg.SignedOrder:
        """A signed limit order; AmountError (venue wording) when the venue would refuse it.

        `domain_version` "3" signs for ExchangeV3 (Protocol V2 markets, Gamma version "v2")."""
        side_u = side.upper()
        p = am.validate_price(price, tick)
        s = am.validate_size(size, min_size or 0)
        maker_amt, taker_amt = am.limit_amounts(side_u, p, s, tick)  # type: ignore[arg-type]
        return self._sign(token_id, side_u, maker_amt, taker_amt, neg_risk, expiration, salt, timestamp_ms, domain_version)

    def build_market(
        self,
        token_id: str,
        side: str,
        amount: Any,
        price: Any,
        tick: Any,
        *,
        max_shares: Any = None,
        neg_risk: bool = False,
        min_size: Any = None,
        salt: int | None = None,
        timestamp_ms: int | None = None,
        domain_version: str | None = None,
    ) -> sg.SignedOrder:
        """A signed market order (FOK/FAK): a BUY spends `amount` pUSD, a SELL sells `amount`
        shares, `price` is the worst price (protocol §3.4). AmountError (venue wording) when
        the venue would refuse it, or when a BUY would get more than `max_shares` even at
        its worst price."""
        side_u = side.upper()
        t = am.dec(tick)
        p = am.round_down(am.dec(price), am.rounding_for(t).price)
        if p < t or p > 1 - t:
            raise am.AmountError(f"price ({am.fmt(p)}), min: {am.fmt(t)} - max: {am.fmt(1 - t)}", "INVALID_ORDER_MIN_TICK_SIZE")
        if side_u == "SELL":
            am.validate_size(amount, min_size or 0)
        maker_amt, taker_amt = am.market_order_amounts(side_u, amount, p, t)  # type: ignore[arg-type]
        if maker_amt <= 0 or taker_amt <= 0:
            raise am.AmountError(f"amount ({am.fmt(am.dec(amount))}) too small for a market order", "INVALID_ORDER_MIN_SIZE")
        if side_u == "BUY":
            shares = Decimal(taker_amt).scaleb(-am.TOKEN_DECIMALS)  # the fewest it buys
            least = am.dec(min_size) if min_size is not None else Decimal(0)
            if shares < least:
                raise am.AmountError(f"Size ({am.fmt(shares)}) lower than the minimum: {am.fmt(least)}", "INVALID_ORDER_MIN_SIZE")
            if max_shares is not None and shares > am.dec(max_shares):
                raise am.AmountError(
                    f"market order: {am.fmt(am.dec(amount))} pUSD buys at least {am.fmt(shares)} shares at {am.fmt(p)}, more than size {am.fmt(am.dec(max_shares))}"
                )
        return self._sign(token_id, side_u, maker_amt, taker_amt, neg_risk, 0, salt, timestamp_ms, domain_version)

    def _sign(
        self,
        token_id: str,
        side_u: str,
        maker_amt: int,
        taker_amt: int,
        neg_risk: bool,
        expiration: int,
        salt: int | None,
        timestamp_ms: int | None,
        domain_version: str | None,
    ) -> sg.SignedOrder:
        order = sg.OrderV2(
            salt=sg.new_salt() if salt is None else salt,
            maker=self.maker,
            signer=self.order_signer,
            token_id=str(int(token_id)),
            maker_amount=maker_amt,
            taker_amount=taker_amt,
            side=side_u,
            signature_type=self.signature_type,
            timestamp=sg.now_ms() if timestamp_ms is None else timestamp_ms,
            builder=self.builder_code,
            expiration=expiration,
        )
        return sg.sign_order(order, self.signer, self.domain(neg_risk, domain_version), self.chain_id)
