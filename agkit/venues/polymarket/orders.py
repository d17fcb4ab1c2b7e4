"""From an agkit order (exact Decimals) to a signed CLOB V2 order, with the local gate.

`OrderBuilder.build` validates price and size the way the venue does (the venue's
wording, before anything is signed), computes makerAmount/takerAmount exactly,
chooses the exchange domain per market (standard or neg-risk) and signs."""

from __future__ import annotations

from dataclasses import dataclass
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
