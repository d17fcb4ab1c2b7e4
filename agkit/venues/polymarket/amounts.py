"""Exact price/size validation and makerAmount/takerAmount rounding (protocol §3.3–3.4).

Everything here is `decimal.Decimal`: a float coming from JSON is converted through its
shortest repr (`0.56` -> Decimal("0.56"), never Decimal(0.56000000000000005...)), so nothing
that is signed is ever computed in binary floating point.

Two layers:
- `validate_order` is the local gate in front of the venue: off-tick prices, prices outside
  [tick, 1 - tick], sizes with more than 2 decimals and sizes below the market minimum are
  refused with the venue's own wording, before anything is signed.
- `limit_amounts` / `market_amounts` reproduce the official SDKs' rounding bit for bit
  (the vectors `amounts-limit-*`, `amounts-market-*` pass); they truncate sizes to 2 dp as the
  SDKs do, which is why `validate_order` runs first in the venue. `market_order_amounts` is
  what the venue signs for a market order: the SDK's amounts within the server's FOK/FAK
  precision.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple

Side = Literal["BUY", "SELL"]

TOKEN_DECIMALS = 6  # pUSD and outcome tokens both use 6 decimals
_SCALE = Decimal(10) ** TOKEN_DECIMALS
SIZE_DECIMALS = 2


class RoundConfig(NamedTuple):
    price: int  # decimals of a price
    size: int  # decimals of a size (lot)
    amount: int  # decimals of a notional amount


# clob-client-v2 roundingConfig.ts (incl. the 0.005 and 0.0025 ticks of July 2026)
ROUNDING: dict[Decimal, RoundConfig] = {
    Decimal("0.1"): RoundConfig(1, 2, 3),
    Decimal("0.01"): RoundConfig(2, 2, 4),
    Decimal("0.005"): RoundConfig(3, 2, 5),
    Decimal("0.0025"): RoundConfig(4, 2, 6),
    Decimal("0.001"): RoundConfig(3, 2, 5),
    Decimal("0.0001"): RoundConfig(4, 2, 6),
}


class AmountError(ValueError):
    """A price or size the venue would refuse; `code` is the venue's errorMsg code."""

    def __init__(self, message: str, code: str = "INVALID_ORDER_ERROR") -> None:
        super().__init__(message)
        self.code = code


def dec(value: Any) -> Decimal:
    """A number from JSON (int, float, str, Decimal) as an exact Decimal.

    Floats go through their shortest repr, which is what the JSON text said."""
    if isinstance(value, Decimal):
        out = value
    elif isinstance(value, bool):
        raise AmountError(f"not a number: {value!r}")
    elif isinstance(value, int):
        out = Decimal(value)
    elif isinstance(value, float):
        out = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            out = Decimal(value.strip())
        except InvalidOperation:
            raise AmountError(f"not a number: {value!r}") from None
    else:
        raise AmountError(f"not a number: {value!r}")
    if not out.is_finite():
        raise AmountError(f"not a finite number: {value!r}")
    return out


def fmt(value: Decimal) -> str:
    """A Decimal as plain text without exponent or trailing zeros (0.50 -> '0.5')."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    text = format(value.normalize(), "f")
    return text


def decimal_places(value: Decimal) -> int:
    exp = value.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    return max(0, -exp)


def rounding_for(tick: Any) -> RoundConfig:
    t = dec(tick).normalize()
    for known, cfg in ROUNDING.items():
        if known == t:
            return cfg
    raise AmountError(
        f"unsupported tick size {fmt(t)}; known: {', '.join(fmt(k) for k in ROUNDING)}",
        "INVALID_ORDER_MIN_TICK_SIZE",
    )


def _q(digits: int) -> Decimal:
    return Decimal(1).scaleb(-digits)


def round_down(x: Decimal, digits: int) -> Decimal:
    return x.quantize(_q(digits), rounding=ROUND_FLOOR)


def round_up(x: Decimal, digits: int) -> Decimal:
    return x.quantize(_q(digits), rounding=ROUND_CEILING)


def round_normal(x: Decimal, digits: int) -> Decimal:
    return x.quantize(_q(digits), rounding=ROUND_HALF_EVEN)


def to_base_units(x: Decimal) -> int:
    """Value × 10^6 as an integer (rounded if a fraction remains, as the SDKs do)."""
    return int((x * _SCALE).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _fix_amount(x: Decimal, amount_dp: int) -> Decimal:
    # SDK rule: too many decimals -> round up at amount+4, then down at amount.
    if decimal_places(x) > amount_dp:
        x = round_up(x, amount_dp + 4)
        if decimal_places(x) > amount_dp:
            x = round_down(x, amount_dp)
    return x


# --- validation (the local gate) ------------------------------------------------------


def validate_price(price: Any, tick: Any) -> Decimal:
    """The price as a Decimal, or AmountError with the venue's wording."""
    p, t = dec(price), dec(tick)
    cfg = rounding_for(t)
    if decimal_places(p) > cfg.price:
        raise AmountError(
            f"Price {fmt(p)} has {decimal_places(p)} decimal places. Minimum tick size "
            f"{fmt(t)} has {cfg.price} decimal places. Price decimal places must be "
            f"less than or equal to the minimum tick size decimal places",
            "INVALID_ORDER_MIN_TICK_SIZE",
        )
    if p % t != 0:
        raise AmountError(
            f"order is invalid. Price ({fmt(p)}) breaks minimum tick size rule: {fmt(t)}",
            "INVALID_ORDER_MIN_TICK_SIZE",
        )
    if p < t or p > 1 - t:
        raise AmountError(
            f"price ({fmt(p)}), min: {fmt(t)} - max: {fmt(1 - t)}",
            "INVALID_ORDER_MIN_TICK_SIZE",
        )
    return p


def validate_size(size: Any, min_size: Any = 0) -> Decimal:
    s = dec(size)
    if s <= 0:
        raise AmountError(f"Size ({fmt(s)}) must be positive", "INVALID_ORDER_MIN_SIZE")
    if decimal_places(s) > SIZE_DECIMALS:
        raise AmountError(
            f"Size {fmt(s)} has {decimal_places(s)} decimal places. Maximum lot size is {SIZE_DECIMALS}",
            "INVALID_ORDER_ERROR",
        )
    m = dec(min_size) if min_size is not None else Decimal(0)
    if s < m:
        raise AmountError(
            f"Size ({fmt(s)}) lower than the minimum: {fmt(m)}", "INVALID_ORDER_MIN_SIZE"
        )
    return s


# --- amounts (bit-compatible with the SDKs) -------------------------------------------------


def limit_amounts(side: Side, price: Any, size: Any, tick: Any) -> tuple[int, int]:
    """(makerAmount, takerAmount) in base units for a limit order (GTC/GTD/FOK/FAK by size)."""
    cfg = rounding_for(tick)
    p = round_normal(dec(price), cfg.price)
    shares = round_down(dec(size), cfg.size)
    notional = _fix_amount(shares * p, cfg.amount)
    if side == "BUY":
        return to_base_units(notional), to_base_units(shares)
    if side == "SELL":
        return to_base_units(shares), to_base_units(notional)
    raise AmountError(f"side must be BUY or SELL, not {side!r}")


def market_amounts(side: Side, amount: Any, price: Any, tick: Any) -> tuple[int, int]:
    """(makerAmount, takerAmount) for a market order: BUY spends `amount` pUSD, SELL sells
    `amount` shares, `price` is the worst acceptable price (rounded down to the tick's dp)."""
    cfg = rounding_for(tick)
    p = round_down(dec(price), cfg.price)
    if p <= 0:
        raise AmountError(f"price ({fmt(p)}) must be positive", "INVALID_ORDER_MIN_TICK_SIZE")
    maker = round_down(dec(amount), cfg.size)
    if side == "BUY":
        taker = _fix_amount(maker / p, cfg.amount)
    elif side == "SELL":
        taker = _fix_amount(maker * p, cfg.amount)
    else:
        raise AmountError(f"side must be BUY or SELL, not {side!r}")
    return to_base_units(maker), to_base_units(taker)


# The server's FOK/FAK precision rule (protocol §3.4 "Server caveat"): maker ≤ 2 decimals,
# taker ≤ 4. The SDK's taker for ticks 0.001/0.0001 has 5-6; we round it down to 4.
MARKET_TAKER_DECIMALS = 4


def market_order_amounts(side: Side, amount: Any, price: Any, tick: Any) -> tuple[int, int]:
    """`market_amounts` with the taker amount rounded down to the server's 4 decimals
    (for a BUY that asks fewer shares, for a SELL less pUSD: never a stricter limit)."""
    maker, taker = market_amounts(side, amount, price, tick)
    unit = 10 ** (TOKEN_DECIMALS - MARKET_TAKER_DECIMALS)
    return maker, taker - taker % unit


def market_price(side: Side, levels: list[Any], amount: Any, order_type: str = "FOK") -> Decimal:
    """Worst price a market order of `amount` reaches (BUY: pUSD notional; SELL: shares).

    `levels` are `{"price","size"}` dicts or `[price, size]` pairs in any order; they are
    sorted best first here (the venue's arrays are best-last, the docs' best-first).
    Insufficient depth: FOK raises, FAK returns the worst level."""
    parsed = []
    for lv in levels:
        if isinstance(lv, dict):
            parsed.append((dec(lv["price"]), dec(lv["size"])))
        else:
            parsed.append((dec(lv[0]), dec(lv[1])))
    if not parsed:
        raise AmountError("no match", "FOK_ORDER_NOT_FILLED_ERROR")
    # BUY walks the asks from the lowest price up; SELL walks the bids from the highest down.
    parsed.sort(key=lambda pl: pl[0], reverse=(side == "SELL"))
    want = dec(amount)
    total = Decimal(0)
    for price, size in parsed:
        total += size * price if side == "BUY" else size
        if total >= want:
            return price
    if order_type == "FOK":
        raise AmountError("no match", "FOK_ORDER_NOT_FILLED_ERROR")
    return parsed[-1][0]


# --- V2 fees (taker fees charged by the operator at match time) ---------------------------------


def platform_fee(shares: Any, price: Any, rate: Any, exponent: Any) -> Decimal:
    """shares × rate × (p(1−p))^exponent (exact for integer exponents)."""
    p = dec(price)
    e = dec(exponent)
    base = p * (1 - p)
    factor = base ** int(e) if e == e.to_integral_value() else Decimal(float(base) ** float(e))
    return dec(shares) * dec(rate) * factor


def builder_fee(notional: Any, builder_rate: Any) -> Decimal:
    return dec(notional) * dec(builder_rate)


def adjust_buy_amount_ts(
    amount: Any,
    price: Any,
    balance: Any,
    rate: Any,
    exponent: Any,
    builder_rate: Any = 0,
    slippage_pct: Any = 0,
) -> Decimal:
    """TS SDK adjustBuyAmountForFees: shrink a market BUY so amount + fees fits the balance."""
    a, p, bal = dec(amount), dec(price), dec(balance)
    base = min(a, bal)
    pf = platform_fee(base / p, p, rate, exponent) * (1 + dec(slippage_pct) / 100)
    bf = builder_fee(base, builder_rate)
    if bal <= a + pf + bf:
        return max(bal - pf - bf, Decimal(0))
    return a


def adjust_buy_amount_py(
    amount: Any, price: Any, balance: Any, rate: Any, exponent: Any, builder_rate: Any = 0
) -> Decimal:
    """Python SDK adjust_market_buy_amount: adjusted + fees(adjusted) == balance exactly."""
    a, p, bal = dec(amount), dec(price), dec(balance)
    per_usd = platform_fee(1 / p, p, rate, exponent) + dec(builder_rate)
    if bal <= a + a * per_usd:
        return bal / (1 + per_usd)
    return a
