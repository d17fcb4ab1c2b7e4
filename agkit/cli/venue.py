"""Polymarket account helpers: `agkit auth derive`, `agkit orders`, `agkit cancel`, `agkit balance`.

Thin wrappers over agkit.venues.polymarket (imported lazily). Credentials come from
the environment or .env (POLYMARKET_PRIVATE_KEY, POLYMARKET_API_KEY, ...); secrets are
never printed unless asked for explicitly.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from agkit.venues.polymarket.client import ClobClient

T = TypeVar("T")

HostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        envvar="AGKIT_CLOB_URL",
        metavar="URL",
        help="CLOB REST host (default https://clob.polymarket.com).",
    ),
]

# pUSD spenders a trading account must approve (protocol §9.12)
SPENDERS = {
    "0xE111180000d2663C0091e4f400237545B87B996B": ("CTF Exchange (V2)", True),
    "0xe2222d279d744050d28e00520010520000310F59": ("Neg Risk CTF Exchange (V2)", True),
    "0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296": ("Neg Risk Adapter (legacy)", False),
}


def _run(host: str | None, fn: Callable[[ClobClient], Awaitable[T]], *, need_creds: bool = True) -> T:
    import asyncio

    from agkit.errors import ConfigError, VenueError
    from agkit.venues.polymarket import credentials
    from agkit.venues.polymarket.client import ClobClient, ClobError

    cfg = credentials.load(host)

    async def main() -> T:
        signer = cfg.signer()
        client = ClobClient(cfg.host, signer=signer, creds=cfg.creds, chain_id=cfg.chain_id)
        try:
            if need_creds and client.creds is None:
                sys.stderr.write("agkit: no API credentials configured; deriving them with the L1 signature\n")
                client.creds = await client.create_or_derive_api_key()
            return await fn(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except ClobError as exc:
        if exc.status == 401:
            raise ConfigError(f"the venue refused the credentials: {exc.message}") from None
        raise
    except OSError as exc:
        raise VenueError(f"cannot reach {cfg.host}: {exc}") from None


def _write_json(obj: Any) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
    sys.stdout.flush()


def auth_derive(
    nonce: Annotated[int, typer.Option("--nonce", min=0, help="Key nonce (0 is the default key).")] = 0,
    env_file: Annotated[
        str | None,
        typer.Option("--env-file", metavar="PATH", help="Append the credentials to this .env file (created 0600)."),
    ] = None,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the secret and passphrase on stdout.")] = False,
    host: HostOpt = None,
) -> int:
    """Derive (or create) the CLOB API credentials of POLYMARKET_PRIVATE_KEY.

    Signs the L1 ClobAuth message and asks the venue for the key bound to --nonce,
    creating it if there is none. Prints {"address", "api_key"} on stdout; the secret
    and passphrase only with --reveal, or written to --env-file (mode 0600).
    Example: agkit auth derive --env-file .env
    """
    import os

    creds = _run(host, lambda c: c.create_or_derive_api_key(nonce), need_creds=False)
    from agkit.venues.polymarket import credentials

    address = credentials.load(host).signer().address
    out: dict[str, Any] = {"address": address, "api_key": creds.api_key}
    if reveal:
        out["secret"] = creds.secret.reveal()
        out["passphrase"] = creds.passphrase.reveal()
    if env_file:
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(
                f"POLYMARKET_API_KEY={creds.api_key}\n"
                f"POLYMARKET_API_SECRET={creds.secret.reveal()}\n"
                f"POLYMARKET_API_PASSPHRASE={creds.passphrase.reveal()}\n"
            )
        out["env_file"] = env_file
    elif not reveal:
        sys.stderr.write("agkit auth derive: secret and passphrase not shown (use --env-file PATH or --reveal)\n")
    _write_json(out)
    return 0


def orders(
    market: Annotated[str | None, typer.Option("--market", help="Only this market (condition id).")] = None,
    asset: Annotated[str | None, typer.Option("--asset", help="Only this token id.")] = None,
    host: HostOpt = None,
) -> int:
    """List the account's open orders: one JSON object per order on stdout.

    Fields: id, market, asset, side, price, size, size_matched, order_type, status,
    created_at. A table when stdout is a terminal.
    Example: agkit orders --market 0xdd22... | jq .id
    """
    from agkit.venues.polymarket.wire import norm_status

    raw = _run(host, lambda c: c.open_orders(market=market, asset_id=asset))
    rows = [
        {
            "id": o.get("id"),
            "market": o.get("market"),
            "asset": o.get("asset_id"),
            "side": str(o.get("side", "")).lower(),
            "price": _num(o.get("price")),
            "size": _num(o.get("original_size")),
            "size_matched": _num(o.get("size_matched")),
            "order_type": o.get("order_type"),
            "status": norm_status(o.get("status")).lower(),
            "created_at": o.get("created_at"),
        }
        for o in raw
    ]
    if sys.stdout.isatty():
        _table(rows, ["id", "side", "price", "size", "size_matched", "order_type", "asset"])
    else:
        for r in rows:
            _write_json(r)
    sys.stderr.write(f"agkit orders: {len(rows)} open order(s)\n")
    return 0


def cancel(
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ORDER_ID...]", help="Venue order ids (0x…).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Cancel every open order of the account.")] = False,
    market: Annotated[str | None, typer.Option("--market", help="Cancel the orders of this market (condition id).")] = None,
    asset: Annotated[str | None, typer.Option("--asset", help="With --market or alone: only this token id.")] = None,
    host: HostOpt = None,
) -> int:
    """Cancel orders: by id, a whole market (--market/--asset), or all (--all).

    Prints {"canceled": [...], "not_canceled": {id: reason}} on stdout; exits 4 when
    the venue could not cancel some of them.
    Example: agkit cancel --all
    """
    from agkit.errors import UsageError
    from agkit.exit_codes import ExitCode

    modes = sum([bool(ids), all_, bool(market or asset)])
    if modes != 1:
        raise UsageError("give order ids, or --market/--asset, or --all (exactly one of them)")
    if all_:
        res = _run(host, lambda c: c.cancel_all())
    elif market or asset:
        res = _run(host, lambda c: c.cancel_market(market=market, asset_id=asset))
    else:
        assert ids is not None
        res = _run(host, lambda c: c.cancel_orders(ids))
    res = {"canceled": list(res.get("canceled") or []), "not_canceled": dict(res.get("not_canceled") or {})}
    _write_json(res)
    for oid, reason in res["not_canceled"].items():
        sys.stderr.write(f"agkit cancel: {oid}: {reason}\n")
    return int(ExitCode.VENUE) if res["not_canceled"] else 0


def balance(
    token: Annotated[str | None, typer.Option("--token", help="Also show this outcome token's balance and approval.")] = None,
    signature_type: Annotated[
        int | None, typer.Option("--signature-type", min=0, max=3, help="Override POLYMARKET_SIGNATURE_TYPE (0-3).")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the venue to re-read the chain first (after wrapping or approving).")
    ] = False,
    host: HostOpt = None,
) -> int:
    """Show the pUSD balance and the approvals trading needs, naming any that is missing.

    Prints one JSON object: balance (pUSD), allowances per spender, missing (the
    approvals still to make). Exits 5 when a required approval is missing.
    Example: agkit balance --token 7132...
    """
    from agkit.exit_codes import ExitCode
    from agkit.venues.polymarket import credentials

    cfg = credentials.load(host)
    st = cfg.signature_type if signature_type is None else signature_type

    async def fetch(c: ClobClient) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if refresh:
            await c.update_balance_allowance("COLLATERAL", signature_type=st)
            if token:
                await c.update_balance_allowance("CONDITIONAL", token, signature_type=st)
        coll = await c.balance_allowance("COLLATERAL", signature_type=st)
        cond = await c.balance_allowance("CONDITIONAL", token, signature_type=st) if token else None
        return coll, cond

    coll, cond = _run(host, fetch)
    out: dict[str, Any] = {"signature_type": st, "balance": _units(coll.get("balance")), "allowances": {}, "missing": []}
    allowances = {k.lower(): v for k, v in (coll.get("allowances") or {}).items()}
    single = coll.get("allowance")
    for spender, (name, required) in SPENDERS.items():
        raw = allowances.get(spender.lower(), single if single is not None and not allowances else None)
        amount = _units(raw) if raw is not None else None
        out["allowances"][name] = {"spender": spender, "allowance": amount}
        if required and not amount:
            out["missing"].append(f"pUSD approval for the {name} ({spender})")
    if cond is not None:
        cond_allow = cond.get("allowances") or {}
        approved = any(_units(v) for v in cond_allow.values()) or bool(_units(cond.get("allowance")))
        out["token"] = {"token_id": token, "balance": _units(cond.get("balance")), "approved_for_exchange": approved}
        if not approved:
            out["missing"].append("conditional-token approval (setApprovalForAll) for the exchanges")
    _write_json(out)
    for item in out["missing"]:
        sys.stderr.write(f"agkit balance: missing {item}: orders will fail with 'not enough balance / allowance'\n")
    return int(ExitCode.CONFIG) if out["missing"] else 0


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _units(value: Any) -> float:
    """A balance/allowance as pUSD: base units (integer text) / 10^6; decimal text as is."""
    if value is None or value == "":
        return 0.0
    text = str(value)
    from decimal import Decimal, InvalidOperation

    try:
        d = Decimal(text)
    except InvalidOperation:
        return 0.0
    return float(d) if "." in text else float(d / 1_000_000)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*cols)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    Console().print(table)


def register(app: typer.Typer) -> None:
    auth = typer.Typer(name="auth", help="Polymarket API credentials (L1 wallet signature).", no_args_is_help=True)
    auth.command("derive")(auth_derive)
    app.add_typer(auth, name="auth")
    app.command("orders")(orders)
    app.command("cancel")(cancel)
    app.command("balance")(balance)
