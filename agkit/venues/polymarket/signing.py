"""EIP-712 V2 order signing, the L1 ClobAuth signature and the L2 HMAC headers (§2, §3).

Hashing is done by hand (the structs are fixed) with pycryptodome's keccak, and ECDSA
with coincurve (libsecp256k1, RFC 6979 deterministic nonces, low-s) — the same bytes as
eth-account, about ten times faster (bench/bench_polymarket.py). Both are imported lazily.

Secrets: `Secret` masks its value in repr/str, so a private key or API secret never shows
in a log line, a record or a traceback's locals; `.reveal()` is the only way to read it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ZERO32 = "0x" + "00" * 32
ZERO_ADDRESS = "0x" + "00" * 20

EXCHANGE_NAME = "Polymarket CTF Exchange"
CHAIN_POLYGON = 137
CHAIN_AMOY = 80002

# (chain, neg_risk, domain version) -> verifyingContract (protocol §3.1)
EXCHANGES: dict[tuple[int, bool, str], str] = {
    (137, False, "2"): "0xE111180000d2663C0091e4f400237545B87B996B",
    (137, True, "2"): "0xe2222d279d744050d28e00520010520000310F59",
    (80002, False, "2"): "0xE111180000d2663C0091e4f400237545B87B996B",
    (80002, True, "2"): "0xe2222d279d744050d28e00520010520000310F59",
    (137, False, "3"): "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa",
    (137, True, "3"): "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa",
    (80002, False, "3"): "0x9fE6e61422AdB6F610d8597F9684b16912D50C3D",
    (80002, True, "3"): "0x9fE6e61422AdB6F610d8597F9684b16912D50C3D",
}

ORDER_V2_TYPE = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,"
    "uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,"
    "bytes32 builder)"
)
ORDER_V1_TYPE = (
    "Order(uint256 salt,address maker,address signer,address taker,uint256 tokenId,"
    "uint256 makerAmount,uint256 takerAmount,uint256 expiration,uint256 nonce,"
    "uint256 feeRateBps,uint8 side,uint8 signatureType)"
)
CLOB_AUTH_TYPE = "ClobAuth(address address,string timestamp,uint256 nonce,string message)"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
DOMAIN_TYPE_NO_CONTRACT = "EIP712Domain(string name,string version,uint256 chainId)"
TYPED_DATA_SIGN_TYPE = (
    "TypedDataSign(Order contents,string name,string version,uint256 chainId,"
    "address verifyingContract,bytes32 salt)" + ORDER_V2_TYPE
)
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"

SIDES = {"BUY": 0, "SELL": 1}
SIG_EOA, SIG_POLY_PROXY, SIG_POLY_GNOSIS_SAFE, SIG_POLY_1271 = 0, 1, 2, 3
SIGNATURE_TYPES = {
    "EOA": 0,
    "POLY_PROXY": 1,
    "POLY_GNOSIS_SAFE": 2,
    "GNOSIS_SAFE": 2,
    "POLY_1271": 3,
}


class Secret:
    """A secret string whose repr/str never shows the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __reduce__(self) -> Any:  # never pickled into a crash dump
        raise TypeError("Secret cannot be pickled")


# --- primitives -------------------------------------------------------------------------------


def _keccak_fn() -> Any:
    from Crypto.Hash import keccak as _k

    new = _k.new

    def k(data: bytes) -> bytes:
        return new(data=data, digest_bits=256).digest()

    return k


_K = None


def _k(data: bytes) -> bytes:
    global _K
    if _K is None:
        _K = _keccak_fn()
    return _K(data)  # type: ignore[no-any-return]


def keccak(data: bytes) -> bytes:
    """keccak256 (Ethereum's, not NIST SHA3-256)."""
    return _k(data)


def hexbytes(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)


def to_checksum_address(addr: str) -> str:
    """EIP-55 checksummed form of a 20-byte hex address."""
    raw = addr.lower().removeprefix("0x")
    if len(raw) != 40 or any(c not in "0123456789abcdef" for c in raw):
        raise ValueError(f"not an address: {addr!r}")
    digest = _k(raw.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(raw))


def _u256(value: int | str) -> bytes:
    v = int(value)
    if v < 0 or v >= 1 << 256:
        raise ValueError(f"uint256 out of range: {value!r}")
    return v.to_bytes(32, "big")


def _addr(value: str) -> bytes:
    raw = hexbytes(value)
    if len(raw) != 20:
        raise ValueError(f"not an address: {value!r}")
    return b"\x00" * 12 + raw


def _b32(value: str) -> bytes:
    raw = hexbytes(value)
    if len(raw) != 32:
        raise ValueError(f"not a bytes32: {value!r}")
    return raw


@lru_cache(maxsize=64)
def _typehash(type_string: str) -> bytes:
    return _k(type_string.encode())


@lru_cache(maxsize=64)
def domain_separator(
    name: str, version: str, chain_id: int, verifying_contract: str | None
) -> bytes:
    if verifying_contract is None:
        return _k(
            _typehash(DOMAIN_TYPE_NO_CONTRACT)
            + _k(name.encode())
            + _k(version.encode())
            + _u256(chain_id)
        )
    return _k(
        _typehash(DOMAIN_TYPE)
        + _k(name.encode())
        + _k(version.encode())
        + _u256(chain_id)
        + _addr(verifying_contract)
    )


def exchange_domain(
    chain_id: int = CHAIN_POLYGON, neg_risk: bool = False, version: str = "2"
) -> bytes:
    """Domain separator of the exchange a market's orders are signed for."""
    try:
        contract = EXCHANGES[(chain_id, neg_risk, version)]
    except KeyError:
        raise ValueError(
            f"no exchange known for chain {chain_id}, neg_risk={neg_risk}, version {version!r}"
        ) from None
    return domain_separator(EXCHANGE_NAME, version, chain_id, contract)


def eip712_digest(domain_sep: bytes, struct_hash: bytes) -> bytes:
    return _k(b"\x19\x01" + domain_sep + struct_hash)


# --- keys -----------------------------------------------------------------------------------------


class Signer:
    """An EOA private key (coincurve). repr never shows the key."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: str | Secret) -> None:
        from coincurve import PrivateKey

        text = private_key.reveal() if isinstance(private_key, Secret) else private_key
        try:
            raw = hexbytes(text.strip())
            if len(raw) != 32:
                raise ValueError
            self._key = PrivateKey(raw)
        except Exception:
            raise ValueError("POLYMARKET_PRIVATE_KEY is not a 32-byte hex private key") from None
        pub = self._key.public_key.format(compressed=False)[1:]
        self.address = to_checksum_address("0x" + _k(pub)[-20:].hex())

    def __repr__(self) -> str:
        return f"Signer(address={self.address})"

    def sign_digest(self, digest: bytes) -> bytes:
        """65-byte r‖s‖v signature (v = 27/28) of a 32-byte digest."""
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes((sig[64] + 27,))


def recover_address(digest: bytes, signature: bytes) -> str:
    """The address whose key made this 65-byte signature of `digest` (the fake CLOB uses it)."""
    from coincurve import PublicKey

    if len(signature) != 65:
        raise ValueError("signature must be 65 bytes")
    v = signature[64]
    if v >= 27:
        v -= 27
    pub = PublicKey.from_signature_and_message(signature[:64] + bytes((v,)), digest, hasher=None)
    return to_checksum_address("0x" + _k(pub.format(compressed=False)[1:])[-20:].hex())


# --- orders -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderV2:
    """The 11 signed fields of a CLOB V2 order (+ the unsigned expiration of the body)."""

    salt: int
    maker: str
    signer: str
    token_id: str
    maker_amount: int
    taker_amount: int
    side: str  # "BUY" | "SELL"
    signature_type: int
    timestamp: int  # ms
    metadata: str = ZERO32
    builder: str = ZERO32
    expiration: int = 0  # unix s; body only (not signed in V2)

    def struct_hash(self) -> bytes:
        return _k(
            _typehash(ORDER_V2_TYPE)
            + _u256(self.salt)
            + _addr(self.maker)
            + _addr(self.signer)
            + _u256(self.token_id)
            + _u256(self.maker_amount)
            + _u256(self.taker_amount)
            + _u256(SIDES[self.side])
            + _u256(self.signature_type)
            + _u256(self.timestamp)
            + _b32(self.metadata)
            + _b32(self.builder)
        )

    def digest(self, domain_sep: bytes) -> bytes:
        return eip712_digest(domain_sep, self.struct_hash())

    @classmethod
    def from_message(cls, msg: Mapping[str, Any], expiration: int = 0) -> OrderV2:
        side = msg["side"]
        if isinstance(side, int):
            side = "BUY" if side == 0 else "SELL"
        return cls(
            salt=int(msg["salt"]),
            maker=msg["maker"],
            signer=msg["signer"],
            token_id=str(msg["tokenId"]),
            maker_amount=int(msg["makerAmount"]),
            taker_amount=int(msg["takerAmount"]),
            side=str(side),
            signature_type=int(msg["signatureType"]),
            timestamp=int(msg["timestamp"]),
            metadata=msg.get("metadata", ZERO32),
            builder=msg.get("builder", ZERO32),
            expiration=int(msg.get("expiration", expiration) or 0),
        )


@dataclass(frozen=True, slots=True)
class SignedOrder:
    order: OrderV2
    signature: str  # 0x-hex
    order_hash: str  # 0x-hex EIP-712 digest = the CLOB's orderID

    def to_json(self) -> dict[str, Any]:
        """The `order` object of POST /order, keys in the SDK's order (§3.6)."""
        o = self.order
        return {
            "salt": o.salt,
            "maker": o.maker,
            "signer": o.signer,
            "tokenId": o.token_id,
            "makerAmount": str(o.maker_amount),
            "takerAmount": str(o.taker_amount),
            "side": o.side,
            "expiration": str(o.expiration),
            "signatureType": o.signature_type,
            "timestamp": str(o.timestamp),
            "metadata": o.metadata,
            "builder": o.builder,
            "signature": self.signature,
        }


def order_v1_struct_hash(msg: Mapping[str, Any]) -> bytes:
    """hashStruct of a legacy V1 order (dead since 2026-04-28; kept for the vectors)."""
    side = msg["side"]
    return _k(
        _typehash(ORDER_V1_TYPE)
        + _u256(msg["salt"])
        + _addr(msg["maker"])
        + _addr(msg["signer"])
        + _addr(msg["taker"])
        + _u256(msg["tokenId"])
        + _u256(msg["makerAmount"])
        + _u256(msg["takerAmount"])
        + _u256(msg["expiration"])
        + _u256(msg["nonce"])
        + _u256(msg["feeRateBps"])
        + _u256(SIDES[side] if isinstance(side, str) else side)
        + _u256(msg["signatureType"])
    )


def typed_data_sign_hash(order_struct_hash: bytes, chain_id: int, wallet: str) -> bytes:
    """hashStruct(TypedDataSign{contents, "DepositWallet", "1", chainId, wallet, 0})."""
    return _k(
        _typehash(TYPED_DATA_SIGN_TYPE)
        + order_struct_hash
        + _k(b"DepositWallet")
        + _k(b"1")
        + _u256(chain_id)
        + _addr(wallet)
        + b"\x00" * 32
    )


def sign_order(
    order: OrderV2, signer: Signer, domain_sep: bytes, chain_id: int = CHAIN_POLYGON
) -> SignedOrder:
    """Sign a V2 order. Types 0–2: ECDSA over the EIP-712 digest by `signer`.
    Type 3 (POLY_1271): the ERC-7739 TypedDataSign wrapper, 317 bytes (§3.2)."""
    struct_hash = order.struct_hash()
    order_hash = eip712_digest(domain_sep, struct_hash)
    if order.signature_type == SIG_POLY_1271:
        wrapped = eip712_digest(
            domain_sep, typed_data_sign_hash(struct_hash, chain_id, order.maker)
        )
        type_bytes = ORDER_V2_TYPE.encode()
        sig = (
            signer.sign_digest(wrapped)
            + domain_sep
            + struct_hash
            + type_bytes
            + len(type_bytes).to_bytes(2, "big")
        )
    else:
        sig = signer.sign_digest(order_hash)
    return SignedOrder(order, "0x" + sig.hex(), "0x" + order_hash.hex())


def verify_order_signature(
    signed: SignedOrder | Mapping[str, Any], domain_sep: bytes, chain_id: int
) -> str:
    """Recover the EOA behind an order's signature (all four types); raises on a malformed one."""
    if isinstance(signed, SignedOrder):
        order, sig_hex = signed.order, signed.signature
    else:
        order, sig_hex = OrderV2.from_message(signed), str(signed["signature"])
    sig = hexbytes(sig_hex)
    struct_hash = order.struct_hash()
    if order.signature_type == SIG_POLY_1271:
        type_bytes = ORDER_V2_TYPE.encode()
        if len(sig) != 65 + 64 + len(type_bytes) + 2:
            raise ValueError("POLY_1271 signature has the wrong length")
        if sig[65:97] != domain_sep or sig[97:129] != struct_hash or sig[129:-2] != type_bytes:
            raise ValueError("POLY_1271 signature does not wrap this order")
        digest = eip712_digest(domain_sep, typed_data_sign_hash(struct_hash, chain_id, order.maker))
        return recover_address(digest, sig[:65])
    return recover_address(eip712_digest(domain_sep, struct_hash), sig)


def new_salt() -> int:
    """A random salt that survives JSON number parsing (≤ 2^53)."""
    return secrets.randbits(53)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- L1 (ClobAuth) ---------------------------------------------------------------------------------


def clob_auth_digest(address: str, timestamp: str, nonce: int, chain_id: int) -> bytes:
    struct_hash = _k(
        _typehash(CLOB_AUTH_TYPE)
        + _addr(address)
        + _k(timestamp.encode())
        + _u256(nonce)
        + _k(CLOB_AUTH_MESSAGE.encode())
    )
    return eip712_digest(domain_separator("ClobAuthDomain", "1", chain_id, None), struct_hash)


def l1_headers(
    signer: Signer, chain_id: int = CHAIN_POLYGON, nonce: int = 0, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = signer.sign_digest(clob_auth_digest(signer.address, ts, nonce, chain_id))
    return {
        "POLY_ADDRESS": signer.address,
        "POLY_SIGNATURE": "0x" + sig.hex(),
        "POLY_TIMESTAMP": ts,
        "POLY_NONCE": str(nonce),
    }


# --- L2 (HMAC) --------------------------------------------------------------------------------------


def _secret_key(secret: str) -> bytes:
    s = secret.strip()
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hmac_signature(
    secret: str | Secret, timestamp: str, method: str, path: str, body: str | bytes | None = None
) -> str:
    """urlsafe-base64(HMAC-SHA256(b64decode(secret), ts + METHOD + path + body)), '=' padded.

    `path` is the route without its query string; `body` is the exact bytes sent."""
    key = _secret_key(secret.reveal() if isinstance(secret, Secret) else secret)
    msg = (timestamp + method + path).encode()
    if body:
        msg += body if isinstance(body, bytes) else body.encode()
    return base64.urlsafe_b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class ApiCreds:
    api_key: str
    secret: Secret
    passphrase: Secret

    def __repr__(self) -> str:
        return f"ApiCreds(api_key={self.api_key[:8]}…, secret=****, passphrase=****)"


def l2_headers(
    address: str,
    creds: ApiCreds,
    method: str,
    path: str,
    body: str | bytes | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "POLY_ADDRESS": address,
        "POLY_SIGNATURE": hmac_signature(creds.secret, ts, method, path.split("?", 1)[0], body),
        "POLY_TIMESTAMP": ts,
        "POLY_API_KEY": creds.api_key,
        "POLY_PASSPHRASE": creds.passphrase.reveal(),
    }
