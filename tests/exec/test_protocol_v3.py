"""Protocol V2 markets (Gamma `version` "v2") trade on ExchangeV3: their orders are signed
under EIP-712 domain version "3" (protocol §1.3; vector `order-v3-amoy-01` passes in
tests/venues/test_polymarket_vectors.py). Here the per-market choice is checked end to
end: a `submit_order` through exec's Polymarket venue (dry run: signed and printed, never
sent) recovers to our key under the domain its `market_version` selects, and only that one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agkit.venues.polymarket import signing as sg
from tests.fakes.clob import TEST_KEY, FakeClob
from tests.venues.test_polymarket_venue import Harness, book, scenario


@pytest.mark.parametrize(
    ("version", "domain"), [("v2", "3"), ("V2", "3"), ("v1", "2"), (None, "2")]
)
def test_market_version_chooses_the_exchange_domain(version: str | None, domain: str) -> None:
    async def body(fake: FakeClob, h: Harness) -> None:
        h.send(book())
        kw: dict[str, Any] = {} if version is None else {"market_version": version}
        cid = h.submit("buy", 0.40, 10, neg_risk=False, **kw)
        await h.until(lambda: len(h.of("order_rejected", cid)) == 1)
        (line,) = h.dry.getvalue().splitlines()
        printed = json.loads(line.split("dry run: ", 1)[1])
        payload = printed["body"]
        order = (json.loads(payload) if isinstance(payload, str) else payload)["order"]
        me = sg.Signer(TEST_KEY).address
        for v in ("2", "3"):
            signer = sg.verify_order_signature(order, sg.exchange_domain(137, False, v), 137)
            assert (signer == me) == (v == domain), v
        assert fake.requests == []

    scenario(body, live=False)
