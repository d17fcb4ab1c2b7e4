"""Polymarket CLOB V2: exact amounts, EIP-712 V2 order signing, L1/L2 auth, the REST
client, the user WebSocket channel and the live venue behind `agkit exec --venue polymarket`.

Heavy dependencies (coincurve, pycryptodome, httpx, websockets) are imported by the
submodules that need them, never by this package."""
