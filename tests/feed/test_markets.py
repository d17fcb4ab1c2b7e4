"""`agkit markets` and slug resolution against a strict fake Gamma API on 127.0.0.1."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from agkit.feed.gamma import RateLimiter, normalize_market
from tests.feed.fakes import FakeHTTP, FakeWS, json_route
from tests.feed.wsutil import Feed, book_frame, j
from tests.helpers import ROOT, agkit_argv, agkit_env, parse_ndjson, run_agkit

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "rest"
MARKET = orjson.loads((SAMPLES / "gamma_market_captured_2026.json").read_bytes())
EVENT = orjson.loads((SAMPLES / "gamma_events_captured_2026.json").read_bytes())[0]
NEG_RISK = EVENT["markets"][0]
CLOSED = {**copy.deepcopy(MARKET), "id": "9", "slug": "an-old-one", "conditionId": "0x" + "ab" * 32,
          "active": True, "closed": True, "orderPriceMinTickSize": "0.001",
          "clobTokenIds": '["111", "222"]', "outcomes": '["Yes", "No"]', "outcomePrices": '["1", "0"]'}
ALL = [MARKET, NEG_RISK, CLOSED]
KNOWN_PARAMS = {"limit", "active", "closed", "slug", "condition_ids", "clob_token_ids", "tag_id", "order", "ascending"}


def gamma_markets(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
    """Strict: unknown parameters are a 422, as a careful venue would answer."""
    unknown = set(query) - KNOWN_PARAMS
    if unknown:
        return 422, {}, orjson.dumps({"error": f"unknown parameters {sorted(unknown)}"})
    out = ALL
    one = {k: v[0] for k, v in query.items()}
    if "slug" in one:
        out = [m for m in out if m["slug"] == one["slug"]]
    if "condition_ids" in one:
        out = [m for m in out if m["conditionId"] == one["condition_ids"]]
    if "clob_token_ids" in one:
        out = [m for m in out if one["clob_token_ids"] in orjson.loads(m["clobTokenIds"])]
    if one.get("closed") == "false":
        out = [m for m in out if not m["closed"]]
    if one.get("closed") == "true":
        out = [m for m in out if m["closed"]]
    if one.get("active") == "true":
        out = [m for m in out if m["active"]]
    if "tag_id" in one:
        out = [m for m in out if m is NEG_RISK] if one["tag_id"] == "101259" else []
    return 200, {}, orjson.dumps(out[: int(one.get("limit", "100"))])


def routes(**extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "/markets": gamma_markets,
        "/tags/slug/health-and-human-services": json_route({"id": "101259", "slug": "health-and-human-services"}),
        "/public-search": json_route({"events": [EVENT], "tags": [], "profiles": []}),
        "/events": json_route([]),
    }
    r.update(extra)
    return r


def test_slug_gives_a_market_info_record() -> None:
    with FakeHTTP(routes()) as gamma:
        proc = run_agkit("markets", "--slug", MARKET["slug"], "--gamma-url", gamma.url)
    assert proc.returncode == 0, proc.stderr
    (rec,) = parse_ndjson(proc.stdout)
    assert rec["type"] == "market_info" and rec["market"] == MARKET["conditionId"]
    assert rec["assets"] == orjson.loads(MARKET["clobTokenIds"])
    assert rec["outcomes"] == ["Up", "Down"]
    assert rec["tick_size"] == 0.01 and rec["min_size"] == 5 and rec["neg_risk"] is False
    assert rec["end_date"] == "2026-03-12T09:25:00Z"
    val = run_agkit("validate", "--strict", input=proc.stdout)
    assert val.returncode == 0, val.stderr
    assert gamma.requests == [("/markets", {"slug": [MARKET["slug"]]})]


def test_listing_filters_active_closed_tag() -> None:
    with FakeHTTP(routes()) as gamma:
        active = run_agkit("markets", "--gamma-url", gamma.url)
        closed = run_agkit("markets", "--gamma-url", gamma.url, "--status", "closed")
        tagged = run_agkit("markets", "--gamma-url", gamma.url, "--tag", "health-and-human-services", "--status", "all")
        ordered = run_agkit("markets", "--gamma-url", gamma.url, "--order", "volume24hr", "--limit", "1")
    for p in (active, closed, tagged, ordered):
        assert p.returncode == 0, p.stderr
    assert [r["slug"] for r in parse_ndjson(active.stdout)] == [MARKET["slug"], NEG_RISK["slug"]]
    assert [r["slug"] for r in parse_ndjson(closed.stdout)] == ["an-old-one"]
    (neg,) = parse_ndjson(tagged.stdout)
    assert neg["neg_risk"] is True and neg["market"] == NEG_RISK["conditionId"]
    assert len(parse_ndjson(ordered.stdout)) == 1
    assert gamma.requests[0] == ("/markets", {"limit": ["20"], "active": ["true"], "closed": ["false"]})
    assert ("/markets", {"limit": ["20"], "tag_id": ["101259"]}) in gamma.requests
    assert any(q.get("order") == ["volume24hr"] and q.get("ascending") == ["false"] for _p, q in gamma.requests)


def test_text_search() -> None:
    with FakeHTTP(routes()) as gamma:
        proc = run_agkit("markets", "nominee", "--gamma-url", gamma.url, "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    recs = parse_ndjson(proc.stdout)
    assert 1 <= len(recs) <= 3
    assert all(r["type"] == "market_info" for r in recs)
    assert gamma.requests[0][0] == "/public-search" and gamma.requests[0][1]["q"] == ["nominee"]


def test_unknown_slug_and_tag_are_usage_errors() -> None:
    with FakeHTTP(routes()) as gamma:
        slug = run_agkit("markets", "--slug", "no-such-market", "--gamma-url", gamma.url)
        tag = run_agkit("markets", "--tag", "no-such-tag", "--gamma-url", gamma.url)
    assert slug.returncode == 2 and b"no-such-market" in slug.stderr
    assert tag.returncode == 2 and b"no-such-tag" in tag.stderr
    assert slug.stdout == tag.stdout == b""


def test_retries_5xx_and_honours_retry_after() -> None:
    calls = {"n": 0}

    def flaky(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        if calls["n"] == 1:
            return 500, {}, b'{"error":"boom"}'
        if calls["n"] == 2:
            return 429, {"Retry-After": "0"}, b'{"error":"slow down"}'
        return gamma_markets(path, query)

    with FakeHTTP(routes(**{"/markets": flaky})) as gamma:
        proc = run_agkit("markets", "--slug", MARKET["slug"], "--gamma-url", gamma.url)
    assert proc.returncode == 0, proc.stderr
    assert calls["n"] == 3
    assert len(parse_ndjson(proc.stdout)) == 1


def test_persistent_failure_exits_4_and_4xx_is_not_retried() -> None:
    with FakeHTTP(routes(**{"/markets": json_route({"error": "down"}, status=503)})) as gamma:
        down = run_agkit("markets", "--gamma-url", gamma.url)
        n_down = len(gamma.requests)
    assert down.returncode == 4 and b"503" in down.stderr and b"down" in down.stderr
    assert n_down == 4  # first try + 3 retries
    with FakeHTTP(routes(**{"/markets": json_route({"error": "bad request"}, status=400)})) as gamma:
        bad = run_agkit("markets", "--gamma-url", gamma.url)
        n_bad = len(gamma.requests)
    assert bad.returncode == 4 and b"bad request" in bad.stderr and n_bad == 1
    assert b"Traceback" not in down.stderr + bad.stderr


def test_not_json_is_a_venue_error() -> None:
    with FakeHTTP(routes(**{"/markets": lambda _p, _q: (200, {}, b"<html>oops</html>")})) as gamma:
        proc = run_agkit("markets", "--gamma-url", gamma.url)
    assert proc.returncode == 4 and b"not JSON" in proc.stderr


def test_table_on_a_terminal() -> None:
    master, slave = os.openpty()
    with FakeHTTP(routes()) as gamma:
        proc = subprocess.run(
            agkit_argv("markets", "--slug", MARKET["slug"], "--gamma-url", gamma.url),
            stdout=slave, stderr=subprocess.PIPE, env=agkit_env(), cwd=ROOT, timeout=60,
        )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0, proc.stderr
    assert MARKET["slug"] in text and MARKET["conditionId"] in text
    assert orjson.loads(MARKET["clobTokenIds"])[0] in text and "Up" in text
    assert not text.lstrip().startswith("{")


def test_normalize_market_parses_json_strings() -> None:
    info = normalize_market(MARKET)
    assert [t["outcome"] for t in info["tokens"]] == ["Up", "Down"]
    assert info["tokens"][0]["price"] == 0.505
    broken = normalize_market({**MARKET, "clobTokenIds": "not json", "orderMinSize": "x"})
    assert broken["tokens"] == [] and broken["min_size"] is None


def test_rate_limiter_window() -> None:
    lim = RateLimiter({"/markets": 3}, general=100, window=10.0)
    for t in (0.0, 1.0, 2.0):
        assert lim.delay("/markets", t) == 0
        lim.note("/markets", t)
    assert lim.delay("/markets", 3.0) == pytest.approx(7.0)
    assert lim.delay("/events", 3.0) == 0  # another family
    assert lim.delay("/markets", 10.5) == 0  # the first request left the window


def test_feed_polymarket_resolves_a_slug_through_gamma() -> None:
    tokens = orjson.loads(CLOSED["clobTokenIds"])
    snap = book_frame(tokens[0], [("0.101", "10")], [("0.105", "20")], market=CLOSED["conditionId"])
    snap2 = book_frame(tokens[1], [("0.895", "20")], [("0.899", "10")], market=CLOSED["conditionId"])
    with FakeHTTP(routes()) as gamma, FakeWS([[("send", j([snap, snap2]))]]) as ws:
        feed = Feed("feed", "polymarket", "--slug", "an-old-one", "--gamma-url", gamma.url, "--url", ws.url,
                    "--metrics-every", "0", "--max-records", "3")
        code, err = feed.wait(60)
    assert code == 0, err
    assert ws.subscriptions[0]["assets_ids"] == tokens
    book = next(r for r in feed.records if r["type"] == "book")
    assert book["market"] == CLOSED["conditionId"] and book["tick_size"] == 0.001 and book["min_size"] == 5


def test_feed_polymarket_unknown_slug_exits_2_before_connecting() -> None:
    with FakeHTTP(routes()) as gamma:
        proc = run_agkit("feed", "polymarket", "--slug", "nope", "--gamma-url", gamma.url, "--url", "ws://127.0.0.1:9/x")
    assert proc.returncode == 2 and b"nope" in proc.stderr and proc.stdout == b""


def test_feed_polymarket_needs_a_selector() -> None:
    proc = run_agkit("feed", "polymarket")
    assert proc.returncode == 2 and b"--asset" in proc.stderr
