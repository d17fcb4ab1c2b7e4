"""Gamma API (market metadata): discovery for `agkit markets` and slug resolution for
`feed polymarket`.

HTTP through httpx with a timeout, retries (connection errors, timeouts, 5xx and 425
with exponential backoff; 429 honouring Retry-After), and a client-side sliding
window that keeps under the published limits (Gamma: /markets 300, /events 500,
/public-search 350, /tags 200, everything 4,000 per 10 s).

Gamma quirks handled here: `outcomes`, `outcomePrices` and `clobTokenIds` are
JSON-encoded strings; `orderPriceMinTickSize`/`orderMinSize` may be numbers or strings.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import orjson

from agkit.errors import UsageError, VenueError

GAMMA_URL = "https://gamma-api.polymarket.com"
WINDOW_S = 10.0
LIMITS = {"/markets": 300, "/events": 500, "/public-search": 350, "/tags": 200}
GENERAL_LIMIT = 4000


class RateLimiter:
    """Sliding-window limits per endpoint family (and one for everything)."""

    def __init__(self, limits: dict[str, int] | None = None, general: int = GENERAL_LIMIT,
                 window: float = WINDOW_S) -> None:
        self.limits = LIMITS if limits is None else limits
        self.general = general
        self.window = window
        self.sent: dict[str, deque[float]] = {}

    def _family(self, path: str) -> str | None:
        for prefix in self.limits:
            if path.startswith(prefix):
                return prefix
        return None

    def delay(self, path: str, now: float) -> float:
        """Seconds to wait before a request to `path` may go out."""
        wait = 0.0
        for key, limit in (("*", self.general), (self._family(path), None)):
            if key is None:
                continue
            cap = limit if limit is not None else self.limits[key]
            q = self.sent.setdefault(key, deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= cap:
                wait = max(wait, q[0] + self.window - now)
        return wait

    def note(self, path: str, now: float) -> None:
        self.sent.setdefault("*", deque()).append(now)
        fam = self._family(path)
        if fam is not None:
            self.sent.setdefault(fam, deque()).append(now)


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
        return parsed if isinstance(parsed, list) else []
    return []


def _float(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def normalize_market(m: dict[str, Any]) -> dict[str, Any]:
    """A Gamma market object as agkit's flat description of it."""
    token_ids = [str(t) for t in _json_list(m.get("clobTokenIds"))]
    outcomes = [str(o) for o in _json_list(m.get("outcomes"))]
    prices = [_float(p) for p in _json_list(m.get("outcomePrices"))]
    tokens = []
    for i, tid in enumerate(token_ids):
        tokens.append(
            {
                "token_id": tid,
                "outcome": outcomes[i] if i < len(outcomes) else None,
                "price": prices[i] if i < len(prices) else None,
            }
        )
    return {
        "condition_id": m.get("conditionId") or m.get("condition_id") or "",
        "slug": m.get("slug") or "",
        "question": m.get("question") or "",
        "tokens": tokens,
        "tick_size": _float(m.get("orderPriceMinTickSize")),
        "min_size": _float(m.get("orderMinSize")),
        "neg_risk": bool(m.get("negRisk", False)),
        "end_date": m.get("endDate") or m.get("endDateIso"),
        "active": m.get("active"),
        "closed": m.get("closed"),
        "accepting_orders": m.get("acceptingOrders"),
        "version": m.get("version"),
    }


class GammaClient:
    def __init__(
        self,
        base_url: str = GAMMA_URL,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        limiter: RateLimiter | None = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.limiter = limiter or RateLimiter()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"User-Agent": "agkit", "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GammaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a JSON document; raises VenueError after the retries, None on 404."""
        import httpx

        attempt = 0
        while True:
            wait = self.limiter.delay(path, time.monotonic())
            if wait > 0:
                time.sleep(wait)
            self.limiter.note(path, time.monotonic())
            try:
                resp = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                retry_after = None
            else:
                if resp.status_code == 404:
                    return None
                if resp.status_code < 400:
                    try:
                        return orjson.loads(resp.content)
                    except orjson.JSONDecodeError:
                        raise VenueError(f"Gamma {path}: the response is not JSON") from None
                problem = f"HTTP {resp.status_code}: {_error_text(resp.content)}"
                retry_after = _float(resp.headers.get("Retry-After"))
                if resp.status_code not in (425, 429) and resp.status_code < 500:
                    raise VenueError(f"Gamma {path}: {problem}")
            attempt += 1
            if attempt > self.retries:
                raise VenueError(f"Gamma {self.base_url}{path}: {problem} (after {self.retries} retries)")
            delay = self.backoff * 2 ** (attempt - 1)
            if retry_after is not None:
                delay = max(delay, min(retry_after, 60.0))
            time.sleep(delay)

    # -- queries ---------------------------------------------------------------------------

    def markets(self, **params: Any) -> list[dict[str, Any]]:
        doc = self.get("/markets", {k: v for k, v in params.items() if v is not None})
        if doc is None:
            return []
        if not isinstance(doc, list):
            raise VenueError("Gamma /markets: expected a list")
        return [m for m in doc if isinstance(m, dict)]

    def by_slug(self, slug: str) -> dict[str, Any] | None:
        found = self.markets(slug=slug)
        return found[0] if found else None

    def by_condition(self, condition_id: str) -> dict[str, Any] | None:
        found = self.markets(condition_ids=condition_id)
        return found[0] if found else None

    def by_token(self, token_id: str) -> dict[str, Any] | None:
        found = self.markets(clob_token_ids=token_id)
        return found[0] if found else None

    def tag_id(self, slug: str) -> str:
        doc = self.get(f"/tags/slug/{slug}")
        if not isinstance(doc, dict) or "id" not in doc:
            raise UsageError(f"unknown tag {slug!r}")
        return str(doc["id"])

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Markets of the events that /public-search finds for a text query."""
        doc = self.get("/public-search", {"q": query, "limit_per_type": limit})
        out: list[dict[str, Any]] = []
        if isinstance(doc, dict):
            for ev in doc.get("events") or []:
                if isinstance(ev, dict):
                    out += [m for m in ev.get("markets") or [] if isinstance(m, dict)]
        return out


def _error_text(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])[:200]
    return body[:200].decode("utf-8", "replace")


def resolve(
    client: GammaClient | None,
    *,
    assets: list[str],
    markets: list[str],
    slugs: list[str],
    log: Any = None,
) -> tuple[list[str], dict[str, Any]]:
    """Token ids to subscribe to and their metadata (`AssetMeta`), from the selectors.

    `--slug` names a market or an event (all its markets); `--market` a condition id;
    `--asset` a token id, looked up best-effort for its tick size and minimum size
    (without Gamma, or when the lookup fails, the defaults 0.01 / 5 are used)."""
    from agkit.feed.polymarket import AssetMeta

    found: list[dict[str, Any]] = []
    if (markets or slugs) and client is None:
        raise UsageError("--market and --slug need the Gamma API (--gamma-url)")
    if client is not None:
        for slug in slugs:
            m = client.by_slug(slug)
            if m is not None:
                found.append(m)
                continue
            events = client.get("/events", {"slug": slug})
            ms = [
                x
                for ev in (events if isinstance(events, list) else [])
                if isinstance(ev, dict)
                for x in ev.get("markets") or []
                if isinstance(x, dict)
            ]
            if not ms:
                raise UsageError(f"no market or event with slug {slug!r}")
            found += ms
        for cid in markets:
            m = client.by_condition(cid)
            if m is None:
                raise UsageError(f"no market with condition id {cid!r}")
            found.append(m)
    out: list[str] = []
    meta: dict[str, Any] = {}
    for raw in found:
        info = normalize_market(raw)
        if not info["tokens"]:
            raise UsageError(f"market {info['slug'] or info['condition_id']} has no CLOB token ids")
        for tok in info["tokens"]:
            out.append(tok["token_id"])
            meta[tok["token_id"]] = AssetMeta(
                market=info["condition_id"],
                tick_size=info["tick_size"] or 0.01,
                min_size=info["min_size"] or 5.0,
                neg_risk=info["neg_risk"],
                outcome=tok["outcome"],
            )
    for asset in assets:
        out.append(asset)
        if asset in meta:
            continue
        m = None
        if client is not None:
            try:
                m = client.by_token(asset)
            except VenueError as exc:
                if log is not None:
                    log(f"cannot look up token {asset[:16]}… on Gamma ({exc}); using tick 0.01, min size 5")
        if m is not None:
            info = normalize_market(m)
            outcome = next((t["outcome"] for t in info["tokens"] if t["token_id"] == asset), None)
            meta[asset] = AssetMeta(
                market=info["condition_id"],
                tick_size=info["tick_size"] or 0.01,
                min_size=info["min_size"] or 5.0,
                neg_risk=info["neg_risk"],
                outcome=outcome,
            )
        else:
            meta[asset] = AssetMeta()
    return list(dict.fromkeys(out)), meta


def market_info_record(info: dict[str, Any], now: int) -> dict[str, Any]:
    """A normalised market as a `market_info` record."""
    return {
        "type": "market_info",
        "ts_event": now,
        "ts_init": now,
        "venue": "polymarket",
        "market": info["condition_id"],
        "slug": info["slug"],
        "question": info["question"],
        "assets": [t["token_id"] for t in info["tokens"]],
        "outcomes": [t["outcome"] or "" for t in info["tokens"]],
        "tick_size": info["tick_size"],
        "min_size": info["min_size"],
        "neg_risk": info["neg_risk"],
        "end_date": info["end_date"],
        "active": info["active"] if isinstance(info["active"], bool) else None,
        "closed": info["closed"] if isinstance(info["closed"], bool) else None,
        "accepting_orders": info["accepting_orders"] if isinstance(info["accepting_orders"], bool) else None,
    }


def discover(
    client: GammaClient,
    *,
    query: str | None = None,
    slugs: list[str] | None = None,
    markets: list[str] | None = None,
    tokens: list[str] | None = None,
    tag: str | None = None,
    status: str = "active",
    limit: int = 20,
    order: str | None = None,
) -> list[dict[str, Any]]:
    """Normalised markets matching the selectors (see `agkit markets`)."""
    flags: dict[str, Any] = {}
    if status == "active":
        flags = {"active": "true", "closed": "false"}
    elif status == "closed":
        flags = {"closed": "true"}
    elif status != "all":
        raise UsageError(f"--status must be active, closed or all, not {status!r}")
    raw: list[dict[str, Any]] = []
    if slugs or markets or tokens:
        for slug in slugs or []:
            found = client.markets(slug=slug)
            if not found:
                raise UsageError(f"no market with slug {slug!r}")
            raw += found
        for cid in markets or []:
            found = client.markets(condition_ids=cid)
            if not found:
                raise UsageError(f"no market with condition id {cid!r}")
            raw += found
        for tid in tokens or []:
            found = client.markets(clob_token_ids=tid)
            if not found:
                raise UsageError(f"no market with token id {tid!r}")
            raw += found
    elif query:
        raw = client.search(query, limit)
        out = [normalize_market(m) for m in raw]
        if status == "active":
            out = [m for m in out if m["active"] is not False and m["closed"] is not True]
        elif status == "closed":
            out = [m for m in out if m["closed"] is True]
        return out[:limit]
    else:
        params: dict[str, Any] = {"limit": limit, **flags}
        if tag:
            params["tag_id"] = client.tag_id(tag)
        if order:
            params["order"] = order
            params["ascending"] = "false"
        raw = client.markets(**params)
    return [normalize_market(m) for m in raw]


def table(infos: list[dict[str, Any]]) -> str:
    """The human form of `agkit markets` (stdout is a terminal)."""
    lines = []
    for m in infos:
        flags = []
        if m["neg_risk"]:
            flags.append("neg-risk")
        if m["closed"]:
            flags.append("closed")
        elif m["active"]:
            flags.append("active")
        head = f"{m['slug'] or '-'}  [{', '.join(flags)}]" if flags else m["slug"] or "-"
        lines.append(head)
        if m["question"]:
            lines.append(f"  {m['question']}")
        lines.append(
            f"  condition {m['condition_id']}  tick {m['tick_size']}  min size {m['min_size']}  "
            f"ends {m['end_date'] or '-'}"
        )
        for t in m["tokens"]:
            price = "" if t["price"] is None else f"  @ {t['price']}"
            lines.append(f"    {t['outcome'] or '?':<8} {t['token_id']}{price}")
        lines.append("")
    return "\n".join(lines)
