"""agkit: a Polymarket trading-bot toolkit of composable NDJSON stages.

The library is the product; `agkit.cli` is a thin typer layer over it. Heavy
modules (numpy, httpx, websockets, rich) are imported lazily where used, because
every stage in a shell pipe pays Python's start-up.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
