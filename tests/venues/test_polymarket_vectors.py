"""Every case of the shared Polymarket vectors (copied into tests/fixtures) passes.

The vectors come from the official SDKs' own tests (and a few derived with eth-account);
they are facts. Each case is one parametrised test, dispatched on its category."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agkit.venues.polymarket import amounts as am
from agkit.venues.polymarket import signing as sg

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "polymarket-vectors.json"
DOC = json.loads(FIXTURE.read_text())
CASES: list[dict[str, Any]] = DOC["cases"]


def test_fixture_holds_all_85_cases() -> None:
    assert len(CASES) == 85
    assert len({c["id"] for c in CASES}) == 85


def test_test_key_address() -> None:
    key = DOC["test_key"]
    assert sg.Signer(key["privateKey"]).address == key["address"]


def _domain_sep(domain: dict[str, Any]) -> bytes:
    return sg.domain_separator(domain["name"], domain["version"], int(domain["chainId"]), domain.get("verifyingContract"))


def check_l2_hmac(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    body = inp.get("body")
    assert (inp["timestamp"] + inp["method"] + inp["requestPath"] + (body or "")) == exp["message"]
    sig = sg.hmac_signature(inp["secret"], inp["timestamp"], inp["method"], inp["requestPath"], body)
    if "signature" in exp:
        assert sig == exp["signature"]
    if "headers" in exp:
        creds = sg.ApiCreds(inp["apiKey"], sg.Secret(inp["secret"]), sg.Secret(inp["passphrase"]))
        headers = sg.l2_headers(inp["address"], creds, inp["method"], inp["requestPath"], body, int(inp["timestamp"]))
        assert headers == exp["headers"]


def check_l1_clob_auth(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    signer = sg.Signer(inp["privateKey"])
    assert signer.address == inp["address"]
    msg = inp["message"]
    assert msg["message"] == sg.CLOB_AUTH_MESSAGE
    digest = sg.clob_auth_digest(msg["address"], msg["timestamp"], int(msg["nonce"]), int(inp["chainId"]))
    assert "0x" + digest.hex() == exp["digest"]
    headers = sg.l1_headers(signer, int(inp["chainId"]), int(msg["nonce"]), int(msg["timestamp"]))
    assert headers["POLY_SIGNATURE"] == exp["signature"]
    if "l1_headers" in exp:
        assert headers == exp["l1_headers"]
    assert sg.recover_address(digest, sg.hexbytes(exp["signature"])) == inp["address"]


def check_order_v1(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    signer = sg.Signer(inp["privateKey"])
    digest = sg.eip712_digest(_domain_sep(inp["domain"]), sg.order_v1_struct_hash(inp["message"]))
    assert "0x" + digest.hex() == exp["orderHash"]
    assert "0x" + signer.sign_digest(digest).hex() == exp["signature"]


def check_order_v2(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    signer = sg.Signer(inp["privateKey"])
    domain = inp["domain"]
    sep = _domain_sep(domain)
    # the named exchange is the one our table picks for that market kind
    neg = domain["verifyingContract"].lower() == sg.EXCHANGES[(domain["chainId"], True, domain["version"])].lower()
    assert sg.exchange_domain(domain["chainId"], neg, domain["version"]) == sep
    order = sg.OrderV2.from_message(inp["message"])
    signed = sg.sign_order(order, signer, sep, domain["chainId"])
    assert signed.order_hash == exp["orderHash"]
    assert signed.signature == exp["signature"]
    assert sg.verify_order_signature(signed, sep, domain["chainId"]) == signer.address


def check_order_1271(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    signer = sg.Signer(inp["privateKey"])
    domain = inp["domain"]
    chain = int(domain["chainId"])
    sep = _domain_sep(domain)
    assert inp["orderTypeString"] == sg.ORDER_V2_TYPE
    order = sg.OrderV2.from_message(inp["order"])
    assert order.maker == order.signer == inp["depositWallet"]
    signed = sg.sign_order(order, signer, sep, chain)
    assert signed.signature == exp["signature"]
    assert len(signed.signature) == exp.get("signature_hex_length_including_0x", 636)
    if "orderHash_standard_eip712" in exp:
        assert signed.order_hash == exp["orderHash_standard_eip712"]
    if "typedDataSignDigest" in exp:
        digest = sg.eip712_digest(sep, sg.typed_data_sign_hash(order.struct_hash(), chain, order.maker))
        assert "0x" + digest.hex() == exp["typedDataSignDigest"]
    if "components" in exp:
        comp = exp["components"]
        raw = sg.hexbytes(signed.signature)
        assert "0x" + raw[:65].hex() == comp["ecdsa65"]
        assert "0x" + raw[65:97].hex() == comp["appDomainSeparator"]
        assert "0x" + raw[97:129].hex() == comp["contentsHash"]
    assert sg.verify_order_signature(signed, sep, chain) == signer.address


def check_constants(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    th = exp["typehashes"]
    assert th["order_v2_type_string"] == sg.ORDER_V2_TYPE
    assert th["order_v1_type_string"] == sg.ORDER_V1_TYPE
    assert th["clob_auth_type_string"] == sg.CLOB_AUTH_TYPE
    assert th["eip712_domain_type_string"] == sg.DOMAIN_TYPE
    assert "0x" + sg.keccak(sg.ORDER_V2_TYPE.encode()).hex() == th["order_v2_typehash"]
    assert "0x" + sg.keccak(sg.ORDER_V1_TYPE.encode()).hex() == th["order_v1_typehash"]
    assert "0x" + sg.keccak(sg.CLOB_AUTH_TYPE.encode()).hex() == th["clob_auth_typehash"]
    for d in exp["domain_separators"].values():
        sep = sg.domain_separator(inp["domain_name"], d["version"], d["chainId"], d["verifyingContract"])
        assert "0x" + sep.hex() == d["domainSeparator"]
        if d["version"] in ("2", "3"):
            kinds = [k for k, v in sg.EXCHANGES.items() if k[0] == d["chainId"] and k[2] == d["version"] and v == d["verifyingContract"]]
            assert kinds, d


def check_amounts_limit(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    maker, taker = am.limit_amounts(inp["side"], inp["price"], inp["size"], inp["tickSize"])
    assert (str(maker), str(taker)) == (exp["makerAmount"], exp["takerAmount"])
    # the same numbers arriving as JSON floats give the same amounts (repr -> Decimal)
    maker_f, taker_f = am.limit_amounts(inp["side"], float(inp["price"]), float(inp["size"]), float(inp["tickSize"]))
    assert (maker_f, taker_f) == (maker, taker)


def check_amounts_market(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    maker, taker = am.market_amounts(inp["side"], inp["amount"], inp["price"], inp["tickSize"])
    assert (str(maker), str(taker)) == (exp["makerAmount"], exp["takerAmount"])
    assert am.market_amounts(inp["side"], float(inp["amount"]), float(inp["price"]), float(inp["tickSize"])) == (maker, taker)


def check_orderbook_hash(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    from agkit.venues.polymarket.wire import orderbook_hash_payload

    text = orderbook_hash_payload(inp["orderbook"])
    assert text == exp["serialized"]
    assert hashlib.sha1(text.encode()).hexdigest() == exp["hash"]


def check_fees(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    def close(a: Decimal, b: float, places: int = 10) -> None:
        assert abs(float(a) - b) < 10**-places, (a, b)

    if "platformFee" in exp:
        fee = am.platform_fee(inp["contracts"], inp["price"], inp["feeRate"], inp["feeExponent"])
        close(fee, exp["platformFee"], 12)
        # the agkit.portfolio formula agrees (shares × rate × (p(1−p))^e)
        from agkit.portfolio import taker_fee

        assert abs(taker_fee(inp["contracts"], inp["price"], inp["feeRate"], inp["feeExponent"]) - exp["platformFee"]) < 1e-9
    elif "builderFee" in exp:
        notional = am.dec(inp["contracts"]) * am.dec(inp["price"])
        close(am.builder_fee(notional, inp["builderTakerFeeRate"]), exp["builderFee"], 12)
    elif "feeSlippagePercent" in inp:
        got = am.adjust_buy_amount_ts(
            inp["amount"], inp["price"], inp["userUSDCBalance"], inp["feeRate"], inp["feeExponent"],
            inp["builderTakerFeeRate"], inp["feeSlippagePercent"],
        )
        close(got, exp["adjustedAmount"], 10)
    else:
        got = am.adjust_buy_amount_py(
            inp["amount"], inp["price"], inp["userUSDCBalance"], inp["feeRate"], inp["feeExponent"], inp["builderTakerFeeRate"]
        )
        close(got, exp["adjustedAmount"], 10)
        fees = am.platform_fee(got / am.dec(inp["price"]), inp["price"], inp["feeRate"], inp["feeExponent"])
        close(got + fees, inp["userUSDCBalance"], 10)
        # upstream: a balance well above amount + fees leaves the amount unchanged
        assert am.adjust_buy_amount_py(50, 0.5, 200, 0.25, 2) == 50


def check_market_price(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    levels = inp["bookLevels_as_returned"]
    if isinstance(exp["price"], str):
        with pytest.raises(am.AmountError):
            am.market_price(inp["side"], levels, inp["amount"], inp["orderType"])
        return
    got = am.market_price(inp["side"], levels, inp["amount"], inp["orderType"])
    assert got == am.dec(exp["price"])
    # the order the venue sends its arrays in does not matter
    assert am.market_price(inp["side"], list(reversed(levels)), inp["amount"], inp["orderType"]) == got


def check_e2e(inp: dict[str, Any], exp: dict[str, Any]) -> None:
    from agkit.venues.polymarket.wire import order_body

    case = next(c for c in CASES if c["id"] == inp["order_case"])
    o = case["inputs"]
    signer = sg.Signer(o["privateKey"])
    sep = _domain_sep(o["domain"])
    signed = sg.sign_order(sg.OrderV2.from_message(o["message"]), signer, sep)
    body = order_body(signed, inp["apiKey"], inp["orderType"], post_only=inp["postOnly"], defer_exec=inp["deferExec"])
    assert body == exp["body"].encode()
    assert signed.order_hash == exp["orderID_expected_from_server"]
    creds = sg.ApiCreds(inp["apiKey"], sg.Secret(inp["secret"]), sg.Secret(inp["passphrase"]))
    headers = sg.l2_headers(signer.address, creds, inp["method"], inp["requestPath"], body, int(inp["timestamp"]))
    expected = dict(exp["headers"])
    expected.pop("Content-Type")
    assert headers == expected


CHECKS = {
    "l2_hmac": check_l2_hmac,
    "l1_clob_auth": check_l1_clob_auth,
    "order_eip712_v1": check_order_v1,
    "order_eip712_v2": check_order_v2,
    "order_eip712_v3": check_order_v2,
    "order_eip712_v2_poly1271": check_order_1271,
    "eip712_constants": check_constants,
    "amounts_limit": check_amounts_limit,
    "amounts_market": check_amounts_market,
    "orderbook_hash": check_orderbook_hash,
    "fees_v2": check_fees,
    "market_price_from_book": check_market_price,
    "post_order_e2e": check_e2e,
}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    CHECKS[case["category"]](case["inputs"], case["expected"])
