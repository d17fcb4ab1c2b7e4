"""Book records encoded from cached level bytes (what `feed polymarket` writes to a pipe)
are byte for byte `orjson.dumps` of the record dicts the normaliser builds otherwise,
and those dicts hold the books an independent model rebuilds from the same frames.
A lone `price_change` object (msgspec-decoded fast path) gives what the same event
inside an array (the general path) gives, odd and bad values included."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from agkit.feed.polymarket import Normalizer
from tests.feed.wsutil import MARKET, NO, YES, Model, book_frame, price_change

PRICES = [f"0.{i:02d}" for i in range(1, 100)] + [".5", "0.50", "0.505", "0.5050", "1", "0", "0.001"]
SIZES = ["0", "0", "1", "2.5", "100", "1e3", "0.000001", "123456.789", "7"]


def random_frames(rng: random.Random, n: int) -> list[Any]:
    """Snapshots (both orderings, with and without market/hash), updates in the current and
    legacy schemas that land inside and outside the top levels, removals, tick changes."""
    frames: list[Any] = []
    ts = 1757908892000
    for _ in range(n):
        ts += 1
        asset = rng.choice([YES, NO])
        r = rng.random()
        if r < 0.03 or not frames:
            levels = rng.sample(PRICES[:99], rng.randrange(0, 30))
            bids = [(p, rng.choice(SIZES)) for p in levels if float(p) < 0.5]
            asks = [(p, rng.choice(SIZES)) for p in levels if float(p) >= 0.5]
            snap = book_frame(asset, bids, asks, ts=ts, best_last=rng.random() < 0.5)
            if rng.random() < 0.3:
                del snap["market"], snap["hash"]
            frames.append([snap] if rng.random() < 0.5 else snap)
        elif r < 0.06:
            frames.append({"event_type": "tick_size_change", "asset_id": asset, "market": MARKET,
                           "old_tick_size": "0.01", "new_tick_size": rng.choice(["0.001", "0.01"]), "timestamp": str(ts)})
        elif r < 0.12:
            frames.append({"event_type": "price_change", "asset_id": asset, "market": MARKET, "timestamp": str(ts),
                           "hash": rng.choice(["", f"legacy-{ts}"]), "price": rng.choice(PRICES),
                           "side": rng.choice(["BUY", "SELL"]), "size": rng.choice(SIZES)})
        else:
            changes = [(rng.choice([YES, NO]), rng.choice(["BUY", "SELL"]), rng.choice(PRICES), rng.choice(SIZES))
                       for _ in range(rng.randrange(1, 5))]
            frame = price_change(changes, ts=ts)
            if rng.random() < 0.2:
                del frame["market"]
            frames.append(frame)
    return frames


@pytest.mark.parametrize(("seed", "depth"), [(1, 3), (2, 10), (3, 1), (4, 40)])
def test_encoded_books_are_the_bytes_of_the_records(seed: int, depth: int) -> None:
    rng = random.Random(seed)
    frames = random_frames(rng, 3000)
    plain = Normalizer(depth=depth, clock=lambda: 0)
    encoded = Normalizer(depth=depth, clock=lambda: 0, encoded=True)
    model = Model()
    books = 0
    for i, frame in enumerate(frames):
        data = orjson.dumps(frame)
        recs = plain.frame(data, 1757908892000000 + i)
        outs = encoded.frame(data, 1757908892000000 + i)
        assert len(recs) == len(outs)
        for ev in frame if isinstance(frame, list) else [frame]:
            model.apply(ev)
        for rec, out in zip(recs, outs, strict=True):
            if rec["type"] != "book":
                assert out == rec
                continue
            assert isinstance(out, tuple)
            assert out == (rec["asset"], orjson.dumps(rec))
            assert (rec["bids"], rec["asks"]) == model.top(rec["asset"], depth)
            books += 1
    assert books > 2000
    assert plain.bad == encoded.bad == 0


ODD_NUMBERS = ["0.5", ".5", "5.", "1e-3", "1E2", "-0", "-0.0", "-1", " 1", "1 ", "1_0", "0x10", "+1", "nan", "NaN",
               "inf", "-inf", "Infinity", "1e400", "1e-400", "", "0.1000000000000000055511151231257827",
               "123456789012345678901234567890", 0.25, 3, -2, True, None, [], {}]


def odd_event(rng: random.Random) -> dict[str, Any]:
    def number() -> Any:
        if rng.random() < 0.2:
            return rng.choice(ODD_NUMBERS)
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 22)))
        cut = rng.randrange(0, len(digits) + 1)
        return digits[:cut] + "." + digits[cut:] if rng.random() < 0.8 else digits

    changes = []
    for _ in range(rng.randrange(0, 4)):
        # prices above 1 are refused: most drawn in [0, 1), so both paths also accept many
        price = "0." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 6)))
        ch: dict[str, Any] = {"asset_id": rng.choice([YES, NO, YES, "", 7]),
                              "price": price if rng.random() < 0.7 else number(), "size": number(),
                              "side": rng.choice(["BUY", "SELL", "buy", "Sell", "BID", 1]),
                              "hash": rng.choice(["h", "", None, 5])}
        if rng.random() < 0.05:
            del ch[rng.choice(list(ch))]
        changes.append(ch)
    ev: dict[str, Any] = {"event_type": "price_change", "price_changes": changes,
                          "market": rng.choice([MARKET, "", None, 3]),
                          "timestamp": rng.choice(["1757908893000", 1757908893.5, "x", -1, None, "1757908893"])}
    if rng.random() < 0.05:
        del ev[rng.choice(list(ev))]
    return ev


@pytest.mark.parametrize("encoded", [False, True])
def test_a_lone_price_change_is_read_as_the_general_path_reads_it(encoded: bool) -> None:
    rng = random.Random(7)
    fast = Normalizer(depth=5, clock=lambda: 0, encoded=encoded)
    general = Normalizer(depth=5, clock=lambda: 0, encoded=encoded)
    snaps = orjson.dumps([book_frame(a, [("0.4", "10"), ("0.3", "5")], [("0.6", "10")]) for a in (YES, NO)])
    fast.frame(snaps, 1)
    general.frame(snaps, 1)
    kept = 0
    for i in range(5000):
        ev = odd_event(rng)
        got = fast.frame(orjson.dumps(ev), 1000 + i)
        want = general.frame(orjson.dumps([ev]), 1000 + i)
        assert got == want, ev
        kept += bool(got)
    assert fast.bad == general.bad > 500
    assert kept > 250
    assert (fast.events, fast.dropped_deltas, fast.last_lag_ms) == (general.events, general.dropped_deltas,
                                                                     general.last_lag_ms)
